package workspace

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	"github.com/guildnet/guildnet/apis/guildnet"
)

// The informer's transform drops what the resolver does not read, and the
// resolver still picks the ready endpoint of a transformed slice.
func TestEndpointsOnlyKeepsWhatResolveReads(t *testing.T) {
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Name: "w-abc", Namespace: "ns",
			Labels:          map[string]string{discoveryv1.LabelServiceName: "w", guildnet.WorkspaceLabel: "w"},
			Annotations:     map[string]string{"endpoints.kubernetes.io/last-change-trigger-time": "2026-11-29T10:00:00Z"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Service", Name: "w", UID: "svc-uid"}},
			ManagedFields:   []metav1.ManagedFieldsEntry{{Manager: "endpointslice-controller"}},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{
			{Addresses: []string{"10.0.0.7"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(false)}, NodeName: ptr.To("node-1"),
				TargetRef: &corev1.ObjectReference{Kind: "Pod", Name: "w-6f9-x"}, Zone: ptr.To("z")},
			{Addresses: []string{"10.0.0.8"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}, NodeName: ptr.To("node-2")},
		},
		Ports: []discoveryv1.EndpointPort{{Port: ptr.To(int32(8080))}},
	}
	out, err := EndpointsOnly(slice)
	if err != nil {
		t.Fatal(err)
	}
	s := out.(*discoveryv1.EndpointSlice)
	if s.ManagedFields != nil || s.Annotations != nil || s.OwnerReferences != nil {
		t.Errorf("metadata kept: managedFields %v, annotations %v, owners %v", s.ManagedFields, s.Annotations, s.OwnerReferences)
	}
	for _, ep := range s.Endpoints {
		if ep.NodeName != nil || ep.TargetRef != nil || ep.Zone != nil {
			t.Errorf("endpoint %v kept its node, pod or zone", ep.Addresses)
		}
	}

	indexer := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	if err := indexer.Add(s); err != nil {
		t.Fatal(err)
	}
	ws := &guildnet.Workspace{ObjectMeta: metav1.ObjectMeta{Name: "w", Namespace: "ns"}}
	u, err := NewEndpointResolver(discoverylisters.NewEndpointSliceLister(indexer)).Resolve(ws, 8080)
	if err != nil {
		t.Fatal(err)
	}
	if u.Host != "10.0.0.8:8080" {
		t.Fatalf("resolved %s, want the ready endpoint 10.0.0.8:8080", u.Host)
	}
	if _, err := EndpointsOnly(&corev1.Pod{}); err != nil {
		t.Fatalf("another type: %v", err)
	}
}
