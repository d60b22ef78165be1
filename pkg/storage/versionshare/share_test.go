package versionshare

import (
	"encoding/json"
	"math/rand"
	"reflect"
	"strings"
	"testing"
	"time"
	"unsafe"

	apifuzzer "k8s.io/apimachinery/pkg/api/apitesting/fuzzer"
	metafuzzer "k8s.io/apimachinery/pkg/apis/meta/fuzzer"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/guildnet/guildnet/apis/guildnet"
	"github.com/guildnet/guildnet/apis/guildnet/fuzzer"
	"github.com/guildnet/guildnet/apis/guildnet/install"
)

func database() *guildnet.Database {
	created := metav1.NewTime(time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC))
	return &guildnet.Database{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: "team", Name: "orders", UID: "0b6f-uid", ResourceVersion: "41",
			Labels:     map[string]string{"app": "shop"},
			Finalizers: []string{guildnet.RethinkDBFinalizer},
			ManagedFields: []metav1.ManagedFieldsEntry{
				{Manager: "kubectl", Operation: metav1.ManagedFieldsOperationApply, APIVersion: "guildnet.io/v1alpha1", Time: &created, FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:spec":{"f:deletionPolicy":{}}}`)}},
			},
		},
		Spec: guildnet.DatabaseSpec{DeletionPolicy: guildnet.DeletionPolicyRetain},
		Status: guildnet.DatabaseStatus{
			RethinkDBName: "team_orders",
			Conditions:    []metav1.Condition{{Type: "Ready", Status: metav1.ConditionFalse, Reason: "Creating", Message: "creating the database in RethinkDB", LastTransitionTime: created}},
		},
	}
}

func sameString(a, b string) bool { return unsafe.StringData(a) == unsafe.StringData(b) }

// decoded is a copy of db in memory of its own, as decoding a stored
// version makes (a deep copy would share the strings).
func decoded(t testing.TB, db *guildnet.Database) *guildnet.Database {
	t.Helper()
	data, err := json.Marshal(db)
	if err != nil {
		t.Fatal(err)
	}
	out := &guildnet.Database{}
	if err := json.Unmarshal(data, out); err != nil {
		t.Fatal(err)
	}
	return out
}

// A status update shares with the version before it everything but what
// it changed, and both versions keep their values.
func TestShareSharesWhatDidNotChange(t *testing.T) {
	prev := decoded(t, database())
	cur := decoded(t, prev)
	if sameString(cur.Name, prev.Name) {
		t.Fatal("the decoded copy shares memory before Share")
	}
	cur.ResourceVersion = "42"
	cur.Status.Tables = 3
	cur.Status.Conditions[0].Status, cur.Status.Conditions[0].Reason = metav1.ConditionTrue, "Ready"
	prevCopy, want := prev.DeepCopy(), cur.DeepCopy()

	Share(prev, cur)

	if !reflect.DeepEqual(prev, prevCopy) {
		t.Fatalf("the previous version changed:\n%#v\nwant\n%#v", prev, prevCopy)
	}
	if !reflect.DeepEqual(cur, want) {
		t.Fatalf("the new version's value changed:\n%#v\nwant\n%#v", cur, want)
	}
	for what, shared := range map[string]bool{
		"name":                       sameString(cur.Name, prev.Name),
		"UID":                        sameString(string(cur.UID), string(prev.UID)),
		"labels":                     reflect.ValueOf(cur.Labels).UnsafePointer() == reflect.ValueOf(prev.Labels).UnsafePointer(),
		"finalizers":                 &cur.Finalizers[0] == &prev.Finalizers[0],
		"managedFields":              &cur.ManagedFields[0] == &prev.ManagedFields[0],
		"status.rethinkDBName":       sameString(cur.Status.RethinkDBName, prev.Status.RethinkDBName),
		"the condition's message":    sameString(cur.Status.Conditions[0].Message, prev.Status.Conditions[0].Message),
		"the condition's type":       sameString(cur.Status.Conditions[0].Type, prev.Status.Conditions[0].Type),
		"the condition list (not)":   &cur.Status.Conditions[0] != &prev.Status.Conditions[0],
		"the changed reason (not)":   !sameString(cur.Status.Conditions[0].Reason, prev.Status.Conditions[0].Reason),
		"the resourceVersion (not)":  !sameString(cur.ResourceVersion, prev.ResourceVersion),
		"the spec's deletion policy": sameString(string(cur.Spec.DeletionPolicy), string(prev.Spec.DeletionPolicy)),
	} {
		if !shared {
			t.Errorf("%s: shared memory where it should not, or did not where it should", what)
		}
	}
}

