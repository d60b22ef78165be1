package resource

import (
	"fmt"
	"reflect"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"

	"github.com/guildnet/guildnet/apis/guildnet"
)

func sameMap(a, b fields.Set) bool {
	return reflect.ValueOf(a).UnsafePointer() == reflect.ValueOf(b).UnsafePointer()
}

// Every version of an object gets one fields.Set, with what GetAttrs gives;
// other objects get their own; labels are the object's.
func TestSharedAttrsOneFieldSetPerObject(t *testing.T) {
	a := newSharedAttrs(16)
	v1 := &guildnet.Database{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "orders", ResourceVersion: "1", Labels: map[string]string{"a": "b"}}}
	v2 := v1.DeepCopy()
	v2.ResourceVersion, v2.Labels = "2", map[string]string{"a": "c"}

	l1, f1, err := a.GetAttrs(v1)
	if err != nil {
		t.Fatal(err)
	}
	l2, f2, err := a.GetAttrs(v2)
	if err != nil {
		t.Fatal(err)
	}
	_, want, _ := GetAttrs(v1)
	if !reflect.DeepEqual(f1, want) || !reflect.DeepEqual(f2, want) {
		t.Errorf("fields %v and %v, want %v", f1, f2, want)
	}
	if !sameMap(f1, f2) {
		t.Error("two versions of one object got two field sets")
	}
	if l1["a"] != "b" || l2["a"] != "c" {
		t.Errorf("labels %v and %v, want each version's own", l1, l2)
	}

	for _, other := range []metav1.ObjectMeta{{Namespace: "team", Name: "users"}, {Namespace: "other", Name: "orders"}} {
		_, f, _ := a.GetAttrs(&guildnet.Database{ObjectMeta: other})
		if sameMap(f, f1) || f["metadata.name"] != other.Name || f["metadata.namespace"] != other.Namespace {
			t.Errorf("%s/%s got fields %v (shared with team/orders: %v)", other.Namespace, other.Name, f, sameMap(f, f1))
		}
	}
}

// Past its limit the table starts a new generation: what was used in the
// last one is still shared, what was not is dropped, and every answer
// stays right.
func TestSharedAttrsGenerations(t *testing.T) {
	a := newSharedAttrs(4)
	get := func(name string) fields.Set {
		_, f, err := a.GetAttrs(&guildnet.Table{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name}})
		if err != nil {
			t.Fatal(err)
		}
		if f["metadata.name"] != name || f["metadata.namespace"] != "ns" {
			t.Fatalf("%s got fields %v", name, f)
		}
		return f
	}
	first := get("obj-0")
	for i := 1; i < 4; i++ {
		get(fmt.Sprint("obj-", i))
	}
	// obj-4 fills the table: a new generation starts with it.
	get("obj-4")
	if !sameMap(get("obj-0"), first) {
		t.Error("obj-0, in the previous generation, got a new field set")
	}
	for i := 5; i < 12; i++ {
		get(fmt.Sprint("obj-", i))
	}
	if n := a.fields.Len(); n > 8 {
		t.Errorf("the table holds %d sets, want at most two generations of 4", n)
	}
	if sameMap(get("obj-1"), first) {
		t.Error("two objects share a field set")
	}
}
