package rethinkstore

import (
	"context"
	"encoding/base64"
	"sort"
	"time"

	r "gopkg.in/rethinkdb/rethinkdb-go.v6"
)

// runTailer sets up the schema, then reads the revision log in revision order
// for as long as ctx lives: it advances the watermark over written and filled
// revisions, fills revisions left unwritten for GapTimeout, and keeps the
// window of recent events. See doc.go, "Watch".
func (b *backend) runTailer(ctx context.Context) {
	backoff := newBackoff()
	for {
		err := b.initialize(ctx)
		if err == nil {
			break
		}
		b.mu.Lock()
		b.readyErr = err
		b.mu.Unlock()
		b.logger.Info("RethinkDB system database is not ready; retrying", "address", b.client.Address(), "err", err)
		if !backoff.wait(ctx) {
			return
		}
	}
	close(b.ready)

	poll := time.NewTimer(0)
	defer poll.Stop()
	backoff.reset()
	for {
		next, err := b.advance(ctx)
		if isSchemaMissing(err) {
			err = b.recreateSchema(ctx)
		}
		b.mu.Lock()
		wasFailing := b.tailErr != nil
		b.tailErr = err
		b.mu.Unlock()
		wait := b.opts.PollInterval
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return
			}
			if !wasFailing {
				b.logger.Info("Cannot read the RethinkDB revision log; retrying", "address", b.client.Address(), "err", err)
			}
			wait = backoff.next()
		case wasFailing:
			b.logger.Info("Reading the RethinkDB revision log again", "address", b.client.Address())
			backoff.reset()
		}
		if next >= 0 && next < wait {
			wait = next
		}
		poll.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-b.wake:
		case <-poll.C:
		}
		if !poll.Stop() {
			select {
			case <-poll.C:
			default:
			}
		}
	}
}

// initialize creates the schema and starts the watermark at the compacted
// revision: everything at or below it is settled, and the tailer reads (and
// settles) the rest, keeping the newest WindowSize events.
func (b *backend) initialize(ctx context.Context) error {
	qctx, cancel := b.queryContext(ctx)
	defer cancel()
	if err := ensureSchema(qctx, b.client.Session(), b.db, 0); err != nil {
		return b.queryError(qctx, err)
	}
	var cs compactState
	if err := b.runOne(ctx, b.meta.Get(compactDoc), &cs); err != nil {
		return err
	}
	b.mu.Lock()
	b.compactRev = cs.Rev
	b.watermark = cs.Rev
	b.base = cs.Rev
	b.mu.Unlock()
	return nil
}

// recreateSchema sets the system database up again after it disappeared
// (dropped by hand, or a RethinkDB stand-in without storage restarted). The
// objects in it are gone; the revision continues after the last one seen
// here, so clients relist instead of seeing resourceVersions go backwards.
func (b *backend) recreateSchema(ctx context.Context) error {
	b.mu.Lock()
	w := max(b.watermark, b.highest)
	b.mu.Unlock()
	b.logger.Error(nil, "RethinkDB system database is missing; creating it again. Objects stored in it are lost", "address", b.client.Address(), "revision", w)
	qctx, cancel := b.queryContext(ctx)
	defer cancel()
	if err := ensureSchema(qctx, b.client.Session(), b.db, w); err != nil {
		return b.queryError(qctx, err)
	}
	// Revisions up to w are gone with the database: consider them settled
	// (the tailer continues after w) and compacted (reads from before get 410).
	b.mu.Lock()
	b.compactRev = max(b.compactRev, w)
	b.mu.Unlock()
	b.publish(w, nil, w)
	return nil
}

// advance reads the log after the watermark once (in batches while full
// batches come back). It returns how soon it wants to run again (-1: no
// particular time), e.g. when a gap will be due for filling.
func (b *backend) advance(ctx context.Context) (time.Duration, error) {
	for {
		b.mu.Lock()
		w := b.watermark
		b.mu.Unlock()
		startW := w
		var res struct {
			Counter int64        `rethinkdb:"c"`
			Compact compactState `rethinkdb:"k"`
			Rows    []logRow     `rethinkdb:"rows"`
		}
		q := r.Expr(map[string]any{
			"c":    b.meta.Get(revisionDoc).Field("value"),
			"k":    b.meta.Get(compactDoc),
			"rows": b.log.Between(w+1, r.MaxVal).OrderBy(r.OrderByOpts{Index: "id"}).Limit(tailBatch).CoerceTo("array"),
		})
		if err := b.runOne(ctx, q, &res); err != nil {
			return -1, err
		}
		var fresh []*event
		for i := range res.Rows {
			row := &res.Rows[i]
			if row.Rev != w+1 {
				break
			}
			w = row.Rev
			if !row.Fill {
				ev, err := eventFromLog(row, b.previous(row, fresh))
				if err != nil {
					b.logger.Error(err, "Skipping an undecodable revision log row", "revision", row.Rev)
					continue
				}
				fresh = append(fresh, ev)
			}
		}
		b.sawRevision(res.Counter)
		b.publish(w, fresh, res.Compact.Rev)
		if w > startW && len(res.Rows) == tailBatch {
			continue // more rows to read right away
		}

		// A revision below the counter or below a written row is missing:
		// a writer is between allocating and writing it, or gone.
		missing := w < res.Counter || (len(res.Rows) > 0 && res.Rows[len(res.Rows)-1].Rev > w)
		if !missing {
			b.mu.Lock()
			b.gapRev = 0
			b.mu.Unlock()
			return -1, nil
		}
		gap := w + 1
		b.mu.Lock()
		if b.gapRev != gap {
			b.gapRev, b.gapSince = gap, time.Now()
		}
		due := b.opts.GapTimeout - time.Since(b.gapSince)
		b.mu.Unlock()
		if due > 0 {
			return due, nil
		}
		b.logger.V(1).Info("Filling a revision nobody wrote", "revision", gap, "waited", b.opts.GapTimeout)
		if err := b.fill(ctx, gap); err != nil {
			return -1, err
		}
	}
}

