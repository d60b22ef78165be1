package rethinkstore

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/apiserver/pkg/apis/example"
	"k8s.io/apiserver/pkg/storage"

	"github.com/guildnet/guildnet/pkg/rethinkdb"
)

// replicaClient connects to the same system database as c, on a connection
// (and so a backend: tailer, window) of its own, as a second apiserver
// replica would.
func replicaClient(t *testing.T, c *rethinkdb.Client) *rethinkdb.Client {
	t.Helper()
	o := rethinkdb.NewOptions()
	o.Address = c.Address()
	o.Database = c.Database()
	c2, err := o.Connect(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c2.Close() })
	return c2
}

// recordedEvent is what a watcher saw.
type recordedEvent struct {
	typ watch.EventType
	key string
	rv  uint64
}

// record collects the events of w until stop is closed and the watcher has
// seen lastRV (or the deadline passes).
func record(t *testing.T, w watch.Interface, until func() uint64) []recordedEvent {
	t.Helper()
	var out []recordedEvent
	deadline := time.After(30 * time.Second)
	for {
		if u := until(); u > 0 && len(out) > 0 && out[len(out)-1].rv >= u {
			return out
		}
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				t.Errorf("watch closed early")
				return out
			}
			if ev.Type == watch.Error {
				t.Errorf("watch error: %v", ev.Object)
				return out
			}
			if ev.Type == watch.Bookmark {
				continue
			}
			pod := ev.Object.(*example.Pod)
			rv, _ := strconv.ParseUint(pod.ResourceVersion, 10, 64)
			out = append(out, recordedEvent{ev.Type, pod.Namespace + "/" + pod.Name, rv})
		case <-deadline:
			t.Errorf("timed out waiting for events up to %d; got %d events", until(), len(out))
			return out
		}
	}
}

// Two stores on one database, as two apiserver replicas: concurrent
// read-modify-write cycles lose no update, and watchers on both replicas see
// every committed write exactly once, in strictly increasing resourceVersion.
func TestReplicasConcurrentWrites(t *testing.T) {
	c1 := testClient(t)
	ctx, s1 := testSetupWith(t, c1, testOptions)
	_, s2 := testSetupWith(t, replicaClient(t, c1), testOptions)
	stores := []*store{s1, s2}

	// Start watching on both replicas from the current revision.
	list := &example.PodList{}
	if err := s1.GetList(ctx, "/pods/", storage.ListOptions{Predicate: storage.Everything, Recursive: true}, list); err != nil {
		t.Fatal(err)
	}
	var watchers []watch.Interface
	for _, s := range stores {
		w, err := s.Watch(ctx, "/pods/", storage.ListOptions{ResourceVersion: list.ResourceVersion, Predicate: storage.Everything, Recursive: true})
		if err != nil {
			t.Fatal(err)
		}
		defer w.Stop()
		watchers = append(watchers, w)
	}

	const (
		writersPerStore = 4
		incrementsEach  = 10
		createsEach     = 5
	)
	var (
		mu        sync.Mutex
		committed []uint64 // resourceVersions the writers got back
		wg        sync.WaitGroup
	)
	note := func(obj runtime.Object) {
		rv, _ := strconv.ParseUint(obj.(*example.Pod).ResourceVersion, 10, 64)
		mu.Lock()
		committed = append(committed, rv)
		mu.Unlock()
	}
	counterKey := "/pods/ns/counter"
	counter := &example.Pod{}
	if err := s1.Create(ctx, counterKey, &example.Pod{ObjectMeta: metav1.ObjectMeta{Name: "counter", Namespace: "ns", Annotations: map[string]string{"n": "0"}}}, counter, 0); err != nil {
		t.Fatal(err)
	}
	note(counter)
	for si, s := range stores {
		for w := range writersPerStore {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range incrementsEach {
					out := &example.Pod{}
					err := s.GuaranteedUpdate(ctx, counterKey, out, false, nil, storage.SimpleUpdate(func(obj runtime.Object) (runtime.Object, error) {
						pod := obj.(*example.Pod).DeepCopy()
						n, _ := strconv.Atoi(pod.Annotations["n"])
						pod.Annotations["n"] = strconv.Itoa(n + 1)
						return pod, nil
					}), nil)
					if err != nil {
						t.Errorf("update: %v", err)
						return
					}
					note(out)
				}
				for i := range createsEach {
					name := fmt.Sprintf("p-%d-%d-%d", si, w, i)
					out := &example.Pod{}
					if err := s.Create(ctx, "/pods/ns/"+name, &example.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns"}}, out, 0); err != nil {
						t.Errorf("create: %v", err)
						return
					}
					note(out)
					del := &example.Pod{}
					if err := s.Delete(ctx, "/pods/ns/"+name, del, nil, storage.ValidateAllObjectFunc, nil, storage.DeleteOptions{}); err != nil {
						t.Errorf("delete: %v", err)
						return
					}
					note(del)
				}
			}()
		}
	}
	wg.Wait()
	if t.Failed() {
		return
	}

	// No lost update.
	final := &example.Pod{}
	if err := s2.Get(ctx, counterKey, storage.GetOptions{}, final); err != nil {
		t.Fatal(err)
	}
	if want := strconv.Itoa(2 * writersPerStore * incrementsEach); final.Annotations["n"] != want {
		t.Errorf("counter = %s after concurrent increments, want %s (lost updates)", final.Annotations["n"], want)
	}

	slices.Sort(committed)
	for i := 1; i < len(committed); i++ {
		if committed[i] == committed[i-1] {
			t.Fatalf("two writes got resourceVersion %d", committed[i])
		}
	}
	last := committed[len(committed)-1]
	for i, w := range watchers {
		evs := record(t, w, func() uint64 { return last })
		var seen []uint64
		for j, ev := range evs {
			if j > 0 && ev.rv <= evs[j-1].rv {
				t.Errorf("replica %d: resourceVersion went from %d to %d", i, evs[j-1].rv, ev.rv)
			}
			seen = append(seen, ev.rv)
		}
		if !slices.Equal(seen, committed) {
			t.Errorf("replica %d saw %d events, want the %d committed writes:\n seen %v\n want %v", i, len(seen), len(committed), seen, committed)
		}
	}
}

