package validation

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/guildnet/guildnet/apis/guildnet"
)

func meta(name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: "team"}
}

// assertErrors checks that errs names exactly the wanted field paths, each
// with a message containing the wanted text.
func assertErrors(t *testing.T, errs field.ErrorList, want map[string]string) {
	t.Helper()
	got := map[string]string{}
	for _, e := range errs {
		got[e.Field] = e.Error()
	}
	for f, text := range want {
		msg, ok := got[f]
		if !ok {
			t.Errorf("no error for %s; got %v", f, errs)
			continue
		}
		if !strings.Contains(msg, text) {
			t.Errorf("error for %s = %q, want it to contain %q", f, msg, text)
		}
	}
	for f, msg := range got {
		if _, ok := want[f]; !ok {
			t.Errorf("unexpected error: %s", msg)
		}
	}
}

func TestValidateWorkspace(t *testing.T) {
	ok := guildnet.WorkspaceSpec{
		Image: "codercom/code-server:4.99.0",
		Ports: []guildnet.WorkspacePort{{Name: "http", Port: 8080}},
		Env:   []guildnet.EnvVar{{Name: "EDITOR", Value: "vim"}},
	}
	cases := map[string]struct {
		mutate func(*guildnet.Workspace)
		want   map[string]string
	}{
		"valid": {func(*guildnet.Workspace) {}, nil},
		"no image": {func(w *guildnet.Workspace) { w.Spec.Image = "" },
			map[string]string{"spec.image": "Required value"}},
		"bad port": {func(w *guildnet.Workspace) { w.Spec.Ports = []guildnet.WorkspacePort{{Port: 70000}} },
			map[string]string{"spec.ports[0].port": "between 1 and 65535"}},
		"duplicate port": {func(w *guildnet.Workspace) {
			w.Spec.Ports = []guildnet.WorkspacePort{{Name: "a", Port: 80}, {Name: "b", Port: 80}}
		}, map[string]string{"spec.ports[1].port": "Duplicate value"}},
		"PORT is reserved": {func(w *guildnet.Workspace) { w.Spec.Env = []guildnet.EnvVar{{Name: "PORT", Value: "1"}} },
			map[string]string{"spec.env[0].name": "always set to 8080"}},
		"value and secret": {func(w *guildnet.Workspace) {
			w.Spec.Env = []guildnet.EnvVar{{Name: "A", Value: "x", SecretKeyRef: &guildnet.SecretKeySelector{Name: "s", Key: "k"}}}
		}, map[string]string{"spec.env[0].value": "together with secretKeyRef"}},
		"unknown exposure": {func(w *guildnet.Workspace) { w.Spec.Exposure = "NodePort" },
			map[string]string{"spec.exposure": `supported values: "ClusterIP", "LoadBalancer"`}},
		"zero storage": {func(w *guildnet.Workspace) { w.Spec.Storage = &guildnet.WorkspaceStorage{} },
			map[string]string{"spec.storage.size": "greater than zero"}},
		"request over limit": {func(w *guildnet.Workspace) {
			w.Spec.Resources = guildnet.ResourceRequirements{
				Requests: map[string]resource.Quantity{"cpu": resource.MustParse("2")},
				Limits:   map[string]resource.Quantity{"cpu": resource.MustParse("1")},
			}
		}, map[string]string{"spec.resources.requests[cpu]": "less than or equal to the limit 1"}},
		"unknown resource": {func(w *guildnet.Workspace) {
			w.Spec.Resources = guildnet.ResourceRequirements{Limits: map[string]resource.Quantity{"gpu": resource.MustParse("1")}}
		}, map[string]string{"spec.resources.limits[gpu]": "Unsupported value"}},
		"negative idle timeout": {func(w *guildnet.Workspace) { w.Spec.IdleTimeout = &metav1.Duration{Duration: -1} },
			map[string]string{"spec.idleTimeout": "must not be negative"}},
		"name with dots": {func(w *guildnet.Workspace) { w.Name = "a.b" },
			map[string]string{"metadata.name": "DNS-1035 label"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			w := &guildnet.Workspace{ObjectMeta: meta("dev"), Spec: *ok.DeepCopy()}
			tc.mutate(w)
			assertErrors(t, ValidateWorkspace(w), tc.want)
		})
	}
}

func TestValidateTable(t *testing.T) {
	cases := map[string]struct {
		name string
		spec guildnet.TableSpec
		want map[string]string
	}{
		"valid":             {"orders.items", guildnet.TableSpec{PrimaryKey: "id", Indexes: []guildnet.TableIndex{{Name: "by_customer", Fields: []string{"customer"}}}}, nil},
		"no dot":            {"items", guildnet.TableSpec{}, map[string]string{"metadata.name": `must be "<database>.<table>"`}},
		"two dots":          {"a.b.c", guildnet.TableSpec{}, map[string]string{"metadata.name": `must be "<database>.<table>"`}},
		"upper case table":  {"orders.Items", guildnet.TableSpec{}, map[string]string{"metadata.name": "table part"}},
		"bad primary key":   {"orders.items", guildnet.TableSpec{PrimaryKey: "1st"}, map[string]string{"spec.primaryKey": "must be a field name"}},
		"index on pk":       {"orders.items", guildnet.TableSpec{PrimaryKey: "id", Indexes: []guildnet.TableIndex{{Name: "id"}}}, map[string]string{"spec.indexes[0].name": "already indexed"}},
		"bad durability":    {"orders.items", guildnet.TableSpec{Durability: "fast"}, map[string]string{"spec.durability": "Unsupported value"}},
		"bad deletion":      {"orders.items", guildnet.TableSpec{DeletionPolicy: "Orphan"}, map[string]string{"spec.deletionPolicy": "Unsupported value"}},
		"multi on compound": {"orders.items", guildnet.TableSpec{Indexes: []guildnet.TableIndex{{Name: "x", Fields: []string{"a", "b"}, Multi: true}}}, map[string]string{"spec.indexes[0].multi": "one field"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			assertErrors(t, ValidateTable(&guildnet.Table{ObjectMeta: meta(tc.name), Spec: tc.spec}), tc.want)
		})
	}
}

func TestTablePrimaryKeyIsImmutable(t *testing.T) {
	old := &guildnet.Table{ObjectMeta: meta("orders.items"), Spec: guildnet.TableSpec{PrimaryKey: "id"}}
	old.ResourceVersion = "1"
	updated := old.DeepCopy()
	updated.Spec.PrimaryKey = "sku"
	assertErrors(t, ValidateTableUpdate(updated, old), map[string]string{"spec.primaryKey": "field is immutable"})
}

func TestValidateDatabase(t *testing.T) {
	assertErrors(t, ValidateDatabase(&guildnet.Database{ObjectMeta: meta("orders")}), nil)
	assertErrors(t, ValidateDatabase(&guildnet.Database{ObjectMeta: meta("orders"), Spec: guildnet.DatabaseSpec{DeletionPolicy: "Drop"}}),
		map[string]string{"spec.deletionPolicy": `supported values: "Delete", "Retain"`})
	assertErrors(t, ValidateDatabase(&guildnet.Database{ObjectMeta: meta("orders.v2")}),
		map[string]string{"metadata.name": "must not contain dots"})
}
