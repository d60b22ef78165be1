package workspace

import (
	"context"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apiserver/pkg/registry/rest"

	"github.com/guildnet/guildnet/apis/guildnet"
)

// statusStore is a rest.Updater over one stored workspace, applying the
// update function to the stored object as the generic store does.
type statusStore struct {
	mu     sync.Mutex
	ws     *guildnet.Workspace
	writes int
}

func (s *statusStore) New() runtime.Object { return &guildnet.Workspace{} }

func (s *statusStore) Update(ctx context.Context, name string, objInfo rest.UpdatedObjectInfo, _ rest.ValidateObjectFunc, _ rest.ValidateObjectUpdateFunc, _ bool, _ *metav1.UpdateOptions) (runtime.Object, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	obj, err := objInfo.UpdatedObject(ctx, s.ws.DeepCopy())
	if err != nil {
		return nil, false, err
	}
	s.ws = obj.(*guildnet.Workspace)
	s.writes++
	return obj, false, nil
}

func (s *statusStore) last() (*metav1.Time, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ws.Status.LastActivityTime, s.writes
}

func TestActivityWritesLastActivityTimeForward(t *testing.T) {
	ws := &guildnet.Workspace{ObjectMeta: metav1.ObjectMeta{Name: "w", Namespace: "ns", UID: "u"},
		Spec: guildnet.WorkspaceSpec{IdleTimeout: &metav1.Duration{Duration: 4 * time.Second}}}
	future := metav1.NewTime(time.Now().Add(time.Hour).Truncate(time.Second))
	store := &statusStore{ws: ws.DeepCopy()}
	a := NewActivity(store, time.Minute)
	defer a.Stop()

	a.Touch(ws)
	waitFor(t, func() bool { last, _ := store.last(); return last != nil }, "a request to be recorded")
	first, _ := store.last()
	if d := time.Since(first.Time); d < -time.Second || d > 5*time.Second {
		t.Fatalf("lastActivityTime %s is not the time of the request", first)
	}

	// An open WebSocket keeps the time moving with no further requests.
	closeWS := a.Open(ws)
	waitFor(t, func() bool { last, _ := store.last(); return last.After(first.Time) }, "an open WebSocket to refresh the time")
	closeWS()

	// Another replica recorded a later time: it is never moved back.
	store.mu.Lock()
	store.ws.Status.LastActivityTime = &future
	store.mu.Unlock()
	a.Touch(ws)
	a.Stop()
	if last, _ := store.last(); !last.Equal(&future) {
		t.Fatalf("lastActivityTime moved back from %s to %s", future, last)
	}
}

func TestActivityWritesAtMostOncePerInterval(t *testing.T) {
	ws := &guildnet.Workspace{ObjectMeta: metav1.ObjectMeta{Name: "w", Namespace: "ns", UID: "u"}}
	store := &statusStore{ws: ws.DeepCopy()}
	a := NewActivity(store, time.Hour)
	for range 1000 {
		a.Touch(ws)
	}
	waitFor(t, func() bool { _, n := store.last(); return n == 1 }, "the first write")
	for range 1000 {
		a.Touch(ws)
	}
	a.Stop() // the final flush writes what is pending: one more
	if _, n := store.last(); n != 2 {
		t.Fatalf("%d status writes for 2000 requests within one interval, want 2", n)
	}
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