// A writer that allocated a revision and died leaves a gap. Watchers wait
// for it (never skip ahead), the tailer fills it after GapTimeout, and the
// writer, should it come back, cannot write it any more.
func TestGapIsFilled(t *testing.T) {
	ctx, s := testSetup(t)
	key := "/pods/ns/a"
	created := &example.Pod{}
	if err := s.Create(ctx, key, &example.Pod{ObjectMeta: metav1.ObjectMeta{Name: "a", Namespace: "ns"}}, created, 0); err != nil {
		t.Fatal(err)
	}
	w, err := s.Watch(ctx, "/pods/", storage.ListOptions{ResourceVersion: created.ResourceVersion, Predicate: storage.Everything, Recursive: true})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()

	// The "dead" writer: a revision allocated and claimed, never written.
	dead, err := s.b.allocate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cur, err := s.b.currentForWrite(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := s.b.claim(ctx, key, cur.rev, dead); err != nil || !ok {
		t.Fatalf("claim: %v %v", ok, err)
	}

	// A live writer updates the key: it waits for the dead claim to be
	// resolved (the gap is filled after GapTimeout), then succeeds.
	start := time.Now()
	out := &example.Pod{}
	err = s.GuaranteedUpdate(ctx, key, out, false, nil, storage.SimpleUpdate(func(obj runtime.Object) (runtime.Object, error) {
		pod := obj.(*example.Pod).DeepCopy()
		pod.Labels = map[string]string{"v": "2"}
		return pod, nil
	}), nil)
	if err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(start); waited < testOptions.GapTimeout/2 {
		t.Errorf("update finished after %s, before the gap could have been filled", waited)
	}
	rv, _ := strconv.ParseInt(out.ResourceVersion, 10, 64)
	if rv <= dead {
		t.Errorf("update got resourceVersion %d, want one after the dead revision %d", rv, dead)
	}
	ev := <-w.ResultChan()
	if ev.Type != watch.Modified || ev.Object.(*example.Pod).ResourceVersion != out.ResourceVersion {
		t.Errorf("event = %s %v, want MODIFIED at %s", ev.Type, ev.Object, out.ResourceVersion)
	}

	// The dead writer comes back: its revision is taken by the fill row.
	if ok, err := s.b.appendLog(ctx, logRow{Rev: dead, Key: key, Value: "eA=="}); err != nil || ok {
		t.Errorf("late write of a filled revision: inserted=%v err=%v, want refused", ok, err)
	}
}

// A writer that died after its log row was written but before applying it to
// the objects table: the write counts, and the next reader applies it.
func TestCommittedClaimIsApplied(t *testing.T) {
	ctx, s := testSetup(t)
	key := "/pods/ns/a"
	created := &example.Pod{}
	if err := s.Create(ctx, key, &example.Pod{ObjectMeta: metav1.ObjectMeta{Name: "a", Namespace: "ns"}}, created, 0); err != nil {
		t.Fatal(err)
	}
	st, err := s.b.currentForWrite(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	updated := created.DeepCopy()
	updated.ResourceVersion = ""
	updated.Labels = map[string]string{"v": "2"}
	_, stored, err := s.encode(ctx, key, updated)
	if err != nil {
		t.Fatal(err)
	}
	rev, err := s.b.allocate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := s.b.claim(ctx, key, st.rev, rev); err != nil || !ok {
		t.Fatalf("claim: %v %v", ok, err)
	}
	row := logRow{Rev: rev, Key: key, Value: encodeValue(stored), PrevRev: st.rev, Prev: encodeValue(st.data)}
	if ok, err := s.b.appendLog(ctx, row); err != nil || !ok {
		t.Fatalf("append: %v %v", ok, err)
	}
	// No settle: the "writer" is gone. Readers already see the write.
	got := &example.Pod{}
	if err := s.Get(ctx, key, storage.GetOptions{}, got); err != nil {
		t.Fatal(err)
	}
	if got.Labels["v"] != "2" || got.ResourceVersion != strconv.FormatInt(rev, 10) {
		t.Fatalf("Get = %v at %s, want the committed write at %d", got.Labels, got.ResourceVersion, rev)
	}
	// And writers apply it before writing on top.
	out := &example.Pod{}
	err = s.GuaranteedUpdate(ctx, key, out, false, nil, storage.SimpleUpdate(func(obj runtime.Object) (runtime.Object, error) {
		pod := obj.(*example.Pod).DeepCopy()
		if pod.Labels["v"] != "2" {
			return nil, fmt.Errorf("update based on %v, want the committed write", pod.Labels)
		}
		pod.Labels["v"] = "3"
		return pod, nil
	}), nil)
	if err != nil {
		t.Fatal(err)
	}
}

// A replica learns of another's writes from the log's changefeed, not only
// by polling: with polling an hour away, a write on the other replica still
// reaches its watcher, and still does after compaction has deleted log rows
// (deletions are not inserts the feed passes on).
func TestChangefeedWakesTheOtherReplica(t *testing.T) {
	o := testOptions
	o.PollInterval = time.Hour
	c1 := testClient(t)
	ctx, s1 := testSetupWith(t, c1, o)
	_, s2 := testSetupWith(t, replicaClient(t, c1), o)

	w, err := s1.Watch(ctx, "/pods/", storage.ListOptions{ResourceVersion: "0", Predicate: storage.Everything, Recursive: true})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	expect := func(name string) {
		t.Helper()
		timeout := time.After(wait.ForeverTestTimeout)
		for {
			select {
			case ev := <-w.ResultChan():
				if p, ok := ev.Object.(*example.Pod); ok && p.Name == name {
					return
				}
			case <-timeout:
				t.Fatalf("the watcher on one replica did not see pod %s written on the other", name)
			}
		}
	}

	created := &example.Pod{}
	if err := s2.Create(ctx, "/pods/ns/a", &example.Pod{ObjectMeta: metav1.ObjectMeta{Name: "a", Namespace: "ns"}}, created, 0); err != nil {
		t.Fatal(err)
	}
	expect("a")
	rv, err := s2.versioner.ParseResourceVersion(created.ResourceVersion)
	if err != nil {
		t.Fatal(err)
	}
	if err := s2.b.compact(ctx, int64(rv)); err != nil {
		t.Fatal(err)
	}
	if err := s2.Create(ctx, "/pods/ns/b", &example.Pod{ObjectMeta: metav1.ObjectMeta{Name: "b", Namespace: "ns"}}, &example.Pod{}, 0); err != nil {
		t.Fatal(err)
	}
	expect("b")
}
