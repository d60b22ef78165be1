package tablewatch

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	r "gopkg.in/rethinkdb/rethinkdb-go.v6"

	"github.com/guildnet/guildnet/pkg/rethinkdb"
	"github.com/guildnet/guildnet/pkg/rows"
)

// Event types.
const (
	Added    = "ADDED"
	Modified = "MODIFIED"
	Deleted  = "DELETED"
	Bookmark = "BOOKMARK"
)

// Defaults of Options.
const (
	DefaultBufferSize       = 1000
	DefaultSubscriberBuffer = 256
	DefaultIdleClose        = time.Minute
)

// Event is one change of a table, as tables/watch streams it.
type Event struct {
	Type string `json:"type"` // ADDED, MODIFIED, DELETED or BOOKMARK
	// Old is the row before the change (MODIFIED, DELETED), New the row
	// after it (ADDED, MODIFIED). Events share these maps: do not modify.
	Old         map[string]any `json:"old,omitempty"`
	New         map[string]any `json:"new,omitempty"`
	ResumeToken string         `json:"resumeToken"`
}

// Options configure a Hub. Zero values mean the defaults.
type Options struct {
	// BufferSize is how many recent events are kept per watched table for
	// resuming (DefaultBufferSize).
	BufferSize int
	// SubscriberBuffer is how many events may wait for one subscriber
	// before it is dropped with ErrSlow (DefaultSubscriberBuffer).
	SubscriberBuffer int
	// IdleClose is how long a table's changefeed stays open after its last
	// subscriber left, so that reconnecting watchers can resume
	// (DefaultIdleClose). Negative closes it as soon as the last one leaves.
	IdleClose time.Duration
}

// Hub owns the changefeeds of the watched tables; one per apiserver process.
// It is safe for concurrent use.
type Hub struct {
	client *rethinkdb.Client
	opts   Options
	id     string // random per Hub: tokens of other instances are refused

	mu     sync.Mutex
	feeds  map[string]*feed // by "<db>.<table>"
	epoch  uint64           // last feed incarnation handed out
	closed bool
}

// NewHub returns a Hub reading changefeeds through c.
func NewHub(c *rethinkdb.Client, opts Options) *Hub {
	if opts.BufferSize <= 0 {
		opts.BufferSize = DefaultBufferSize
	}
	if opts.SubscriberBuffer <= 0 {
		opts.SubscriberBuffer = DefaultSubscriberBuffer
	}
	if opts.IdleClose == 0 {
		opts.IdleClose = DefaultIdleClose
	}
	var b [12]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand panics instead)
	return &Hub{client: c, opts: opts, id: base64.RawURLEncoding.EncodeToString(b[:]), feeds: map[string]*feed{}}
}

// Close stops all changefeeds; their subscriptions end with ErrClosed, and
// later calls of Watch return ErrClosed.
func (h *Hub) Close() {
	h.mu.Lock()
	h.closed = true
	feeds := h.feeds
	h.feeds = map[string]*feed{}
	h.mu.Unlock()
	for _, f := range feeds {
		f.stop(ErrClosed)
	}
	for _, f := range feeds {
		<-f.done
	}
}

// openFeeds returns the number of open (or opening) changefeeds, for tests.
func (h *Hub) openFeeds() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.feeds)
}

func qualified(t rows.Table) string { return t.DB + "." + t.Name }