// Whatever two objects hold, Share changes neither's value.
func TestShareNeverChangesAValue(t *testing.T) {
	scheme := runtime.NewScheme()
	install.Install(scheme)
	f := apifuzzer.FuzzerFor(apifuzzer.MergeFuzzerFuncs(metafuzzer.Funcs, fuzzer.Funcs), rand.NewSource(7), serializer.NewCodecFactory(scheme))
	for i := range 300 {
		for _, newObj := range []func() runtime.Object{
			func() runtime.Object { return &guildnet.Workspace{} },
			func() runtime.Object { return &guildnet.Database{} },
			func() runtime.Object { return &guildnet.Table{} },
		} {
			prev := newObj()
			f.Fill(prev)
			var cur runtime.Object
			if i%2 == 0 {
				// A related version: the same object with a random status.
				cur = prev.DeepCopyObject()
				status := reflect.ValueOf(cur).Elem().FieldByName("Status")
				f.Fill(status.Addr().Interface())
			} else {
				cur = newObj()
				f.Fill(cur)
			}
			prevCopy, want := prev.DeepCopyObject(), cur.DeepCopyObject()
			Share(prev, cur)
			if !reflect.DeepEqual(prev, prevCopy) {
				t.Fatalf("%T %d: the previous version changed:\n%#v\nwant\n%#v", prev, i, prev, prevCopy)
			}
			if !reflect.DeepEqual(cur, want) {
				t.Fatalf("%T %d: the new version's value changed:\n%#v\nwant\n%#v", cur, i, cur, want)
			}
		}
	}
}

func TestShareIgnoresObjectsOfDifferentTypes(t *testing.T) {
	db, table := database(), &guildnet.Table{ObjectMeta: metav1.ObjectMeta{Name: strings.Clone("orders")}}
	Share(db, table)
	Share(db, nil)
	Share(nil, db)
	if sameString(db.Name, table.Name) {
		t.Fatal("a Table shares memory with a Database")
	}
}

