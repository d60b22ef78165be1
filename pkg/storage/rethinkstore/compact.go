package rethinkstore

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	r "gopkg.in/rethinkdb/rethinkdb-go.v6"
)

// deleteBatch is the number of log rows removed per query.
const deleteBatch = 1000

// runCompactor compacts the log every CompactionInterval (with jitter, so
// replicas do not all try at once; the compact document decides who does).
func (b *backend) runCompactor(ctx context.Context) {
	select {
	case <-b.ready:
	case <-ctx.Done():
		return
	}
	for {
		interval := b.opts.CompactionInterval
		jitter := time.Duration(rand.Int64N(int64(interval)/10 + 1))
		t := time.NewTimer(interval + jitter)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if err := b.compactScheduled(ctx); err != nil && ctx.Err() == nil {
			b.logger.Info("Compaction of the RethinkDB revision log failed; retrying next interval", "err", err)
		}
	}
}

// compactScheduled compacts up to the watermark recorded by the previous
// compaction, so at least one interval of history stays. The compact document
// is updated atomically and only when an interval has passed since the last
// compaction, so one replica per interval does the work.
func (b *backend) compactScheduled(ctx context.Context) error {
	b.mu.Lock()
	w := b.watermark
	b.mu.Unlock()
	minAge := 0.9 * b.opts.CompactionInterval.Seconds()
	resp, err := b.runWrite(ctx, b.meta.Get(compactDoc).Update(func(row r.Term) any {
		due := r.Now().ToEpochTime().Sub(row.Field("at").Default(0)).Ge(minAge)
		return r.Branch(due, map[string]any{
			"rev":  r.Branch(row.Field("next").Gt(row.Field("rev")), row.Field("next"), row.Field("rev")),
			"prev": row.Field("rev"),
			"next": r.Branch(row.Field("next").Gt(w), row.Field("next"), w),
			"at":   r.Now().ToEpochTime(),
		}, r.Error("not due"))
	}, r.UpdateOpts{ReturnChanges: true}))
	if err != nil {
		return err
	}
	if resp.Replaced != 1 || len(resp.Changes) != 1 {
		return nil // not due, or another replica just did it
	}
	rev, _ := numberField(resp.Changes[0].NewValue, "rev")
	prev, _ := numberField(resp.Changes[0].NewValue, "prev")
	old, _ := numberField(resp.Changes[0].OldValue, "rev")
	if rev == old {
		return nil
	}
	return b.compactTo(ctx, rev, prev)
}

// compact compacts the log up to rev now (for tests and tools): reads and
// watches older than rev get 410 afterwards. Like etcd's compaction it takes
// a revision of its own, so the store's revision moves past rev.
func (b *backend) compact(ctx context.Context, rev int64) error {
	own, err := b.allocate(ctx)
	if err != nil {
		return err
	}
	if err := b.fill(ctx, own); err != nil {
		return err
	}
	var cs compactState
	if err := b.runOne(ctx, b.meta.Get(compactDoc), &cs); err != nil {
		return err
	}
	if rev <= cs.Rev {
		return nil
	}
	if _, err := b.runWrite(ctx, b.meta.Get(compactDoc).Update(map[string]any{"rev": rev, "prev": cs.Rev})); err != nil {
		return err
	}
	return b.compactTo(ctx, rev, cs.Rev)
}

// compactTo removes the log rows no read at or after rev can need:
//   - a row superseded by a newer row of its key at or below rev;
//   - a fill row at or below prev (the previous compacted revision);
//   - a delete row at or below prev that is its key's newest row. Its
//     predecessors went in an earlier compaction, so a list scanning the key
//     never sees a predecessor without the delete (see doc.go).
func (b *backend) compactTo(ctx context.Context, rev, prev int64) error {
	b.mu.Lock()
	if rev > b.compactRev {
		b.compactRev = rev
	}
	b.mu.Unlock()

	qctx, cancel := context.WithTimeout(ctx, 10*b.client.Timeout())
	defer cancel()
	cur, err := b.log.Between(r.MinVal, rev+1).Pluck("id", "key", "deleted", "fill").Run(b.client.Session(), r.RunOpts{Context: qctx})
	if err != nil {
		return b.queryError(qctx, err)
	}
	defer cur.Close()
	type newest struct {
		rev     int64
		deleted bool
	}
	latest := map[string]newest{}
	var remove []any
	var row logRow
	for cur.Next(&row) {
		switch {
		case row.Fill:
			if row.Rev <= prev {
				remove = append(remove, row.Rev)
			}
		default:
			n, seen := latest[row.Key]
			switch {
			case !seen:
				latest[row.Key] = newest{row.Rev, row.Deleted}
			case row.Rev > n.rev:
				remove = append(remove, n.rev)
				latest[row.Key] = newest{row.Rev, row.Deleted}
			default:
				remove = append(remove, row.Rev)
			}
		}
		row = logRow{}
	}
	if err := cur.Err(); err != nil {
		return b.queryError(qctx, err)
	}
	for _, n := range latest {
		if n.deleted && n.rev <= prev {
			remove = append(remove, n.rev)
		}
	}
	for len(remove) > 0 {
		n := min(len(remove), deleteBatch)
		if _, err := b.runWrite(ctx, b.log.GetAll(remove[:n]...).Delete()); err != nil {
			return fmt.Errorf("compact %s.%s: %w", b.db, logTable, err)
		}
		remove = remove[n:]
	}
	b.logger.V(1).Info("Compacted the RethinkDB revision log", "revision", rev)
	return nil
}