// Watch subscribes to the changes of table. With resumeToken, events start
// right after the token's event (or Watch fails with a *ResyncError, or a
// *rows.ParameterError when the token is unreadable). Otherwise, with
// includeInitial, all rows come first as ADDED events. The subscription ends
// when ctx ends or Close is called; see the package documentation for the
// guarantees. Errors opening the feed: *rows.TableNotFoundError, errors
// wrapping *rethinkdb.UnavailableError, ErrClosed.
func (h *Hub) Watch(ctx context.Context, table rows.Table, includeInitial bool, resumeToken string) (*Subscription, error) {
	name := qualified(table)
	var tok token
	if resumeToken != "" {
		var err error
		if tok, err = parseToken(resumeToken); err != nil {
			return nil, err
		}
		if tok.Table != name {
			return nil, badToken(fmt.Sprintf("the token belongs to table %s, not %s", tok.Table, name))
		}
		if tok.Instance != h.id {
			return nil, &ResyncError{Table: name, Reason: "the token is from another apiserver instance, which may have restarted"}
		}
		includeInitial = false
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, err := h.acquire(ctx, table)
	if err != nil {
		return nil, err
	}
	sctx, cancel := context.WithCancel(ctx)
	s := &Subscription{
		hub: h, feed: f, ctx: sctx, cancel: cancel,
		in:   make(chan Event, h.opts.SubscriberBuffer),
		out:  make(chan Event),
		done: make(chan struct{}),
	}
	f.mu.Lock()
	if f.err != nil {
		err := f.err
		f.mu.Unlock()
		h.release(f)
		cancel()
		return nil, err
	}
	switch {
	case resumeToken != "":
		if tok.Epoch != f.epoch {
			f.mu.Unlock()
			h.release(f)
			cancel()
			return nil, &ResyncError{Table: name, Reason: "the table's changefeed was restarted since, changes may have been missed"}
		}
		backlog, ok := f.since(tok.Seq)
		if !ok {
			f.mu.Unlock()
			h.release(f)
			cancel()
			return nil, &ResyncError{Table: name, Reason: "the token's event is no longer buffered"}
		}
		s.backlog = backlog
		s.token.Store(resumeToken)
		f.live[s] = true
	case includeInitial:
		s.snapshotAt = f.lastSeq
		s.snapshot = true
	default:
		s.token.Store(f.tokenFor(f.lastSeq))
		f.live[s] = true
	}
	f.mu.Unlock()
	go s.run()
	return s, nil
}

// acquire returns the open feed of table, opening it if needed, and counts
// a reference to it (released by release).
func (h *Hub) acquire(ctx context.Context, table rows.Table) (*feed, error) {
	name := qualified(table)
	for range 3 { // a feed may fail while we wait for it to open; retry a little
		h.mu.Lock()
		if h.closed {
			h.mu.Unlock()
			return nil, ErrClosed
		}
		f := h.feeds[name]
		opening := f == nil
		if opening {
			h.epoch++
			f = newFeed(h, table, h.epoch)
			h.feeds[name] = f
		}
		f.refs++
		if f.idle != nil {
			f.idle.Stop()
			f.idle = nil
		}
		h.mu.Unlock()
		if opening {
			go f.open()
		}
		select {
		case <-f.ready:
		case <-ctx.Done():
			h.release(f)
			return nil, ctx.Err()
		}
		f.mu.Lock()
		err := f.err
		f.mu.Unlock()
		if err == nil {
			return f, nil
		}
		h.release(f)
		if !opening {
			// Someone else's attempt failed; that may be stale. Try once more ourselves.
			continue
		}
		return nil, err
	}
	return nil, &rethinkdb.UnavailableError{Address: h.client.Address(), Err: errors.New("the table's changefeed keeps failing")}
}

// release drops a reference to f; the last one starts the idle timer.
func (h *Hub) release(f *feed) {
	h.mu.Lock()
	defer h.mu.Unlock()
	f.refs--
	if f.refs > 0 || h.feeds[f.name] != f {
		return
	}
	if h.opts.IdleClose < 0 {
		delete(h.feeds, f.name)
		go f.stop(nil)
		return
	}
	f.idle = time.AfterFunc(h.opts.IdleClose, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if f.refs > 0 || h.feeds[f.name] != f {
			return
		}
		delete(h.feeds, f.name)
		go f.stop(nil)
	})
}

// forget removes f from the Hub if it is still the table's feed.
func (h *Hub) forget(f *feed) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.feeds[f.name] == f {
		delete(h.feeds, f.name)
	}
	if f.idle != nil {
		f.idle.Stop()
		f.idle = nil
	}
}

// feed is one incarnation of a table's changefeed.
type feed struct {
	hub   *Hub
	table rows.Table
	name  string
	epoch uint64

	ctx    context.Context // the changefeed query's; cancelled by stop
	cancel context.CancelFunc
	ready  chan struct{} // closed when opened (or failed to)
	done   chan struct{} // closed when the reader has ended

	// guarded by hub.mu
	refs int
	idle *time.Timer

	mu      sync.Mutex
	err     error // set when the feed ended
	stopErr error // what stop was called with, nil for an idle close
	stopped bool
	lastSeq uint64
	ring    []Event // ring[(seq-1) % len(ring)], valid for seq in (lastSeq-n, lastSeq]
	n       int
	live    map[*Subscription]bool
	sess    *r.Session
	cursor  *r.Cursor
}

func newFeed(h *Hub, table rows.Table, epoch uint64) *feed {
	ctx, cancel := context.WithCancel(context.Background())
	return &feed{
		hub: h, table: table, name: qualified(table), epoch: epoch,
		ctx: ctx, cancel: cancel,
		ready: make(chan struct{}), done: make(chan struct{}),
		ring: make([]Event, h.opts.BufferSize),
		live: map[*Subscription]bool{},
	}
}

func (f *feed) tokenFor(seq uint64) string {
	return token{Instance: f.hub.id, Table: f.name, Epoch: f.epoch, Seq: seq}.encode()
}