func receive(t *testing.T, w watch.Interface) watch.Event {
	t.Helper()
	select {
	case ev, ok := <-w.ResultChan():
		if !ok {
			t.Fatal("the watch closed")
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no event")
	}
	return watch.Event{}
}

// expectClosed fails unless w's result channel closes with no more events.
func expectClosed(t *testing.T, w watch.Interface, when string) {
	t.Helper()
	select {
	case ev, ok := <-w.ResultChan():
		if ok {
			t.Fatalf("a %s event %s", ev.Type, when)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("the result channel was not closed %s", when)
	}
}

// The watch shares each object with the previous version of the same
// object it delivered, never with another object's or a deleted one's.
func TestWatchSharesWithThePreviousVersion(t *testing.T) {
	inner := watch.NewFake()
	w := Watch(inner)

	first := database()
	other := database()
	other.Name = "invoices"
	second := decoded(t, first)
	second.ResourceVersion = "42"
	labelsOf := func(obj runtime.Object) unsafe.Pointer {
		return reflect.ValueOf(obj.(*guildnet.Database).Labels).UnsafePointer()
	}

	go inner.Add(first)
	receive(t, w)
	go inner.Add(other)
	receive(t, w)
	go inner.Modify(second)
	got := receive(t, w)
	if got.Type != watch.Modified || got.Object != second {
		t.Fatalf("got %s %p, want the MODIFIED event of the second version", got.Type, got.Object)
	}
	if labelsOf(second) != labelsOf(first) {
		t.Error("the second version does not share its labels with the first")
	}
	if labelsOf(second) == labelsOf(other) {
		t.Error("the second version shares its labels with another object")
	}

	go inner.Delete(second.DeepCopy())
	if ev := receive(t, w); ev.Type != watch.Deleted {
		t.Fatalf("got %s, want DELETED", ev.Type)
	}
	recreated := database()
	go inner.Add(recreated)
	receive(t, w)
	if labelsOf(recreated) == labelsOf(second) {
		t.Error("an object created again shares memory with the deleted one")
	}

	w.Stop()
	expectClosed(t, w, "after Stop")
	if !inner.IsStopped() {
		t.Fatal("Stop did not stop the storage's watch")
	}
}

// Different objects whose managed fields record the same set share one
// copy of it; sets that differ stay apart, and no object's value changes.
func TestWatchSharesEqualFieldSetsAcrossObjects(t *testing.T) {
	inner := watch.NewFake()
	w := Watch(inner)
	defer w.Stop()

	a := decoded(t, database())
	b := decoded(t, database())
	b.Name = "invoices"
	c := decoded(t, database())
	c.Name = "users"
	c.ManagedFields[0].FieldsV1 = &metav1.FieldsV1{Raw: []byte(`{"f:spec":{"f:deletionPolicy":{},"f:extra":{}}}`)}
	want := []*guildnet.Database{a.DeepCopy(), b.DeepCopy(), c.DeepCopy()}
	setOf := func(db *guildnet.Database) *metav1.FieldsV1 { return db.ManagedFields[0].FieldsV1 }
	if setOf(a) == setOf(b) {
		t.Fatal("the fixture's objects share a set before the watch")
	}

	for _, db := range []*guildnet.Database{a, b, c} {
		go inner.Add(db)
		receive(t, w)
	}
	if setOf(b) != setOf(a) {
		t.Error("two objects with equal managed fields hold two copies of the set")
	}
	if setOf(c) == setOf(a) {
		t.Error("an object with other managed fields was given another object's set")
	}
	for i, db := range []*guildnet.Database{a, b, c} {
		if !reflect.DeepEqual(db, want[i]) {
			t.Errorf("object %s changed: got %+v, want %+v", db.Name, db, want[i])
		}
	}
}

// The table of sets keeps two generations: a set seen in the last one is
// still shared, and the table never holds more than twice its limit.
func TestFieldSetsGenerations(t *testing.T) {
	f := newFieldSets(2)
	entry := func(raw string) metav1.Object {
		return &metav1.ObjectMeta{ManagedFields: []metav1.ManagedFieldsEntry{{FieldsV1: &metav1.FieldsV1{Raw: []byte(raw)}}}}
	}
	first := entry(`{"f:a":{}}`)
	f.share(first)
	for _, raw := range []string{`{"f:b":{}}`, `{"f:c":{}}`} {
		f.share(entry(raw))
	}
	again := entry(`{"f:a":{}}`)
	f.share(again)
	if again.GetManagedFields()[0].FieldsV1 != first.GetManagedFields()[0].FieldsV1 {
		t.Error("a set from the previous generation was not shared")
	}
	for _, raw := range []string{`{"f:d":{}}`, `{"f:e":{}}`, `{"f:f":{}}`, `{"f:g":{}}`} {
		f.share(entry(raw))
	}
	if n := f.sets.Len(); n > 4 {
		t.Errorf("the table holds %d sets, want at most two generations of 2", n)
	}
}

// When the storage's watch ends (an error, a closed connection), so does
// the shared one, after delivering what came before.
func TestWatchEndsWithTheStoragesWatch(t *testing.T) {
	inner := watch.NewFake()
	w := Watch(inner)
	go func() {
		inner.Error(&metav1.Status{Status: metav1.StatusFailure, Reason: metav1.StatusReasonExpired})
		inner.Stop()
	}()
	if ev := receive(t, w); ev.Type != watch.Error {
		t.Fatalf("got %s, want ERROR", ev.Type)
	}
	expectClosed(t, w, "after the storage's watch ended")
}

// BenchmarkShare is the cost Share adds to each event of the watch cache's
// storage watch: a database's status update.
func BenchmarkShare(b *testing.B) {
	prev := decoded(b, database())
	versions := make([]*guildnet.Database, b.N)
	for i := range versions {
		versions[i] = decoded(b, prev)
		versions[i].Status.Tables = int32(i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		Share(prev, versions[i])
	}
}
