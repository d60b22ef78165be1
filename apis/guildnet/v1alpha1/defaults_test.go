package v1alpha1

import (
	"testing"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/runtime"
)

func defaulted(t *testing.T, obj runtime.Object) {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	scheme.Default(obj)
}

// The Host App's defaults: port 8080 named http, ClusterIP, home at /home/coder.
func TestWorkspaceDefaults(t *testing.T) {
	ws := &Workspace{Spec: WorkspaceSpec{Image: "codercom/code-server", Storage: &WorkspaceStorage{Size: resource.MustParse("1Gi")}}}
	defaulted(t, ws)
	if len(ws.Spec.Ports) != 1 || ws.Spec.Ports[0] != (WorkspacePort{Name: "http", Port: 8080}) {
		t.Errorf("ports = %+v, want [{http 8080}]", ws.Spec.Ports)
	}
	if ws.Spec.Exposure != ExposureClusterIP {
		t.Errorf("exposure = %q, want ClusterIP", ws.Spec.Exposure)
	}
	if ws.Spec.Storage.MountPath != "/home/coder" {
		t.Errorf("mountPath = %q, want /home/coder", ws.Spec.Storage.MountPath)
	}
	custom := &Workspace{Spec: WorkspaceSpec{Image: "nginx", Ports: []WorkspacePort{{Port: 80}}}}
	defaulted(t, custom)
	if custom.Spec.Ports[0] != (WorkspacePort{Name: "http", Port: 80}) {
		t.Errorf("a given port keeps its number and gets a name: %+v", custom.Spec.Ports)
	}
}

func TestTableAndDatabaseDefaults(t *testing.T) {
	tbl := &Table{Spec: TableSpec{Indexes: []TableIndex{{Name: "customer"}}}}
	defaulted(t, tbl)
	if tbl.Spec.PrimaryKey != "id" || tbl.Spec.Durability != DurabilityHard || tbl.Spec.DeletionPolicy != DeletionPolicyRetain {
		t.Errorf("table defaults = %+v", tbl.Spec)
	}
	if got := tbl.Spec.Indexes[0].Fields; len(got) != 1 || got[0] != "customer" {
		t.Errorf("an index without fields indexes the field of its name, got %v", got)
	}
	db := &Database{}
	defaulted(t, db)
	if db.Spec.DeletionPolicy != DeletionPolicyRetain {
		t.Errorf("a database keeps its data unless asked: deletionPolicy = %q", db.Spec.DeletionPolicy)
	}
}
