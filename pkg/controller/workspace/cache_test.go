package workspace

import (
	"reflect"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
)

// The children cache keeps only the reconciler's own field ownership, and
// what applyIfChanged compares (the fields the reconciler applied) is the
// same before and after, so a status-only wake-up still sends no apply.
func TestOwnFieldsOnlyKeepsWhatApplyIfChangedCompares(t *testing.T) {
	replicas := int32(1)
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "ws-a", Namespace: "ns", ManagedFields: []metav1.ManagedFieldsEntry{
			{Manager: FieldOwner, Operation: metav1.ManagedFieldsOperationApply, APIVersion: "apps/v1", FieldsType: "FieldsV1",
				FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:spec":{"f:replicas":{}}}`)}},
			{Manager: "kube-controller-manager", Operation: metav1.ManagedFieldsOperationUpdate, APIVersion: "apps/v1", FieldsType: "FieldsV1",
				Subresource: "status", FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:status":{"f:replicas":{}}}`)}},
			{Manager: FieldOwner, Operation: metav1.ManagedFieldsOperationUpdate, APIVersion: "apps/v1", FieldsType: "FieldsV1",
				FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:metadata":{"f:labels":{}}}`)}},
		}},
		Spec:   appsv1.DeploymentSpec{Replicas: &replicas},
		Status: appsv1.DeploymentStatus{Replicas: 1},
	}
	before, err := appsv1ac.ExtractDeployment(dep, FieldOwner)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ownFieldsOnly(dep); err != nil {
		t.Fatal(err)
	}
	if len(dep.ManagedFields) != 1 || dep.ManagedFields[0].Manager != FieldOwner || dep.ManagedFields[0].Operation != metav1.ManagedFieldsOperationApply {
		t.Fatalf("managedFields after the transform: %+v, want only %s's apply entry", dep.ManagedFields, FieldOwner)
	}
	after, err := appsv1ac.ExtractDeployment(dep, FieldOwner)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(before, after) {
		t.Fatalf("the applied fields changed in the cache:\nbefore %+v\nafter  %+v", before, after)
	}
	if after.Spec == nil || after.Spec.Replicas == nil || *after.Spec.Replicas != 1 {
		t.Fatalf("extracted %+v, want spec.replicas 1", after)
	}
}

func TestSecretMetadataOnlyDropsThePassword(t *testing.T) {
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "ws-a-password", Labels: map[string]string{"guildnet.io/workspace": "a"}},
		Data:       map[string][]byte{"password": []byte("hunter2")},
	}
	if _, err := secretMetadataOnly(s); err != nil {
		t.Fatal(err)
	}
	if s.Data != nil || s.Name != "ws-a-password" || s.Labels["guildnet.io/workspace"] != "a" {
		t.Fatalf("cached Secret: %+v, want its metadata without data", s)
	}
}
