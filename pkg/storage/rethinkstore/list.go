package rethinkstore

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/conversion"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apiserver/pkg/storage"

	r "gopkg.in/rethinkdb/rethinkdb-go.v6"
)

// listTimeout bounds one list scan; compaction relies on scans being much
// shorter than its interval (doc.go, "Compaction").
const listTimeout = time.Minute

// GetList implements storage.Interface. A list reads the revision log as of
// one revision: the newest row of each key at or below it.
func (s *store) GetList(ctx context.Context, key string, opts storage.ListOptions, listObj runtime.Object) error {
	keyPrefix, err := s.prepareKey(key, opts.Recursive)
	if err != nil {
		return err
	}
	listPtr, err := meta.GetItemsPtr(listObj)
	if err != nil {
		return err
	}
	v, err := conversion.EnforcePtr(listPtr)
	if err != nil || v.Kind() != reflect.Slice {
		return fmt.Errorf("need ptr to slice: %v", err)
	}
	newItemFunc := getNewItemFunc(listObj, v)
	withRev, continueKey, err := storage.ValidateListOptions(keyPrefix, s.versioner, opts)
	if err != nil {
		return err
	}
	if err := s.b.waitReady(ctx); err != nil {
		return err
	}
	expired := func() error {
		if continueKey != "" {
			return expiredContinue(continueKey, keyPrefix)
		}
		return apierrors.NewResourceExpired(expiredList)
	}

	rev := withRev
	if rev == 0 {
		if rev, err = s.b.consistentRev(ctx); err != nil {
			return err
		}
		if err := s.validateMinimumResourceVersion(opts.ResourceVersion, uint64(rev)); err != nil {
			return err
		}
	} else if err := s.b.readableAt(ctx, rev); err != nil {
		if apierrors.IsResourceExpired(err) {
			return expired()
		}
		return err
	}

	from, fromOpen := keyPrefix, false
	if continueKey != "" {
		// A continue key is the last key returned plus "\x00": start right
		// after that key (RethinkDB index keys are not meant to hold NUL).
		from, fromOpen = strings.TrimSuffix(continueKey, "\x00"), strings.HasSuffix(continueKey, "\x00")
	}
	limit := opts.Predicate.Limit
	paging := limit > 0
	var (
		lastKey string
		hasMore bool
		count   int64 // keys from the start of this page, for remainingItemCount
	)
	err = s.b.scanAt(ctx, from, fromOpen, prefixEnd(keyPrefix), !opts.Recursive, rev, func(row *logRow) (bool, error) {
		if paging && int64(v.Len()) >= limit {
			hasMore = true
			if !opts.Predicate.Empty() {
				return false, nil // no remainingItemCount with a selector
			}
			count++
			return true, nil
		}
		count++
		lastKey = row.Key
		if err := ctx.Err(); err != nil {
			return false, storage.NewTimeoutError(row.Key, "request did not complete within requested timeout")
		}
		obj, err := s.decodeRow(ctx, row, newItemFunc)
		if err != nil {
			return false, err
		}
		if matched, err := opts.Predicate.Matches(obj); err == nil && matched {
			v.Set(reflect.Append(v, reflect.ValueOf(obj).Elem()))
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	// A compaction that overtook the scan may have removed rows it needed.
	if rev < s.b.compactRevision() {
		return expired()
	}
	continueValue, remaining, err := storage.PrepareContinueToken(lastKey, keyPrefix, rev, count, hasMore, opts)
	if err != nil {
		return err
	}
	if v.IsNil() {
		v.Set(reflect.MakeSlice(v.Type(), 0, 0))
	}
	return s.versioner.UpdateList(listObj, uint64(rev), continueValue, remaining)
}

// decodeRow decodes the object of a log row and sets its resourceVersion.
func (s *store) decodeRow(ctx context.Context, row *logRow, newItemFunc func() runtime.Object) (runtime.Object, error) {
	stored, err := decodeValue(row.Value)
	if err != nil {
		return nil, storage.NewInternalError(fmt.Errorf("corrupt value of %s at revision %d: %w", row.Key, row.Rev, err))
	}
	data, _, err := s.transformer.TransformFromStorage(ctx, stored, authenticatedDataString(row.Key))
	if err != nil {
		return nil, storage.NewInternalError(fmt.Errorf("unable to transform key %q: %w", row.Key, err))
	}
	obj, _, err := s.codec.Decode(data, nil, newItemFunc())
	if err != nil {
		return nil, err
	}
	if err := s.versioner.UpdateObject(obj, uint64(row.Rev)); err != nil {
		return nil, err
	}
	return obj, nil
}

// prefixEnd is the smallest key greater than every key with the prefix.
func prefixEnd(prefix string) string {
	b := []byte(prefix)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0xff {
			b[i]++
			return string(b[:i+1])
		}
	}
	return "\xff" // unreachable for storage keys, which are printable
}

// readableAt checks that a read at rev can be served (not compacted, not in
// the future) and waits until the log is settled up to it.
func (b *backend) readableAt(ctx context.Context, rev int64) error {
	if rev < b.compactRevision() {
		return apierrors.NewResourceExpired(expiredList)
	}
	b.mu.Lock()
	w := b.watermark
	b.mu.Unlock()
	if rev > w {
		c, err := b.counter(ctx)
		if err != nil {
			return err
		}
		if rev > c {
			return storage.NewTooLargeResourceVersionError(uint64(rev), uint64(c), 1)
		}
	}
	return b.waitFor(ctx, rev)
}

// scanAt calls fn with the newest row at or below rev of each key in
// [from, to) (from excluded if fromOpen), or of the key from alone if exact,
// in key order, skipping keys deleted as of rev. fn returns false to stop.
// It streams, so memory stays bounded by one key's rows.
func (b *backend) scanAt(ctx context.Context, from string, fromOpen bool, to string, exact bool, rev int64, fn func(*logRow) (bool, error)) error {
	var q r.Term
	if exact {
		q = b.log.GetAllByIndex(keyIndex, from)
	} else {
		left := "closed"
		if fromOpen {
			left = "open"
		}
		q = b.log.Between(from, to, r.BetweenOpts{Index: keyIndex, LeftBound: left, RightBound: "open"}).
			OrderBy(r.OrderByOpts{Index: keyIndex})
	}
	q = q.Filter(func(row r.Term) r.Term { return row.Field("id").Le(rev) })

	qctx, cancel := context.WithTimeout(ctx, listTimeout)
	defer cancel()
	cur, err := q.Run(b.client.Session(), r.RunOpts{Context: qctx})
	if err != nil {
		return b.queryError(qctx, err)
	}
	defer cur.Close()

	var best *logRow // newest row of the current key so far
	emit := func() (bool, error) {
		if best == nil || best.Deleted {
			return true, nil
		}
		return fn(best)
	}
	for {
		row := new(logRow)
		if !cur.Next(row) {
			break
		}
		if best != nil && row.Key != best.Key {
			if cont, err := emit(); err != nil || !cont {
				return err
			}
			best = nil
		}
		if best == nil || row.Rev > best.Rev {
			best = row
		}
	}
	if err := cur.Err(); err != nil {
		return b.queryError(qctx, err)
	}
	_, err = emit()
	return err
}

// count returns the number of objects whose key starts with prefix.
func (b *backend) count(ctx context.Context, prefix string) (int64, error) {
	var n int64
	err := b.runOne(ctx, b.objects.Between(prefix, prefixEnd(prefix), r.BetweenOpts{Index: keyIndex}).
		Filter(func(o r.Term) r.Term { return o.Field("rev").Gt(0) }).Count(), &n)
	return n, err
}

// readiness is nil once the schema is set up and while the log can be read.
func (b *backend) readiness() error {
	select {
	case <-b.ready:
	default:
		b.mu.Lock()
		err := b.readyErr
		b.mu.Unlock()
		if err == nil {
			err = fmt.Errorf("setting up RethinkDB database %s", b.db)
		}
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.tailErr
}

// requestProgress asks every progress-notifying watch for a bookmark.
func (b *backend) requestProgress() {
	b.mu.Lock()
	defer b.mu.Unlock()
	close(b.progress)
	b.progress = make(chan struct{})
}

func (b *backend) compactRevision() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.compactRev
}
