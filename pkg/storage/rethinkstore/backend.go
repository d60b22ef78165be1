package rethinkstore

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	r "gopkg.in/rethinkdb/rethinkdb-go.v6"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/klog/v2"

	"github.com/guildnet/guildnet/pkg/rethinkdb"
)

// Options tune the shared machinery of one system database. The zero value
// means the defaults.
type Options struct {
	// GapTimeout is how long a revision may stay unwritten (its writer
	// allocated it but neither wrote it nor gave it up) before it is filled
	// and skipped. Until then, watchers and consistent lists wait for it.
	GapTimeout time.Duration
	// PollInterval is how often the revision log is read when no changefeed
	// notification arrives (the changefeed is only a wake-up).
	PollInterval time.Duration
	// WindowSize and WindowBytes bound the recent events kept in memory (by
	// count, and by the size of the objects they carry); a watch from an older
	// resourceVersion gets 410 Gone.
	WindowSize  int
	WindowBytes int
	// CompactionInterval is how often old history is removed from the log
	// (at least one interval of history is kept). 0: the resource config's
	// interval, else 5 minutes; negative: never.
	CompactionInterval time.Duration
	// ProgressInterval is how often a watch that asked for progress
	// notifications gets a bookmark while nothing else happens.
	ProgressInterval time.Duration
}

const (
	defaultGapTimeout   = 3 * time.Second
	defaultPollInterval = time.Second
	// The window serves watches on the storage itself. Behind the watch
	// cache those are one per resource, started from the revision of the
	// list just before and resumed from the last revision seen (bookmarks
	// keep it recent), so a short window suffices; clients resume from the
	// watch cache's own history. A watcher the window has moved past gets
	// 410 and relists, which costs time, never correctness. The window's
	// memory is the server's own: 2,000 events held 5 MB of a 74 MB live
	// heap after a burst of 3,000 creates and their reconciles.
	defaultWindowSize         = 500
	defaultWindowBytes        = 4 << 20
	defaultCompactionInterval = 5 * time.Minute
	defaultProgressInterval   = 5 * time.Second
	// tailBatch is the number of log rows the tailer reads per query.
	tailBatch = 500
	// maxWriteAge bounds the time from allocating a revision to writing its
	// log row. A writer that took longer gives the revision up, because a
	// fill row older than two compaction intervals may already be gone (see
	// doc.go), and then nothing would stop its late insert.
	maxWriteAge = 30 * time.Second
)

func (o Options) withDefaults() Options {
	if o.GapTimeout <= 0 {
		o.GapTimeout = defaultGapTimeout
	}
	if o.PollInterval <= 0 {
		o.PollInterval = defaultPollInterval
	}
	if o.WindowSize <= 0 {
		o.WindowSize = defaultWindowSize
	}
	if o.WindowBytes <= 0 {
		o.WindowBytes = defaultWindowBytes
	}
	if o.ProgressInterval <= 0 {
		o.ProgressInterval = defaultProgressInterval
	}
	return o
}

// errConflict says that a write lost a race; the caller re-reads and retries.
var errConflict = errors.New("write conflict")

// event is one write of the revision log, as watchers see it.
type event struct {
	rev   int64
	key   string
	value []byte // stored bytes of the new object; nil for deletes
	prev  []byte // stored bytes of the replaced object; nil for creates
	// prevShared: prev is the value of the key's previous event in the
	// window, not a copy of its own, so the window counts those bytes once.
	prevShared bool
	created    bool
	deleted    bool
	at         time.Time // when this process read it
}

// backend is the machinery shared by every Store of one system database in
// this process: the revision allocator, the write protocol, the log tailer
// with its window of recent events, and compaction.
type backend struct {
	client  *rethinkdb.Client
	db      string
	opts    Options
	meta    r.Term
	log     r.Term
	objects r.Term
	logger  klog.Logger

	mu         sync.Mutex
	ready      chan struct{} // closed once the schema exists and the tailer runs
	readyErr   error         // last reason the schema could not be set up
	watermark  int64         // every revision <= watermark is written or filled, and in events
	base       int64         // events hold every write in (base, watermark]
	events     []*event
	eventBytes int               // sum of the value and prev sizes of events
	latest     map[string]*event // each key's newest event in events
	changed    chan struct{}     // closed and replaced when watermark advances
	compactRev int64
	highest    int64     // highest revision this process allocated or read from the counter
	tailErr    error     // last tailer failure; nil while healthy
	gapRev     int64     // first missing revision the tailer waits for
	gapSince   time.Time // when gapRev was first seen missing
	progress   chan struct{}

	wake   chan struct{}
	cancel context.CancelFunc
	done   sync.WaitGroup
	refs   int
}