// since returns the buffered events after seq; false if some are no longer
// buffered (or seq is in the future). f.mu must be held.
func (f *feed) since(seq uint64) ([]Event, bool) {
	if seq > f.lastSeq || seq < f.lastSeq-uint64(f.n) {
		return nil, false
	}
	out := make([]Event, 0, f.lastSeq-seq)
	for q := seq + 1; q <= f.lastSeq; q++ {
		out = append(out, f.ring[(q-1)%uint64(len(f.ring))])
	}
	return out, true
}

// open starts the changefeed and then reads it until it ends.
func (f *feed) open() {
	defer close(f.done)
	c := f.hub.client
	sess, err := c.NewFeedSession()
	var cur *r.Cursor
	if err == nil {
		cur, err = r.DB(f.table.DB).Table(f.table.Name).Changes().Run(sess, r.RunOpts{
			Context: f.ctx, TimeFormat: "raw", BinaryFormat: "raw", GeometryFormat: "raw",
		})
		if err != nil {
			err = f.openError(err)
			_ = sess.Close()
		}
	}
	if err != nil {
		f.mu.Lock()
		if f.stopped { // Hub closed meanwhile
			err = f.stopErr
			if err == nil {
				err = ErrClosed
			}
		}
		f.err = err
		f.mu.Unlock()
		f.hub.forget(f)
		close(f.ready)
		return
	}
	close(f.ready)
	f.read(cur)
	_ = cur.Close()
	_ = sess.Close()
}

func (f *feed) openError(err error) error {
	msg := err.Error()
	if strings.Contains(msg, "Table `"+f.name+"` does not exist") || strings.Contains(msg, "Database `"+f.table.DB+"` does not exist") {
		return &rows.TableNotFoundError{RethinkDB: f.name}
	}
	return fmt.Errorf("open the changefeed of table %s: %w", f.name, f.hub.client.WrapError(err))
}

type change struct {
	Old   map[string]any `rethinkdb:"old_val"`
	New   map[string]any `rethinkdb:"new_val"`
	Error string         `rethinkdb:"error"`
	State string         `rethinkdb:"state"`
}

func (f *feed) read(cur *r.Cursor) {
	var err error
	for {
		var ch change
		if !cur.Next(&ch) {
			err = cur.Err()
			break
		}
		if ch.Error != "" {
			// RethinkDB skipped changes (e.g. its feed cache overflowed).
			err = &ResyncError{Table: f.name, Reason: "RethinkDB reported missed changes: " + ch.Error}
			break
		}
		f.publish(ch.Old, ch.New)
	}
	f.mu.Lock()
	stopped, stopErr := f.stopped, f.stopErr
	f.mu.Unlock()
	var rerr *ResyncError
	switch {
	case stopped:
		err = stopErr
	case errors.As(err, &rerr):
	case err == nil:
		err = fmt.Errorf("changefeed of table %s ended: %w", f.name,
			&rethinkdb.UnavailableError{Address: f.hub.client.Address(), Err: errors.New("the server closed the changefeed")})
	default:
		werr := f.hub.client.WrapError(err)
		var ue *rethinkdb.UnavailableError
		if !errors.As(werr, &ue) {
			werr = &rethinkdb.UnavailableError{Address: f.hub.client.Address(), Err: err}
		}
		err = fmt.Errorf("changefeed of table %s failed: %w", f.name, werr)
	}
	f.hub.forget(f)
	f.end(err)
}

// publish numbers a change, buffers it and hands it to every live
// subscriber without blocking.
func (f *feed) publish(old, new map[string]any) {
	typ := Modified
	switch {
	case old == nil && new == nil:
		return
	case old == nil:
		typ = Added
	case new == nil:
		typ = Deleted
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return
	}
	f.lastSeq++
	ev := Event{Type: typ, Old: old, New: new, ResumeToken: f.tokenFor(f.lastSeq)}
	f.ring[(f.lastSeq-1)%uint64(len(f.ring))] = ev
	if f.n < len(f.ring) {
		f.n++
	}
	for s := range f.live {
		select {
		case s.in <- ev:
		default:
			f.drop(s, ErrSlow)
		}
	}
}

// drop ends s's live delivery with err. f.mu must be held.
func (f *feed) drop(s *Subscription, err error) {
	if !f.live[s] {
		return
	}
	delete(f.live, s)
	s.endErr = err
	close(s.in)
}

// end marks the feed ended with err and ends all its subscribers.
func (f *feed) end(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err == nil {
		f.err = err
	}
	for s := range f.live {
		f.drop(s, f.err)
	}
}

// stop closes the changefeed; subscribers end with err (nil: no
// subscribers are left, an idle close).
func (f *feed) stop(err error) {
	f.mu.Lock()
	if !f.stopped {
		f.stopped, f.stopErr = true, err
	}
	f.mu.Unlock()
	f.cancel()
	if err == nil {
		err = ErrClosed
	}
	f.end(err)
}
