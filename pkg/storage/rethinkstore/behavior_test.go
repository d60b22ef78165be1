package rethinkstore

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/apitesting"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/apiserver/pkg/apis/example"
	examplev1 "k8s.io/apiserver/pkg/apis/example/v1"
	"k8s.io/apiserver/pkg/storage"
	"k8s.io/apiserver/pkg/storage/storagebackend"

	r "gopkg.in/rethinkdb/rethinkdb-go.v6"
)

func createPods(t *testing.T, ctx context.Context, s *store, ns string, n int) []*example.Pod {
	t.Helper()
	var out []*example.Pod
	for i := range n {
		p := &example.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("p%d", i), Namespace: ns}}
		got := &example.Pod{}
		if err := s.Create(ctx, "/pods/"+ns+"/"+p.Name, p, got, 0); err != nil {
			t.Fatal(err)
		}
		out = append(out, got)
	}
	return out
}

// Keys longer than RethinkDB's 127-byte primary key limit work like others.
func TestLongKey(t *testing.T) {
	ctx, s := testSetup(t)
	name := strings.Repeat("n", 200)
	key := "/pods/ns/" + name
	if err := s.Create(ctx, key, &example.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns"}}, &example.Pod{}, 0); err != nil {
		t.Fatal(err)
	}
	out := &example.Pod{}
	err := s.GuaranteedUpdate(ctx, key, out, false, nil, storage.SimpleUpdate(func(obj runtime.Object) (runtime.Object, error) {
		p := obj.(*example.Pod).DeepCopy()
		p.Labels = map[string]string{"a": "b"}
		return p, nil
	}), nil)
	if err != nil {
		t.Fatal(err)
	}
	list := &example.PodList{}
	if err := s.GetList(ctx, "/pods/ns/", storage.ListOptions{Predicate: storage.Everything, Recursive: true}, list); err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 1 || list.Items[0].Labels["a"] != "b" {
		t.Fatalf("list = %+v", list.Items)
	}
	if err := s.Delete(ctx, key, &example.Pod{}, nil, storage.ValidateAllObjectFunc, nil, storage.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := s.Get(ctx, key, storage.GetOptions{}, &example.Pod{}); !storage.IsNotFound(err) {
		t.Fatalf("Get after delete = %v, want not found", err)
	}
}

// A watch from before the window of recent events gets 410 Gone.
func TestWatchOlderThanWindow(t *testing.T) {
	o := testOptions
	o.WindowSize = 3
	ctx, s := testSetupWith(t, testClient(t), o)
	pods := createPods(t, ctx, s, "ns", 6)
	if _, err := s.GetCurrentResourceVersion(ctx); err != nil { // the tailer has read them all
		t.Fatal(err)
	}
	w, err := s.Watch(ctx, "/pods/", storage.ListOptions{ResourceVersion: pods[0].ResourceVersion, Predicate: storage.Everything, Recursive: true})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	ev := <-w.ResultChan()
	if st, ok := ev.Object.(*metav1.Status); ev.Type != watch.Error || !ok || st.Code != 410 {
		t.Fatalf("event = %s %v, want a 410 error", ev.Type, ev.Object)
	}
	// Within the window, the watch works.
	w2, err := s.Watch(ctx, "/pods/", storage.ListOptions{ResourceVersion: pods[4].ResourceVersion, Predicate: storage.Everything, Recursive: true})
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Stop()
	if ev := <-w2.ResultChan(); ev.Type != watch.Added || ev.Object.(*example.Pod).Name != "p5" {
		t.Fatalf("event = %s %v, want ADDED p5", ev.Type, ev.Object)
	}
}

// The window keeps one copy of each object version: an update's previous
// object is the bytes of the key's event before it, and a watch from before
// the updates still sees every old object (the DELETED event carries the
// last version, a label selector turns a change that stops matching into a
// DELETED).
func TestWindowSharesPreviousObjects(t *testing.T) {
	ctx, s := testSetup(t)
	created := createPods(t, ctx, s, "ns", 1)[0]
	key := "/pods/ns/p0"
	for _, team := range []string{"a", "b"} {
		err := s.GuaranteedUpdate(ctx, key, &example.Pod{}, false, nil, storage.SimpleUpdate(func(obj runtime.Object) (runtime.Object, error) {
			p := obj.(*example.Pod).DeepCopy()
			p.Labels = map[string]string{"team": team}
			return p, nil
		}), nil)
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Delete(ctx, key, &example.Pod{}, nil, storage.ValidateAllObjectFunc, nil, storage.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetCurrentResourceVersion(ctx); err != nil { // the tailer has read them all
		t.Fatal(err)
	}

	s.b.mu.Lock()
	evs := append([]*event(nil), s.b.events...)
	s.b.mu.Unlock()
	var mine []*event
	for _, ev := range evs {
		if ev.key == key {
			mine = append(mine, ev)
		}
	}
	if len(mine) != 4 {
		t.Fatalf("the window holds %d events of %s, want 4 (create, 2 updates, delete)", len(mine), key)
	}
	for i, ev := range mine[1:] {
		before := mine[i]
		if !ev.prevShared || len(ev.prev) == 0 || &ev.prev[0] != &before.value[0] {
			t.Errorf("event at revision %d holds a copy of its previous object, want the bytes of revision %d", ev.rev, before.rev)
		}
	}

	w, err := s.Watch(ctx, "/pods/", storage.ListOptions{ResourceVersion: created.ResourceVersion, Recursive: true,
		Predicate: storage.SelectionPredicate{Label: labels.SelectorFromSet(labels.Set{"team": "a"}), Field: fields.Everything(), GetAttrs: storage.DefaultClusterScopedAttr}})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	var got []string
	for len(got) < 2 {
		select {
		case ev := <-w.ResultChan():
			p, ok := ev.Object.(*example.Pod)
			if !ok {
				t.Fatalf("event %s %v, want a pod", ev.Type, ev.Object)
			}
			got = append(got, fmt.Sprintf("%s team=%s", ev.Type, p.Labels["team"]))
		case <-time.After(wait.ForeverTestTimeout):
			t.Fatalf("watch events so far %v, want 2", got)
		}
	}
	want := []string{"ADDED team=a", "DELETED team=a"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("watch events %v, want %v", got, want)
	}
}

// After an apiserver restart (a new backend on the same database), watches
// resume from resourceVersions handed out before: the window is refilled
// from the log.
func TestWatchResumesAfterRestart(t *testing.T) {
	c1 := testClient(t)
	ctx, s1 := testSetupWith(t, c1, testOptions)
	pods := createPods(t, ctx, s1, "ns", 3)

	_, s2 := testSetupWith(t, replicaClient(t, c1), testOptions)
	w, err := s2.Watch(ctx, "/pods/", storage.ListOptions{ResourceVersion: pods[0].ResourceVersion, Predicate: storage.Everything, Recursive: true})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	for _, want := range pods[1:] {
		ev := <-w.ResultChan()
		if ev.Type != watch.Added || ev.Object.(*example.Pod).ResourceVersion != want.ResourceVersion {
			t.Fatalf("event = %s %v, want ADDED %s at %s", ev.Type, ev.Object, want.Name, want.ResourceVersion)
		}
	}
}

// Scheduled compaction keeps one interval of history and then removes
// superseded rows; lists and watches keep working, old revisions get 410.
func TestScheduledCompaction(t *testing.T) {
	o := testOptions
	o.CompactionInterval = 300 * time.Millisecond
	ctx, s := testSetupWith(t, testClient(t), o)
	key := "/pods/ns/a"
	first := &example.Pod{}
	if err := s.Create(ctx, key, &example.Pod{ObjectMeta: metav1.ObjectMeta{Name: "a", Namespace: "ns"}}, first, 0); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if err := s.GuaranteedUpdate(ctx, key, &example.Pod{}, false, nil, storage.SimpleUpdate(func(obj runtime.Object) (runtime.Object, error) {
			p := obj.(*example.Pod).DeepCopy()
			p.Labels = map[string]string{"i": fmt.Sprint(i)}
			return p, nil
		}), nil); err != nil {
			t.Fatal(err)
		}
	}
	// The first compaction only records the watermark; the next removes the
	// history up to it, leaving the newest row of the key.
	var rows int
	if err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 20*time.Second, true, func(ctx context.Context) (bool, error) {
		err := s.b.runOne(ctx, s.b.log.GetAllByIndex(keyIndex, key).Count(), &rows)
		return err == nil && rows == 1, err
	}); err != nil {
		t.Fatalf("%d log rows of %s, want 1 after compaction: %v", rows, key, err)
	}
	if s.CompactRevision() == 0 {
		t.Errorf("CompactRevision() = 0 after a compaction")
	}
	list := &example.PodList{}
	if err := s.GetList(ctx, "/pods/", storage.ListOptions{Predicate: storage.Everything, Recursive: true}, list); err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 1 || list.Items[0].Labels["i"] != "4" {
		t.Fatalf("list after compaction = %+v", list.Items)
	}
	err := s.GetList(ctx, "/pods/", storage.ListOptions{ResourceVersion: first.ResourceVersion, ResourceVersionMatch: metav1.ResourceVersionMatchExact, Predicate: storage.Everything, Recursive: true}, &example.PodList{})
	if !apierrors.IsResourceExpired(err) {
		t.Fatalf("list at a compacted revision = %v, want 410", err)
	}
}

// The decorator builds a working storage from a registry's resource config,
// and its DestroyFunc releases it.
func TestStorageDecorator(t *testing.T) {
	c := testClient(t)
	cfg := storagebackend.NewDefaultConfig("/registry", apitesting.TestCodec(codecs, examplev1.SchemeGroupVersion)).ForResource(schema.GroupResource{Resource: "pods"})
	si, destroy, err := NewStorageDecorator(c)(cfg, "/pods", nil, newPod, func() runtime.Object { return &example.PodList{} }, storage.DefaultNamespaceScopedAttr, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer destroy()
	ctx := context.Background()
	if err := si.Create(ctx, "/pods/ns/a", &example.Pod{ObjectMeta: metav1.ObjectMeta{Name: "a", Namespace: "ns"}}, &example.Pod{}, 0); err != nil {
		t.Fatal(err)
	}
	got := &example.Pod{}
	if err := si.Get(ctx, "/pods/ns/a", storage.GetOptions{}, got); err != nil || got.Name != "a" {
		t.Fatalf("Get = %v, %v", got, err)
	}
	if err := si.ReadinessCheck(); err != nil {
		t.Fatalf("ReadinessCheck: %v", err)
	}
	var keys []string
	if err := si.(*store).b.log.Filter(func(row r.Term) r.Term { return row.Field("fill").Default(false).Not() }).Field("key").ReadAll(&keys, c.Session()); err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || keys[0] != "/registry/pods/ns/a" {
		t.Fatalf("stored keys = %v, want the config prefix in front", keys)
	}
}