// publish advances the watermark, appends events, trims the window and wakes
// everybody waiting for progress.
func (b *backend) publish(w int64, fresh []*event, compactRev int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if compactRev > b.compactRev {
		b.compactRev = compactRev
	}
	if w <= b.watermark {
		return
	}
	b.events = append(b.events, fresh...)
	for _, ev := range fresh {
		b.eventBytes += ev.size()
		b.latest[ev.key] = ev
	}
	drop := 0
	for drop < len(b.events) && (len(b.events)-drop > b.opts.WindowSize || b.eventBytes > b.opts.WindowBytes) {
		ev := b.events[drop]
		b.eventBytes -= ev.size()
		b.base = ev.rev
		if b.latest[ev.key] == ev {
			delete(b.latest, ev.key)
		}
		drop++
	}
	if drop > 0 {
		// Copy so the dropped events can be collected.
		b.events = append([]*event(nil), b.events[drop:]...)
	}
	b.watermark = w
	close(b.changed)
	b.changed = make(chan struct{})
}

// eventsAfter returns the events after rev that are in the window, the
// watermark they reach, and a channel closed at the next advance. ok is
// false when rev is older than the window or the compacted revision: the
// watch cannot be resumed from it.
func (b *backend) eventsAfter(rev int64) (evs []*event, w int64, changed <-chan struct{}, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if rev < b.base || rev < b.compactRev {
		return nil, b.watermark, b.changed, false
	}
	i := sort.Search(len(b.events), func(i int) bool { return b.events[i].rev > rev })
	return b.events[i:len(b.events):len(b.events)], b.watermark, b.changed, true
}

// runWakeFeed keeps a changefeed on the log open, only to wake the tailer
// early: the tailer reads the log itself, so a lost notification costs at
// most PollInterval.
func (b *backend) runWakeFeed(ctx context.Context) {
	select {
	case <-b.ready:
	case <-ctx.Done():
		return
	}
	backoff := newBackoff()
	for ctx.Err() == nil {
		err := b.followFeed(ctx)
		if ctx.Err() != nil {
			return
		}
		b.logger.V(1).Info("Revision log changefeed ended; reopening", "err", err)
		if !backoff.wait(ctx) {
			return
		}
	}
}

func (b *backend) followFeed(ctx context.Context) error {
	sess, err := b.client.NewFeedSession()
	if err != nil {
		return err
	}
	defer sess.Close()
	// Log rows are only inserted, and later deleted by compaction. Only
	// inserts wake the tailer, and only their revision comes over the
	// wire: a deletion's change would carry the whole old row (its value
	// and previous value) to be decoded and dropped here.
	inserted := func(c r.Term) r.Term { return c.Field("old_val").Eq(nil) }
	cur, err := b.log.Changes().Filter(inserted).Field("new_val").Field("id").Run(sess, r.RunOpts{Context: ctx})
	if err != nil {
		return err
	}
	defer cur.Close()
	var rev int64
	for cur.Next(&rev) {
		b.kick()
	}
	return cur.Err()
}

// size is the memory an event holds, for the window's byte bound. Shared
// bytes are counted by the event that brought them only, so the bound is
// approximate once that event has left the window.
func (e *event) size() int {
	n := len(e.value) + len(e.key)
	if !e.prevShared {
		n += len(e.prev)
	}
	return n
}

// previous returns the stored bytes of row's previous revision when an
// event still in memory (the window, or fresh: the batch being read) holds
// them, else nil. A log row carries its previous object in full, but an
// update mostly follows an earlier event of the same key, whose value is
// those very bytes: sharing them keeps one copy of each object version in
// the window instead of two.
func (b *backend) previous(row *logRow, fresh []*event) []byte {
	if row.PrevRev == 0 || row.Prev == "" {
		return nil
	}
	for i := len(fresh) - 1; i >= 0; i-- {
		if ev := fresh[i]; ev.key == row.Key {
			if ev.rev == row.PrevRev {
				return ev.value
			}
			return nil
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if ev := b.latest[row.Key]; ev != nil && ev.rev == row.PrevRev {
		return ev.value
	}
	return nil
}

// eventFromLog decodes row; prev, when not nil, is the stored bytes of the
// row's previous revision already in memory.
func eventFromLog(row *logRow, prev []byte) (*event, error) {
	ev := &event{rev: row.Rev, key: row.Key, deleted: row.Deleted, created: row.PrevRev == 0 && !row.Deleted, at: time.Now()}
	var err error
	if row.Value != "" {
		if ev.value, err = base64.StdEncoding.DecodeString(row.Value); err != nil {
			return nil, err
		}
	}
	switch {
	case prev != nil:
		ev.prev, ev.prevShared = prev, true
	case row.Prev != "":
		if ev.prev, err = base64.StdEncoding.DecodeString(row.Prev); err != nil {
			return nil, err
		}
	}
	return ev, nil
}

// backoff is a capped exponential backoff for retry loops.
type backoff struct{ cur time.Duration }

func newBackoff() *backoff { return &backoff{cur: 100 * time.Millisecond} }

func (b *backoff) reset() { b.cur = 100 * time.Millisecond }

func (b *backoff) next() time.Duration {
	d := b.cur
	if b.cur *= 2; b.cur > 5*time.Second {
		b.cur = 5 * time.Second
	}
	return d
}

// wait sleeps for the next backoff step; false if ctx ended first.
func (b *backoff) wait(ctx context.Context) bool {
	t := time.NewTimer(b.next())
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
