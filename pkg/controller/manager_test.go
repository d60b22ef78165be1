package controller

import (
	"net/http"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"

	"github.com/guildnet/guildnet/apis/guildnet/v1alpha1"
)

// The reconcilers' own kinds map without kube-apiserver: set-up runs before
// kube-apiserver can list guildnet.io (here, before any server exists).
func TestMapperKnowsOwnKindsWithoutDiscovery(t *testing.T) {
	// Nothing listens on port 1: any discovery request would fail.
	m, err := newMapper(&rest.Config{Host: "http://127.0.0.1:1"}, http.DefaultClient)
	if err != nil {
		t.Fatal(err)
	}
	for kind, resource := range map[string]string{"Workspace": "workspaces", "Database": "databases", "Table": "tables"} {
		gk := v1alpha1.SchemeGroupVersion.WithKind(kind).GroupKind()
		mapping, err := m.RESTMapping(gk, v1alpha1.SchemeGroupVersion.Version)
		if err != nil {
			t.Errorf("mapping %s: %v", gk, err)
			continue
		}
		if mapping.Resource != v1alpha1.SchemeGroupVersion.WithResource(resource) || mapping.Scope.Name() != meta.RESTScopeNameNamespace {
			t.Errorf("%s maps to %s (%s), want %s, namespaced", gk, mapping.Resource, mapping.Scope.Name(), resource)
		}
	}
	// Other groups still go to discovery, which fails here.
	if _, err := m.RESTMapping(schema.GroupKind{Group: "apps", Kind: "Deployment"}); err == nil {
		t.Error("apps Deployment mapped without kube-apiserver, want a discovery error")
	}
}