func newBackend(c *rethinkdb.Client, db string, o Options) *backend {
	dbt := r.DB(db)
	return &backend{
		client:   c,
		db:       db,
		opts:     o.withDefaults(),
		meta:     dbt.Table(metaTable),
		log:      dbt.Table(logTable),
		objects:  dbt.Table(objectsTable),
		logger:   klog.Background().WithName("rethinkstore").WithValues("database", db),
		ready:    make(chan struct{}),
		latest:   map[string]*event{},
		changed:  make(chan struct{}),
		progress: make(chan struct{}),
		wake:     make(chan struct{}, 1),
	}
}

// start runs the tailer, the changefeed wake-up and compaction until stop.
func (b *backend) start() {
	ctx, cancel := context.WithCancel(context.Background())
	b.cancel = cancel
	b.done.Add(2)
	go func() { defer b.done.Done(); b.runTailer(ctx) }()
	go func() { defer b.done.Done(); b.runWakeFeed(ctx) }()
	if b.opts.CompactionInterval > 0 {
		b.done.Add(1)
		go func() { defer b.done.Done(); b.runCompactor(ctx) }()
	}
}

func (b *backend) stop() {
	if b.cancel != nil {
		b.cancel()
	}
	b.done.Wait()
}

// kick wakes the tailer without blocking.
func (b *backend) kick() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// --- query helpers ---

// queryContext bounds a query by the client's timeout as well as ctx.
func (b *backend) queryContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, b.client.Timeout())
}

// runOne runs a query that returns one value and decodes it into dest.
func (b *backend) runOne(ctx context.Context, t r.Term, dest any) error {
	ctx, cancel := b.queryContext(ctx)
	defer cancel()
	cur, err := t.Run(b.client.Session(), r.RunOpts{Context: ctx})
	if err != nil {
		return b.queryError(ctx, err)
	}
	defer cur.Close()
	if err := cur.One(dest); err != nil {
		return b.queryError(ctx, err)
	}
	return nil
}

// runWrite runs a write query. Write errors of single documents (duplicate
// key, r.error in a conditional update) are in the response, not in err.
func (b *backend) runWrite(ctx context.Context, t r.Term) (r.WriteResponse, error) {
	var resp r.WriteResponse
	err := b.runOne(ctx, t, &resp)
	return resp, err
}

// queryError turns driver errors into what callers answer with: 503 with the
// address when RethinkDB is unreachable, the caller's own context error when
// that ended the query.
func (b *backend) queryError(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, r.ErrEmptyResult) {
		return err
	}
	if cerr := ctx.Err(); cerr != nil && errors.Is(cerr, context.Canceled) {
		return cerr
	}
	return unavailable(b.client.WrapError(err))
}

// --- the write protocol (doc.go, "Writes") ---

// allocate takes the next revision from the counter document.
func (b *backend) allocate(ctx context.Context) (int64, error) {
	for attempt := 0; ; attempt++ {
		resp, err := b.runWrite(ctx, b.meta.Get(revisionDoc).Update(func(row r.Term) any {
			return map[string]any{"value": row.Field("value").Add(1)}
		}, r.UpdateOpts{ReturnChanges: true}))
		if err != nil {
			return 0, err
		}
		if resp.Errors == 0 && resp.Replaced == 1 && len(resp.Changes) == 1 {
			n, ok := numberField(resp.Changes[0].NewValue, "value")
			if !ok {
				return 0, fmt.Errorf("allocate a revision in %s.%s: unexpected counter document %v", b.db, metaTable, resp.Changes[0].NewValue)
			}
			b.sawRevision(n)
			return n, nil
		}
		// An increment that changed nothing cannot happen on RethinkDB,
		// whose single-document updates are atomic; a server that
		// interleaves concurrent updates (reqlite) reports it under
		// contention, and a retry after a short random pause is right.
		if resp.Errors > 0 || resp.Skipped > 0 || attempt >= 100 {
			return 0, fmt.Errorf("allocate a revision in %s.%s: %s (replaced %d, skipped %d, attempts %d)", b.db, metaTable, resp.FirstError, resp.Replaced, resp.Skipped, attempt+1)
		}
		pause := time.NewTimer(time.Duration(rand.Int64N(int64(time.Millisecond) * int64(min(attempt+1, 20)))))
		select {
		case <-ctx.Done():
			pause.Stop()
			return 0, ctx.Err()
		case <-pause.C:
		}
	}
}

