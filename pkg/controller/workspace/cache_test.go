package workspace

import (
	"context"
	"reflect"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/guildnet/guildnet/apis/guildnet"
	"github.com/guildnet/guildnet/apis/guildnet/v1alpha1"
)

// A cached claim keeps its spec and status, but no field ownership,
// annotations or owners.
func TestMetadataTrimmedKeepsSpecAndStatus(t *testing.T) {
	claim := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "ws-a-home", Namespace: "ns", ResourceVersion: "7", Labels: map[string]string{"guildnet.io/workspace": "a"},
			Annotations:     map[string]string{"note": "x"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "guildnet.io/v1alpha1", Kind: "Workspace", Name: "a", UID: "ws-uid"}},
			ManagedFields:   []metav1.ManagedFieldsEntry{{Manager: FieldOwner, FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:spec":{}}`)}}}},
		Spec:   corev1.PersistentVolumeClaimSpec{VolumeName: "pv-1"},
		Status: corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimBound},
	}
	if _, err := metadataTrimmed(claim); err != nil {
		t.Fatal(err)
	}
	if claim.ManagedFields != nil || claim.Annotations != nil || claim.OwnerReferences != nil {
		t.Errorf("cached claim still holds field ownership, annotations or owners: %+v", claim.ObjectMeta)
	}
	if claim.ResourceVersion != "7" || claim.Labels["guildnet.io/workspace"] != "a" || claim.Spec.VolumeName != "pv-1" || claim.Status.Phase != corev1.ClaimBound {
		t.Errorf("cached claim lost its resourceVersion, labels, spec or status: %+v", claim)
	}
}

// A cached Service keeps what the workspace's status reports (name,
// namespace, cluster IP) and its resourceVersion, which applyIfChanged
// reads; nothing else.
func TestServiceAddressOnlyKeepsWhatStatusAndApplyRead(t *testing.T) {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "ws-a", Namespace: "ns", ResourceVersion: "7", Labels: map[string]string{"guildnet.io/workspace": "a"},
			Annotations:   map[string]string{"note": "x"},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: FieldOwner, FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:spec":{}}`)}}}},
		Spec: corev1.ServiceSpec{ClusterIP: "10.96.0.12", ClusterIPs: []string{"10.96.0.12"}, Ports: []corev1.ServicePort{{Port: 8080}},
			Selector: map[string]string{"guildnet.io/workspace": "a"}},
		Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: "192.0.2.1"}}}},
	}
	if _, err := serviceAddressOnly(svc); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(svc.Spec, corev1.ServiceSpec{ClusterIP: "10.96.0.12"}) || !reflect.DeepEqual(svc.Status, corev1.ServiceStatus{}) ||
		svc.ManagedFields != nil || svc.Annotations != nil {
		t.Errorf("cached Service holds more than its address: %+v", svc)
	}
	if svc.Name != "ws-a" || svc.Namespace != "ns" || svc.ResourceVersion != "7" || svc.Labels["guildnet.io/workspace"] != "a" {
		t.Errorf("cached Service lost its identity, resourceVersion or labels: %+v", svc.ObjectMeta)
	}
	var st v1alpha1.Workspace
	SetStatus(&st, &Observed{Service: svc}, metav1.Now().Time)
	if st.Status.ServiceIP != "10.96.0.12" || st.Status.ServiceDNS != "ws-a.ns.svc" {
		t.Errorf("status from the cached Service: IP %q, DNS %q", st.Status.ServiceIP, st.Status.ServiceDNS)
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

func TestDeploymentReadyCountOnlyKeepsWhatStatusAndApplyRead(t *testing.T) {
	replicas := int32(1)
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "ws-a", Namespace: "ns", Generation: 3, Labels: map[string]string{"guildnet.io/workspace": "a"},
			Annotations:     map[string]string{"deployment.kubernetes.io/revision": "1"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "guildnet.io/v1alpha1", Kind: "Workspace", Name: "a", UID: "ws-uid"}},
			ManagedFields:   []metav1.ManagedFieldsEntry{{Manager: FieldOwner, FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:spec":{}}`)}}}},
		Spec: appsv1.DeploymentSpec{Replicas: &replicas, Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "workspace", Image: "nginx"}}}}},
		Status: appsv1.DeploymentStatus{ReadyReplicas: 1, Replicas: 1, ObservedGeneration: 3,
			Conditions: []appsv1.DeploymentCondition{{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue, Message: "Deployment has minimum availability."}}},
	}
	if _, err := deploymentReadyCountOnly(d); err != nil {
		t.Fatal(err)
	}
	if d.Spec.Replicas != nil || len(d.Spec.Template.Spec.Containers) != 0 || d.ManagedFields != nil || d.Annotations != nil || d.OwnerReferences != nil {
		t.Errorf("cached Deployment still holds its spec, field ownership, annotations or owners: %+v", d)
	}
	if d.Name != "ws-a" || d.Generation != 3 || d.Labels["guildnet.io/workspace"] != "a" || !reflect.DeepEqual(d.Status, appsv1.DeploymentStatus{ReadyReplicas: 1}) {
		t.Errorf("cached Deployment lost its name, generation or labels, or holds more status than its ready count: %+v", d)
	}
}

