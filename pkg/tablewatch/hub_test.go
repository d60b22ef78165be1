package tablewatch

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	r "gopkg.in/rethinkdb/rethinkdb-go.v6"

	"github.com/guildnet/guildnet/pkg/devenv/reqlite"
	"github.com/guildnet/guildnet/pkg/devenv/reqlite/reqlitetest"
	"github.com/guildnet/guildnet/pkg/rethinkdb"
	"github.com/guildnet/guildnet/pkg/rows"
)

const waitFor = 10 * time.Second

var table = rows.Table{DB: "shop", Name: "items"}

func connect(t *testing.T, addr string) *rethinkdb.Client {
	t.Helper()
	o := rethinkdb.NewOptions()
	o.Address = addr
	c, err := o.Connect(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func createTable(t *testing.T, c *rethinkdb.Client) {
	t.Helper()
	if _, err := r.DBCreate(table.DB).RunWrite(c.Session()); err != nil {
		t.Fatal(err)
	}
	if _, err := r.DB(table.DB).TableCreate(table.Name).RunWrite(c.Session()); err != nil {
		t.Fatal(err)
	}
}

func setup(t *testing.T, opts Options) (*rethinkdb.Client, *Hub) {
	t.Helper()
	c := connect(t, reqlitetest.StartForTest(t))
	createTable(t, c)
	h := NewHub(c, opts)
	t.Cleanup(h.Close)
	return c, h
}

func write(t *testing.T, c *rethinkdb.Client, q r.Term) {
	t.Helper()
	if _, err := q.RunWrite(c.Session()); err != nil {
		t.Fatal(err)
	}
}

func tbl() r.Term { return r.DB(table.DB).Table(table.Name) }

// step is one write and the event it must produce.
type step struct {
	q    r.Term
	want string // "ADDED k", "MODIFIED k", "DELETED k"
}

// mutations returns n writes: inserts, updates and deletes, mixed.
func mutations(n int, prefix string) []step {
	var out []step
	for i := 0; len(out) < n; i++ {
		k := fmt.Sprintf("%s%03d", prefix, i)
		out = append(out, step{tbl().Insert(map[string]any{"id": k, "v": 0}), "ADDED " + k})
		if len(out) < n {
			out = append(out, step{tbl().Get(k).Update(map[string]any{"v": 1}), "MODIFIED " + k})
		}
		if len(out) < n && i%2 == 1 {
			out = append(out, step{tbl().Get(k).Delete(), "DELETED " + k})
		}
	}
	return out
}

func describe(ev Event) string {
	row := ev.New
	if row == nil {
		row = ev.Old
	}
	return fmt.Sprintf("%s %v", ev.Type, row["id"])
}

func next(t *testing.T, s *Subscription) Event {
	t.Helper()
	select {
	case ev, ok := <-s.Events():
		if !ok {
			t.Fatalf("events closed early: %v", s.Err())
		}
		return ev
	case <-time.After(waitFor):
		t.Fatal("no event within", waitFor)
	}
	return Event{}
}

// expect reads len(want) events and compares them.
func expect(t *testing.T, s *Subscription, want []string) []Event {
	t.Helper()
	var got []Event
	for i, w := range want {
		ev := next(t, s)
		if d := describe(ev); d != w {
			t.Fatalf("event %d = %q, want %q", i, d, w)
		}
		if ev.ResumeToken == "" {
			t.Fatalf("event %d has no resume token", i)
		}
		got = append(got, ev)
	}
	return got
}

// expectNothingMore writes a marker row and checks it is the next event:
// no duplicate or stray event came before it.
func expectNothingMore(t *testing.T, c *rethinkdb.Client, subs ...*Subscription) {
	t.Helper()
	k := "zz-marker-" + strconv.FormatInt(time.Now().UnixNano(), 10)
	write(t, c, tbl().Insert(map[string]any{"id": k}))
	for _, s := range subs {
		expect(t, s, []string{"ADDED " + k})
	}
}

func wants(steps []step) []string {
	var out []string
	for _, s := range steps {
		out = append(out, s.want)
	}
	return out
}

func run(t *testing.T, c *rethinkdb.Client, steps []step) {
	t.Helper()
	for _, s := range steps {
		write(t, c, s.q)
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitEnd drains s until Events closes (bounded) and returns Err.
func waitEnd(t *testing.T, s *Subscription, max int) error {
	t.Helper()
	timeout := time.After(waitFor)
	for range max + 1 {
		select {
		case _, ok := <-s.Events():
			if !ok {
				return s.Err()
			}
		case <-timeout:
			t.Fatal("subscription did not end")
		}
	}
	t.Fatalf("subscription still delivering after %d events", max)
	return nil
}

func TestTwoSubscribersSeeEveryChangeOnceInOrder(t *testing.T) {
	c, h := setup(t, Options{})
	a, err := h.Watch(t.Context(), table, false, "")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := h.Watch(t.Context(), table, false, "")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if n := h.openFeeds(); n != 1 {
		t.Fatalf("%d changefeeds open, want 1 shared", n)
	}
	steps := mutations(60, "k")
	done := make(chan []Event, 1)
	go func() {
		// b reads concurrently with the writes.
		var got []Event
		for range len(steps) {
			select {
			case ev := <-b.Events():
				got = append(got, ev)
			case <-time.After(waitFor):
				done <- got
				return
			}
		}
		done <- got
	}()
	run(t, c, steps)
	evA := expect(t, a, wants(steps))
	evB := <-done
	if len(evB) != len(steps) {
		t.Fatalf("second subscriber got %d events, want %d (err %v)", len(evB), len(steps), b.Err())
	}
	for i := range evB {
		if describe(evB[i]) != describe(evA[i]) || evB[i].ResumeToken != evA[i].ResumeToken {
			t.Fatalf("event %d differs: %q %q", i, describe(evB[i]), describe(evA[i]))
		}
	}
	if ev := evA[1]; ev.Old["v"] != float64(0) || ev.New["v"] != float64(1) {
		t.Errorf("MODIFIED event = %+v, want old v=0 and new v=1", ev)
	}
	expectNothingMore(t, c, b)
	// Token is exact once Events has closed, which is when tables/watch
	// reads it for its final BOOKMARK (while events still flow, it may lag
	// the one just received, never run ahead of it).
	a.Close()
	waitEnd(t, a, 0) // fails on any event after the last change
	if a.Token() != evA[len(evA)-1].ResumeToken {
		t.Errorf("Token() after the end is not the last delivered event's token")
	}
}

func TestResumeFromTokenGetsExactlyTheRest(t *testing.T) {
	c, h := setup(t, Options{})
	a, err := h.Watch(t.Context(), table, false, "")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	startTok := a.Token()
	steps := mutations(20, "k")
	steps = append(steps, step{tbl().Insert(map[string]any{"id": "last"}), "ADDED last"})
	run(t, c, steps)
	evs := expect(t, a, wants(steps))

	subs := []*Subscription{a}
	for _, k := range []int{0, 7, 19, 20} {
		b, err := h.Watch(t.Context(), table, false, evs[k].ResumeToken)
		if err != nil {
			t.Fatalf("resume after event %d: %v", k, err)
		}
		defer b.Close()
		expect(t, b, wants(steps[k+1:]))
		subs = append(subs, b)
	}
	// The token of the start position resumes from the start.
	b, err := h.Watch(t.Context(), table, true /* ignored with a token */, startTok)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	expect(t, b, wants(steps))
	expectNothingMore(t, c, append(subs, b)...)
	// After Events closed, Token is the last delivered event's (for the
	// final BOOKMARK); it resumes with nothing missed.
	b.Close()
	b2, err := h.Watch(t.Context(), table, false, b.Token())
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	expectNothingMore(t, c, b2)
}

func TestResyncAndBadTokens(t *testing.T) {
	c, h := setup(t, Options{BufferSize: 5})
	a, err := h.Watch(t.Context(), table, false, "")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	steps := mutations(10, "k")
	run(t, c, steps)
	evs := expect(t, a, wants(steps))

	var resync *ResyncError
	var param *rows.ParameterError
	tok, _ := parseToken(evs[3].ResumeToken)
	other := tok
	other.Instance = "another-apiserver"
	future := tok
	future.Seq = 1000
	oldEpoch := tok
	oldEpoch.Epoch = 99
	otherTable := tok
	otherTable.Table = "shop.other"
	for name, tc := range map[string]struct {
		token string
		want  any
	}{
		"too old":         {evs[3].ResumeToken, &resync},
		"other instance":  {other.encode(), &resync},
		"from the future": {future.encode(), &resync},
		"older feed":      {oldEpoch.encode(), &resync},
		"not base64":      {"!!!", &param},
		"not a token":     {"e30", &param}, // {}
		"other table":     {otherTable.encode(), &param},
	} {
		_, err := h.Watch(t.Context(), table, false, tc.token)
		if err == nil || !errors.As(err, tc.want) {
			t.Errorf("%s: err = %v (%T)", name, err, err)
		}
	}
	// The oldest buffered resume point still works: after event 5 (index 4).
	b, err := h.Watch(t.Context(), table, false, evs[4].ResumeToken)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	expect(t, b, wants(steps[5:]))
	expectNothingMore(t, c, a, b)
	if (&ResyncError{}).Error() != "resume token too old or from another apiserver instance; reload with includeInitial=true" {
		t.Errorf("ResyncError message changed: %q", (&ResyncError{}).Error())
	}
}

func TestSlowSubscriberIsDroppedOthersAreNot(t *testing.T) {
	c, h := setup(t, Options{SubscriberBuffer: 4})
	slow, err := h.Watch(t.Context(), table, false, "")
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	fast, err := h.Watch(t.Context(), table, false, "")
	if err != nil {
		t.Fatal(err)
	}
	defer fast.Close()
	steps := mutations(40, "k")
	done := make(chan error, 1)
	go func() {
		for i, w := range wants(steps) {
			select {
			case ev, ok := <-fast.Events():
				if !ok {
					done <- fmt.Errorf("fast subscriber ended: %v", fast.Err())
					return
				}
				if describe(ev) != w {
					done <- fmt.Errorf("event %d = %q, want %q", i, describe(ev), w)
					return
				}
			case <-time.After(waitFor):
				done <- fmt.Errorf("fast subscriber: no event %d", i)
				return
			}
		}
		done <- nil
	}()
	run(t, c, steps)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// The slow one gets what was queued before the drop, then ErrSlow.
	if err := waitEnd(t, slow, 10); !errors.Is(err, ErrSlow) {
		t.Fatalf("slow subscriber ended with %v, want ErrSlow", err)
	}
	// Its last token resumes exactly where it stopped.
	r2, err := h.Watch(t.Context(), table, false, slow.Token())
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	got := 0
	for range steps {
		ev := next(t, r2)
		got++
		if describe(ev) == steps[len(steps)-1].want {
			break
		}
	}
	if got < len(steps)-6 {
		t.Errorf("resumed slow subscriber got %d events, want the rest after its last delivered one", got)
	}
	expectNothingMore(t, c, fast, r2)
}

func TestIncludeInitial(t *testing.T) {
	c, h := setup(t, Options{})
	for i := range 5 {
		write(t, c, tbl().Insert(map[string]any{"id": fmt.Sprintf("r%d", i), "v": i}))
	}
	s, err := h.Watch(t.Context(), table, true, "")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	initial := expect(t, s, []string{"ADDED r0", "ADDED r1", "ADDED r2", "ADDED r3", "ADDED r4"})
	if initial[2].New["v"] != float64(2) {
		t.Errorf("initial row = %v", initial[2].New)
	}
	write(t, c, tbl().Insert(map[string]any{"id": "r9"}))
	write(t, c, tbl().Get("r1").Update(map[string]any{"v": 10}))
	write(t, c, tbl().Get("r2").Delete())
	evs := expect(t, s, []string{"ADDED r9", "MODIFIED r1", "DELETED r2"})
	// The snapshot's token resumes with the changes after the snapshot.
	b, err := h.Watch(t.Context(), table, false, initial[0].ResumeToken)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	expect(t, b, []string{"ADDED r9", "MODIFIED r1", "DELETED r2"})
	expectNothingMore(t, c, b)
	s.Close()
	if s.Token() != evs[2].ResumeToken {
		t.Errorf("Token() not advanced")
	}
}

func TestIncludeInitialNeverMissesConcurrentWrites(t *testing.T) {
	c, h := setup(t, Options{})
	for i := range 50 {
		write(t, c, tbl().Insert(map[string]any{"id": fmt.Sprintf("a%03d", i), "v": 0}))
	}
	stop := make(chan struct{})
	written := make(chan int, 1)
	go func() {
		n := 0
		defer func() { written <- n }()
		for i := range 200 {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := tbl().Get(fmt.Sprintf("a%03d", i%50)).Update(map[string]any{"v": i + 1}).RunWrite(c.Session()); err != nil {
				return
			}
			n++
		}
	}()
	s, err := h.Watch(t.Context(), table, true, "")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Apply events to a local copy; once the writer stops and a marker
	// arrives, the copy must equal the table.
	state := map[any]map[string]any{}
	close(stop)
	<-written
	k := "zz-marker"
	write(t, c, tbl().Insert(map[string]any{"id": k}))
	for range 10000 {
		ev := next(t, s)
		switch ev.Type {
		case Deleted:
			delete(state, ev.Old["id"])
		default:
			state[ev.New["id"]] = ev.New
		}
		if ev.Type == Added && ev.New["id"] == k {
			break
		}
	}
	var all []map[string]any
	cur, err := tbl().Run(c.Session())
	if err != nil {
		t.Fatal(err)
	}
	if err := cur.All(&all); err != nil {
		t.Fatal(err)
	}
	if len(all) != len(state) {
		t.Fatalf("client has %d rows, table %d", len(state), len(all))
	}
	for _, row := range all {
		if got := state[row["id"]]; fmt.Sprint(got) != fmt.Sprint(row) {
			t.Errorf("row %v: client has %v", row, got)
		}
	}
}

func TestCloseReleasesTheFeed(t *testing.T) {
	c, h := setup(t, Options{IdleClose: -1})
	s, err := h.Watch(t.Context(), table, false, "")
	if err != nil {
		t.Fatal(err)
	}
	tok := s.Token()
	s2, err := h.Watch(t.Context(), table, false, "")
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s.Err() != nil {
		t.Errorf("Err after Close = %v", s.Err())
	}
	if _, ok := <-s.Events(); ok {
		t.Error("Events open after Close")
	}
	if h.openFeeds() != 1 {
		t.Fatal("feed closed while a subscriber is left")
	}
	// A subscriber whose context ends is released too.
	ctx, cancel := context.WithCancel(t.Context())
	s3, err := h.Watch(ctx, table, false, "")
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := waitEnd(t, s3, 0); err != nil {
		t.Errorf("Err after ctx ended = %v", err)
	}
	s2.Close()
	waitUntil(t, "the feed to close", func() bool { return h.openFeeds() == 0 })
	// Tokens of the closed feed need a resync; a new Watch opens a new feed.
	var resync *ResyncError
	if _, err := h.Watch(t.Context(), table, false, tok); !errors.As(err, &resync) {
		t.Errorf("token of a closed feed: err = %v, want ResyncError", err)
	}
	s4, err := h.Watch(t.Context(), table, false, "")
	if err != nil {
		t.Fatal(err)
	}
	write(t, c, tbl().Insert(map[string]any{"id": "x"}))
	expect(t, s4, []string{"ADDED x"})
	h.Close()
	if err := waitEnd(t, s4, 0); !errors.Is(err, ErrClosed) {
		t.Errorf("Err after Hub.Close = %v, want ErrClosed", err)
	}
	if _, err := h.Watch(t.Context(), table, false, ""); !errors.Is(err, ErrClosed) {
		t.Errorf("Watch after Close: %v", err)
	}
}

func TestIdleClose(t *testing.T) {
	_, h := setup(t, Options{IdleClose: 50 * time.Millisecond})
	s, err := h.Watch(t.Context(), table, false, "")
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if h.openFeeds() != 1 {
		t.Fatal("feed closed before IdleClose")
	}
	// Rejoining within IdleClose keeps the feed (and its tokens).
	s2, err := h.Watch(t.Context(), table, false, s.Token())
	if err != nil {
		t.Fatal(err)
	}
	s2.Close()
	waitUntil(t, "the idle feed to close", func() bool { return h.openFeeds() == 0 })
}

func TestMissingTable(t *testing.T) {
	_, h := setup(t, Options{})
	var nf *rows.TableNotFoundError
	_, err := h.Watch(t.Context(), rows.Table{DB: "shop", Name: "nope"}, false, "")
	if !errors.As(err, &nf) {
		t.Fatalf("err = %v (%T), want TableNotFoundError", err, err)
	}
	if h.openFeeds() != 0 {
		t.Error("failed feed kept")
	}
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func TestFeedFailureEndsSubscribersAndReopens(t *testing.T) {
	port := freePort(t)
	srv := reqlitetest.Start(t, reqlite.Options{Port: port})
	c := connect(t, srv.Addr)
	createTable(t, c)
	h := NewHub(c, Options{})
	defer h.Close()
	s, err := h.Watch(t.Context(), table, false, "")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	write(t, c, tbl().Insert(map[string]any{"id": "a"}))
	ev := expect(t, s, []string{"ADDED a"})[0]
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	err = waitEnd(t, s, 0)
	var ue *rethinkdb.UnavailableError
	if !errors.As(err, &ue) {
		t.Fatalf("Err = %v (%T), want one wrapping UnavailableError", err, err)
	}
	waitUntil(t, "the failed feed to be forgotten", func() bool { return h.openFeeds() == 0 })
	if _, err := h.Watch(t.Context(), table, false, ""); !errors.As(err, &ue) {
		t.Errorf("Watch while down: %v (%T)", err, err)
	}

	reqlitetest.Start(t, reqlite.Options{Port: port})
	waitUntil(t, "RethinkDB back", func() bool { return c.Ping(t.Context()) == nil })
	createTable(t, c) // reqlite keeps nothing across restarts
	var resync *ResyncError
	if _, err := h.Watch(t.Context(), table, false, ev.ResumeToken); !errors.As(err, &resync) {
		t.Errorf("token from before the failure: %v, want ResyncError", err)
	}
	s2, err := h.Watch(t.Context(), table, false, "")
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	write(t, c, tbl().Insert(map[string]any{"id": "b"}))
	expect(t, s2, []string{"ADDED b"})
}