// claim locks key for revision rev, provided its committed revision is still
// expected (0: the key must not exist) and nobody else holds it.
func (b *backend) claim(ctx context.Context, key string, expected, rev int64) (bool, error) {
	id := objectID(key)
	var t r.Term
	if expected == 0 {
		t = b.objects.Insert(map[string]any{"id": id, "key": key, "rev": 0, "value": "", "pending": rev})
	} else {
		t = b.objects.Get(id).Update(func(row r.Term) any {
			return r.Branch(row.Field("rev").Eq(expected).And(row.Field("pending").Eq(0)),
				map[string]any{"pending": rev}, r.Error("conflict"))
		})
	}
	resp, err := b.runWrite(ctx, t)
	if err != nil || resp.Inserted+resp.Replaced != 1 {
		return false, err
	}
	// Make sure the claim is ours. On RethinkDB the conditional update above
	// is atomic and this read only confirms it; it also keeps servers that
	// interleave concurrent updates (reqlite) from letting two writers on.
	var pending int64
	if err := b.runOne(ctx, b.objects.Get(id).Field("pending").Default(0), &pending); err != nil {
		return false, err
	}
	return pending == rev, nil
}

// appendLog writes the log row of a claimed revision: the commit point. It
// reports false when the revision was filled in the meantime.
func (b *backend) appendLog(ctx context.Context, row logRow) (bool, error) {
	resp, err := b.runWrite(ctx, b.log.Insert(row, r.InsertOpts{Conflict: "error"}))
	if err != nil {
		return false, err
	}
	return resp.Inserted == 1, nil
}

// fill marks rev as carrying no write. It is idempotent, and loses (harmlessly)
// against a writer that already wrote rev.
func (b *backend) fill(ctx context.Context, rev int64) error {
	_, err := b.runWrite(ctx, b.log.Insert(fillRow(rev), r.InsertOpts{Conflict: "error"}))
	return err
}

// settle applies a committed log row to the objects table, if that row still
// holds the key's claim. Anyone may call it; it is idempotent.
func (b *backend) settle(ctx context.Context, row *logRow) error {
	id := objectID(row.Key)
	var t r.Term
	if row.Deleted {
		t = b.objects.Get(id).Replace(func(o r.Term) any {
			return r.Branch(pendingIs(o, row.Rev), nil, o)
		})
	} else {
		t = b.objects.Get(id).Update(func(o r.Term) any {
			return r.Branch(o.Field("pending").Eq(row.Rev),
				map[string]any{"rev": row.Rev, "value": row.Value, "pending": 0},
				map[string]any{})
		})
	}
	_, err := b.runWrite(ctx, t)
	return err
}

// release drops the claim of rev on key without applying it (its revision
// was filled). A create's placeholder row is removed.
func (b *backend) release(ctx context.Context, key string, rev int64) error {
	_, err := b.runWrite(ctx, b.objects.Get(objectID(key)).Replace(func(o r.Term) any {
		return r.Branch(pendingIs(o, rev),
			r.Branch(o.Field("rev").Eq(0), nil, o.Merge(map[string]any{"pending": 0})),
			o)
	}))
	return err
}

// state is the committed state of one key.
type state struct {
	exists bool
	rev    int64
	data   []byte // stored bytes (after the transformer)
}