// applyCounter is a client whose applies answer with the given generation
// (Deployments) or resourceVersion (Services).
type applyCounter struct {
	client.Client   // nil: only Apply is called
	applies         int
	generation      int64
	resourceVersion string
}

func (c *applyCounter) Apply(_ context.Context, obj runtime.ApplyConfiguration, _ ...client.ApplyOption) error {
	c.applies++
	switch o := obj.(type) {
	case *appsv1ac.DeploymentApplyConfiguration:
		o.WithGeneration(c.generation)
	case *corev1ac.ServiceApplyConfiguration:
		o.WithResourceVersion(c.resourceVersion)
	}
	return nil
}

// cachedChild is a cache holding one object, or none.
type cachedChild struct {
	client.Reader
	obj client.Object
}

func (c *cachedChild) Get(_ context.Context, key client.ObjectKey, obj client.Object, _ ...client.GetOption) error {
	if c.obj == nil {
		return apierrors.NewNotFound(appsv1.Resource("deployments"), key.Name)
	}
	reflect.ValueOf(obj).Elem().Set(reflect.ValueOf(c.obj.DeepCopyObject()).Elem())
	return nil
}

// A Deployment is applied when it is missing, when its configuration
// changes and when somebody else changed its spec; a wake-up for its
// status alone sends nothing.
func TestApplyDeploymentOnlyWhenSomethingChanged(t *testing.T) {
	ctx := context.Background()
	key := types.NamespacedName{Namespace: "ns", Name: "a"}
	ws := newWorkspace("nginx:1.27")
	cached := &cachedChild{}
	c := &applyCounter{generation: 1}
	r := &Reconciler{Client: c, children: cached}
	apply := func(r *Reconciler) error {
		dep := Deployment(ws)
		return r.applyIfChanged(ctx, "Deployment", dep, &appsv1.Deployment{}, key, byGeneration(func() *int64 { return dep.Generation }))
	}
	step := func(what string, wantApplies int) {
		t.Helper()
		if err := apply(r); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if c.applies != wantApplies {
			t.Fatalf("%s: %d applies in all, want %d", what, c.applies, wantApplies)
		}
	}

	step("new workspace", 1)
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "a", Namespace: "ns", Generation: 1, ResourceVersion: "10"}}
	cached.obj = dep
	step("status-only wake-up", 1)
	dep.Status.ReadyReplicas, dep.ResourceVersion = 1, "11"
	step("another status-only wake-up", 1)

	dep.Generation, c.generation = 2, 3 // kubectl edit; the apply undoes it
	step("spec edited by somebody else", 2)
	dep.Generation = 3
	step("wake-up after the correction", 2)

	ws.Spec.Image, c.generation = "nginx:1.28", 4
	step("image changed", 3)
	dep.Generation = 4
	step("wake-up after the change", 3)

	restarted := &Reconciler{Client: c, children: cached}
	if err := apply(restarted); err != nil || c.applies != 4 {
		t.Fatalf("after a restart: %d applies in all (err %v), want one more", c.applies, err)
	}
}

// A Service, which has no generation, is applied again after any change
// by somebody else, and not on a wake-up that changed nothing; a workspace
// deleted and created again starts afresh.
func TestApplyServiceOnlyWhenSomethingChanged(t *testing.T) {
	ctx := context.Background()
	ws := newWorkspace("nginx:1.27")
	key := types.NamespacedName{Namespace: ws.Namespace, Name: guildnet.WorkspaceServiceName(ws.Name)}
	cached := &cachedChild{}
	c := &applyCounter{resourceVersion: "20"}
	r := &Reconciler{Client: c, children: cached}
	step := func(what string, wantApplies int) {
		t.Helper()
		svc := Service(ws)
		if err := r.applyIfChanged(ctx, "Service", svc, &corev1.Service{}, key, byResourceVersion(func() *string { return svc.ResourceVersion })); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if c.applies != wantApplies {
			t.Fatalf("%s: %d applies in all, want %d", what, c.applies, wantApplies)
		}
	}

	step("new workspace", 1)
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: key.Name, Namespace: key.Namespace, ResourceVersion: "20"}}
	cached.obj = svc
	step("wake-up by the pods", 1)

	svc.ResourceVersion, c.resourceVersion = "25", "26" // kubectl edit; the apply undoes it
	step("edited by somebody else", 2)
	svc.ResourceVersion = "26"
	step("wake-up after the correction", 2)

	ws.Spec.Exposure = v1alpha1.ExposureLoadBalancer
	step("exposure changed", 3)

	r.forget(types.NamespacedName{Namespace: ws.Namespace, Name: ws.Name})
	step("the same name after the workspace was deleted", 4)
}
