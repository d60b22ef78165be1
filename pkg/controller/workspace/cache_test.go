package workspace

import (
	"context"
	"reflect"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// The children cache keeps only the reconciler's own field ownership of a
// claim or Service, and what applyIfChanged compares (the fields the
// reconciler applied) is the same before and after, so a status-only
// wake-up still sends no apply.
func TestOwnFieldsOnlyKeepsWhatApplyIfChangedCompares(t *testing.T) {
	claim := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "ws-a-home", Namespace: "ns", ManagedFields: []metav1.ManagedFieldsEntry{
			{Manager: FieldOwner, Operation: metav1.ManagedFieldsOperationApply, APIVersion: "v1", FieldsType: "FieldsV1",
				FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:spec":{"f:accessModes":{},"f:resources":{"f:requests":{"f:storage":{}}}}}`)}},
			{Manager: "kube-controller-manager", Operation: metav1.ManagedFieldsOperationUpdate, APIVersion: "v1", FieldsType: "FieldsV1",
				Subresource: "status", FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:status":{"f:phase":{}}}`)}},
			{Manager: FieldOwner, Operation: metav1.ManagedFieldsOperationUpdate, APIVersion: "v1", FieldsType: "FieldsV1",
				FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:metadata":{"f:labels":{}}}`)}},
		}},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
		},
		Status: corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimBound},
	}
	before, err := corev1ac.ExtractPersistentVolumeClaim(claim, FieldOwner)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ownFieldsOnly(claim); err != nil {
		t.Fatal(err)
	}
	if len(claim.ManagedFields) != 1 || claim.ManagedFields[0].Manager != FieldOwner || claim.ManagedFields[0].Operation != metav1.ManagedFieldsOperationApply {
		t.Fatalf("managedFields after the transform: %+v, want only %s's apply entry", claim.ManagedFields, FieldOwner)
	}
	after, err := corev1ac.ExtractPersistentVolumeClaim(claim, FieldOwner)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(before, after) {
		t.Fatalf("the applied fields changed in the cache:\nbefore %+v\nafter  %+v", before, after)
	}
	if after.Spec == nil || after.Spec.Resources == nil || after.Spec.Resources.Requests.Storage().String() != "1Gi" {
		t.Fatalf("extracted %+v, want spec.resources.requests.storage 1Gi", after)
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

func TestDeploymentStatusOnlyKeepsWhatStatusAndApplyRead(t *testing.T) {
	replicas := int32(1)
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "ws-a", Namespace: "ns", Generation: 3, Labels: map[string]string{"guildnet.io/workspace": "a"},
			Annotations:     map[string]string{"deployment.kubernetes.io/revision": "1"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "guildnet.io/v1alpha1", Kind: "Workspace", Name: "a", UID: "ws-uid"}},
			ManagedFields:   []metav1.ManagedFieldsEntry{{Manager: FieldOwner, FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:spec":{}}`)}}}},
		Spec:   appsv1.DeploymentSpec{Replicas: &replicas, Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "workspace", Image: "nginx"}}}}},
		Status: appsv1.DeploymentStatus{ReadyReplicas: 1},
	}
	if _, err := deploymentStatusOnly(d); err != nil {
		t.Fatal(err)
	}
	if d.Spec.Replicas != nil || len(d.Spec.Template.Spec.Containers) != 0 || d.ManagedFields != nil || d.Annotations != nil || d.OwnerReferences != nil {
		t.Errorf("cached Deployment still holds its spec, field ownership, annotations or owners: %+v", d)
	}
	if d.Name != "ws-a" || d.Generation != 3 || d.Labels["guildnet.io/workspace"] != "a" || d.Status.ReadyReplicas != 1 {
		t.Errorf("cached Deployment lost its name, generation, labels or status: %+v", d)
	}
}

// applyCounter is a client whose applies answer with a Deployment of the
// given generation.
type applyCounter struct {
	client.Client // nil: only Apply is called
	applies       int
	generation    int64
}

func (c *applyCounter) Apply(_ context.Context, obj runtime.ApplyConfiguration, _ ...client.ApplyOption) error {
	c.applies++
	obj.(*appsv1ac.DeploymentApplyConfiguration).WithGeneration(c.generation)
	return nil
}

// cachedDeployment is a cache holding one Deployment, or none.
type cachedDeployment struct {
	client.Reader
	dep *appsv1.Deployment
}

func (c *cachedDeployment) Get(_ context.Context, key client.ObjectKey, obj client.Object, _ ...client.GetOption) error {
	if c.dep == nil {
		return apierrors.NewNotFound(appsv1.Resource("deployments"), key.Name)
	}
	c.dep.DeepCopyInto(obj.(*appsv1.Deployment))
	return nil
}

// A Deployment is applied when it is missing, when its configuration
// changes and when somebody else changed its spec; a wake-up for its
// status alone sends nothing.
func TestApplyDeploymentOnlyWhenSomethingChanged(t *testing.T) {
	ctx := context.Background()
	key := types.NamespacedName{Namespace: "ns", Name: "a"}
	ws := newWorkspace("nginx:1.27")
	cached := &cachedDeployment{}
	c := &applyCounter{generation: 1}
	r := &Reconciler{Client: c, children: cached}
	step := func(what string, desired *appsv1ac.DeploymentApplyConfiguration, wantApplies int) {
		t.Helper()
		if err := r.applyDeployment(ctx, desired, key); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if c.applies != wantApplies {
			t.Fatalf("%s: %d applies in all, want %d", what, c.applies, wantApplies)
		}
	}

	step("new workspace", Deployment(ws), 1)
	cached.dep = &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "a", Namespace: "ns", Generation: 1}}
	step("status-only wake-up", Deployment(ws), 1)
	cached.dep.Status.ReadyReplicas = 1
	step("another status-only wake-up", Deployment(ws), 1)

	cached.dep.Generation, c.generation = 2, 3 // kubectl edit; the apply undoes it
	step("spec edited by somebody else", Deployment(ws), 2)
	cached.dep.Generation = 3
	step("wake-up after the correction", Deployment(ws), 2)

	ws.Spec.Image, c.generation = "nginx:1.28", 4
	step("image changed", Deployment(ws), 3)
	cached.dep.Generation = 4
	step("wake-up after the change", Deployment(ws), 3)

	restarted := &Reconciler{Client: c, children: cached}
	if err := restarted.applyDeployment(ctx, Deployment(ws), key); err != nil || c.applies != 4 {
		t.Fatalf("after a restart: %d applies in all (err %v), want one more", c.applies, err)
	}
}