// current reads the committed state of key in one round trip. inflight is a
// revision that holds the key's claim and whose log row is not written yet.
// needsSettle reports a claim whose outcome is decided but not yet applied.
func (b *backend) current(ctx context.Context, key string) (st state, inflight int64, needsSettle bool, err error) {
	var res struct {
		Obj *objectRow `rethinkdb:"o"`
		Log *logRow    `rethinkdb:"l"`
	}
	q := r.Do(b.objects.Get(objectID(key)), func(o r.Term) any {
		return map[string]any{
			"o": o,
			"l": r.Branch(o.Field("pending").Default(0).Gt(0), b.log.Get(o.Field("pending")), nil),
		}
	})
	if err := b.runOne(ctx, q, &res); err != nil {
		return state{}, 0, false, err
	}
	o := res.Obj
	if o == nil {
		return state{}, 0, false, nil
	}
	if o.Pending > 0 {
		switch l := res.Log; {
		case l == nil:
			inflight = o.Pending
		case l.Fill:
			needsSettle = true
		default:
			// Committed: the log row is the truth.
			st, err := stateFromLog(l)
			return st, 0, true, err
		}
	}
	if o.Rev == 0 {
		return state{}, inflight, needsSettle, nil
	}
	data, err := base64.StdEncoding.DecodeString(o.Value)
	if err != nil {
		return state{}, 0, false, fmt.Errorf("corrupt value of %s in %s.%s: %w", key, b.db, objectsTable, err)
	}
	return state{exists: true, rev: o.Rev, data: data}, inflight, needsSettle, nil
}

func stateFromLog(l *logRow) (state, error) {
	if l.Deleted {
		return state{}, nil
	}
	data, err := base64.StdEncoding.DecodeString(l.Value)
	if err != nil {
		return state{}, fmt.Errorf("corrupt value of %s at revision %d: %w", l.Key, l.Rev, err)
	}
	return state{exists: true, rev: l.Rev, data: data}, nil
}

// currentForWrite returns the committed state of key with no claim on it:
// decided claims are applied, an in-flight one is waited for (the tailer
// fills its revision after GapTimeout if its writer is gone).
func (b *backend) currentForWrite(ctx context.Context, key string) (state, error) {
	for {
		st, inflight, needsSettle, err := b.current(ctx, key)
		if err != nil {
			return state{}, err
		}
		if inflight == 0 && !needsSettle {
			return st, nil
		}
		if inflight != 0 {
			if err := b.waitFor(ctx, inflight); err != nil {
				return state{}, err
			}
		}
		if err := b.resolveClaim(ctx, key); err != nil {
			return state{}, err
		}
	}
}

// resolveClaim applies or releases the claim on key according to its log row.
func (b *backend) resolveClaim(ctx context.Context, key string) error {
	var res struct {
		Obj *objectRow `rethinkdb:"o"`
		Log *logRow    `rethinkdb:"l"`
	}
	q := r.Do(b.objects.Get(objectID(key)), func(o r.Term) any {
		return map[string]any{
			"o": o,
			"l": r.Branch(o.Field("pending").Default(0).Gt(0), b.log.Get(o.Field("pending")), nil),
		}
	})
	if err := b.runOne(ctx, q, &res); err != nil {
		return err
	}
	switch {
	case res.Obj == nil || res.Obj.Pending == 0 || res.Log == nil:
		return nil // nothing decided to apply; the caller re-reads
	case res.Log.Fill:
		return b.release(ctx, key, res.Obj.Pending)
	default:
		return b.settle(ctx, res.Log)
	}
}

// commit writes a new value (or a delete, value nil) of key on top of prev.
// It returns the new revision, or errConflict when prev is no longer current
// or the revision was filled; the caller then re-reads and retries.
func (b *backend) commit(ctx context.Context, key string, prev state, value []byte, del bool) (int64, error) {
	rev, err := b.allocate(ctx)
	if err != nil {
		return 0, err
	}
	allocated := time.Now()
	expected := int64(0)
	if prev.exists {
		expected = prev.rev
	}
	ok, err := b.claim(ctx, key, expected, rev)
	if err != nil || !ok {
		// The revision carries nothing: fill it now rather than make
		// watchers wait GapTimeout for it. Best effort; the tailer fills it
		// otherwise.
		if ferr := b.fill(context.WithoutCancel(ctx), rev); ferr != nil {
			b.logger.V(1).Info("Could not fill an unused revision", "revision", rev, "err", ferr)
		}
		if err != nil {
			return 0, err
		}
		return 0, errConflict
	}
	row := logRow{Rev: rev, Key: key, Deleted: del}
	if !del {
		row.Value = base64.StdEncoding.EncodeToString(value)
	}
	if prev.exists {
		row.PrevRev = prev.rev
		row.Prev = base64.StdEncoding.EncodeToString(prev.data)
	}
	if time.Since(allocated) > maxWriteAge {
		_ = b.fill(context.WithoutCancel(ctx), rev)
		_ = b.release(context.WithoutCancel(ctx), key, rev)
		return 0, errConflict
	}
	inserted, err := b.appendLog(ctx, row)
	if err != nil {
		// Outcome unknown: the claim stays until someone resolves it
		// against the log (written, or filled by the tailer).
		return 0, err
	}
	if !inserted {
		_ = b.release(context.WithoutCancel(ctx), key, rev)
		return 0, errConflict
	}
	b.kick()
	// Committed. Applying it to the objects table is needed before the next
	// write of this key, but readers and writers also apply it themselves.
	if err := b.settle(context.WithoutCancel(ctx), &row); err != nil {
		b.logger.V(1).Info("Could not apply a committed write; the next access applies it", "key", key, "revision", rev, "err", err)
	}
	return rev, nil
}

// counter returns the last allocated revision.
func (b *backend) counter(ctx context.Context) (int64, error) {
	var n int64
	if err := b.runOne(ctx, b.meta.Get(revisionDoc).Field("value"), &n); err != nil {
		return 0, err
	}
	b.sawRevision(n)
	return n, nil
}

// sawRevision records a revision known to exist, so a recreated system
// database never hands out revisions this process has seen (recreateSchema).
func (b *backend) sawRevision(n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if n > b.highest {
		b.highest = n
	}
}

// consistentRev returns a revision that includes every write completed before
// the call, once the log is settled up to it (so a list at it is a snapshot).
func (b *backend) consistentRev(ctx context.Context) (int64, error) {
	if err := b.waitReady(ctx); err != nil {
		return 0, err
	}
	c, err := b.counter(ctx)
	if err != nil {
		return 0, err
	}
	return c, b.waitFor(ctx, c)
}

// waitReady waits (briefly) for the schema and the tailer.
func (b *backend) waitReady(ctx context.Context) error {
	select {
	case <-b.ready:
		return nil
	default:
	}
	timer := time.NewTimer(b.client.Timeout())
	defer timer.Stop()
	select {
	case <-b.ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		b.mu.Lock()
		err := b.readyErr
		b.mu.Unlock()
		if err == nil {
			err = fmt.Errorf("still setting it up")
		}
		if err = unavailable(b.client.WrapError(err)); apierrors.IsServiceUnavailable(err) {
			return err
		}
		return apierrors.NewServiceUnavailable(fmt.Sprintf("RethinkDB at %s: system database %s is not ready: %v", b.client.Address(), b.db, err))
	}
}

// waitFor waits until the tailer has settled the log up to rev. It is bounded
// by ctx and by GapTimeout plus the query timeout (a gap is filled after
// GapTimeout, so waiting longer means RethinkDB is not answering).
func (b *backend) waitFor(ctx context.Context, rev int64) error {
	if err := b.waitReady(ctx); err != nil {
		return err
	}
	timer := time.NewTimer(b.opts.GapTimeout + 2*b.client.Timeout())
	defer timer.Stop()
	for {
		b.mu.Lock()
		w, ch, terr := b.watermark, b.changed, b.tailErr
		b.mu.Unlock()
		if w >= rev {
			return nil
		}
		b.kick()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
			if terr != nil {
				if err := unavailable(b.client.WrapError(terr)); apierrors.IsServiceUnavailable(err) {
					return err
				}
			}
			return apierrors.NewServiceUnavailable(fmt.Sprintf("RethinkDB at %s: the revision log of %s did not reach revision %d (at %d) in time", b.client.Address(), b.db, rev, w))
		}
	}
}

// numberField reads a number field of a decoded document.
func numberField(doc any, name string) (int64, bool) {
	m, ok := doc.(map[string]any)
	if !ok {
		return 0, false
	}
	switch v := m[name].(type) {
	case float64:
		return int64(v), true
	case int64:
		return v, true
	case int:
		return int64(v), true
	}
	return 0, false
}

// decodeValue decodes the base64 value field of a row.
func decodeValue(v string) ([]byte, error) {
	return base64.StdEncoding.DecodeString(v)
}

// pendingIs is true when the object row o exists and is claimed by rev
// (reading a field of a missing row is a non-existence error that default
// turns into 0).
func pendingIs(o r.Term, rev int64) r.Term {
	return o.Field("pending").Default(0).Eq(rev)
}

// encodeValue is the base64 form of stored bytes in a row.
func encodeValue(b []byte) string {
	return base64.StdEncoding.EncodeToString(b)
}
