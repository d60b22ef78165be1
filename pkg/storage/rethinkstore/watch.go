package rethinkstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/apiserver/pkg/features"
	"k8s.io/apiserver/pkg/storage"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	utilflowcontrol "k8s.io/apiserver/pkg/util/flowcontrol"
)

// Watch implements storage.Interface. Events come from the backend's window
// of the revision log, in revision order; see doc.go, "Watch".
func (s *store) Watch(ctx context.Context, key string, opts storage.ListOptions) (watch.Interface, error) {
	preparedKey, err := s.prepareKey(key, opts.Recursive)
	if err != nil {
		return nil, err
	}
	if opts.Recursive && !strings.HasSuffix(preparedKey, "/") {
		return nil, fmt.Errorf(`recursive key needs to end with "/"`)
	}
	rev, err := s.versioner.ParseResourceVersion(opts.ResourceVersion)
	if err != nil {
		return nil, err
	}
	if opts.ProgressNotify && s.newFunc == nil {
		return nil, apierrors.NewInternalError(errors.New("progressNotify for watch is unsupported by the RethinkDB storage because no newFunc was provided"))
	}
	start, err := s.startRevision(ctx, int64(rev), opts)
	if err != nil {
		return nil, err
	}
	pred := opts.Predicate
	if pred.Empty() {
		pred = storage.Everything
	}
	wc := &watchChan{
		s:                s,
		key:              preparedKey,
		recursive:        opts.Recursive,
		pred:             pred,
		pos:              start,
		progressNotify:   opts.ProgressNotify,
		bookmarks:        opts.ProgressNotify || opts.Predicate.AllowWatchBookmarks,
		recordTimestamps: opts.RecordTimestamps,
		result:           make(chan watch.Event, 100),
	}
	wc.ctx, wc.cancel = context.WithCancel(ctx)
	go wc.run(initialEventsEndBookmarkRequired(opts), initialEventsRequired(int64(rev), opts))
	// As etcd3: the watch is established once it returns.
	utilflowcontrol.WatchInitialized(ctx)
	return wc, nil
}

// startRevision mirrors etcd3: an explicit revision is used as is; without
// one, a watch either starts with the initial state (0) or, when the client
// asked for no initial events, at the current revision.
func (s *store) startRevision(ctx context.Context, rev int64, opts storage.ListOptions) (int64, error) {
	if rev > 0 || !utilfeature.DefaultFeatureGate.Enabled(features.WatchList) {
		return rev, nil
	}
	if opts.SendInitialEvents == nil || *opts.SendInitialEvents {
		return 0, nil
	}
	cur, err := s.GetCurrentResourceVersion(ctx)
	return int64(cur), err
}

func initialEventsEndBookmarkRequired(opts storage.ListOptions) bool {
	if !utilfeature.DefaultFeatureGate.Enabled(features.WatchList) {
		return false
	}
	return opts.SendInitialEvents != nil && *opts.SendInitialEvents && opts.Predicate.AllowWatchBookmarks
}

func initialEventsRequired(rev int64, opts storage.ListOptions) bool {
	if opts.SendInitialEvents == nil && rev == 0 {
		return true // legacy: a watch from 0 starts with the current state
	}
	if !utilfeature.DefaultFeatureGate.Enabled(features.WatchList) {
		return false
	}
	return opts.SendInitialEvents != nil && *opts.SendInitialEvents
}

// watchChan is one watch. It reads the shared window at its own pace, so a
// slow consumer delays nobody else; if it falls behind the window it gets
// 410 Gone and the client relists.
type watchChan struct {
	s                *store
	key              string
	recursive        bool
	pred             storage.SelectionPredicate
	pos              int64 // every event up to pos has been handled
	progressNotify   bool
	bookmarks        bool
	recordTimestamps bool
	result           chan watch.Event
	ctx              context.Context
	cancel           context.CancelFunc
}

func (wc *watchChan) Stop()                          { wc.cancel() }
func (wc *watchChan) ResultChan() <-chan watch.Event { return wc.result }

func (wc *watchChan) run(endBookmark, initialEvents bool) {
	defer close(wc.result)
	defer wc.cancel()
	b := wc.s.b
	if wc.ctx.Err() != nil {
		return
	}
	if err := b.waitReady(wc.ctx); err != nil {
		wc.sendError(err)
		return
	}
	if initialEvents {
		if wc.pos > 0 {
			cur, err := b.consistentRev(wc.ctx)
			if err != nil {
				wc.sendError(err)
				return
			}
			if wc.pos > cur {
				wc.sendError(storage.NewTooLargeResourceVersionError(uint64(wc.pos), uint64(cur), 1))
				return
			}
		}
		if err := wc.sendInitialEvents(); err != nil {
			wc.sendError(err)
			return
		}
	}
	if endBookmark {
		if !wc.sendBookmark(true) {
			return
		}
	}

	var tick <-chan time.Time
	if wc.bookmarks {
		t := time.NewTicker(b.opts.ProgressInterval)
		defer t.Stop()
		tick = t.C
	}
	sentSinceTick := false
	for {
		evs, w, changed, ok := b.eventsAfter(wc.pos)
		if !ok {
			wc.sendError(apierrors.NewResourceExpired(expiredWatch))
			return
		}
		for _, ev := range evs {
			if wc.matchesKey(ev.key) {
				res, err := wc.transform(ev)
				if err != nil {
					wc.sendError(err)
					return
				}
				if res != nil {
					if !wc.send(*res) {
						return
					}
					sentSinceTick = true
				}
			}
			wc.pos = ev.rev
		}
		if w > wc.pos {
			wc.pos = w // fills and other keys' events are covered too
		}
		b.mu.Lock()
		progress := b.progress
		b.mu.Unlock()
		select {
		case <-wc.ctx.Done():
			return
		case <-changed:
		case <-tick:
			if !sentSinceTick && !wc.sendBookmark(false) {
				return
			}
			sentSinceTick = false
		case <-progress:
			if wc.progressNotify && !wc.sendBookmark(false) {
				return
			}
		}
	}
}

// sendInitialEvents sends the current state as ADDED events and moves pos to
// the revision of that state.
func (wc *watchChan) sendInitialEvents() error {
	b := wc.s.b
	rev, err := b.consistentRev(wc.ctx)
	if err != nil {
		return err
	}
	err = b.scanAt(wc.ctx, wc.key, false, prefixEnd(wc.key), !wc.recursive, rev, func(row *logRow) (bool, error) {
		obj, err := wc.s.decodeRow(wc.ctx, row, wc.s.newObject)
		if err != nil {
			return false, err
		}
		if !wc.filter(obj) {
			return true, nil
		}
		return wc.send(watch.Event{Type: watch.Added, Object: obj}), nil
	})
	if err != nil {
		return err
	}
	if rev < b.compactRevision() {
		return apierrors.NewResourceExpired(expiredWatch)
	}
	wc.pos = rev
	return nil
}

func (wc *watchChan) matchesKey(key string) bool {
	if wc.recursive {
		return strings.HasPrefix(key, wc.key)
	}
	return key == wc.key
}

func (wc *watchChan) filter(obj runtime.Object) bool {
	if wc.pred.Empty() {
		return true
	}
	matched, err := wc.pred.Matches(obj)
	return err == nil && matched
}

// transform turns a log event into what this watch reports, as etcd3 does:
// an update that makes an object match (or stop matching) the selector is
// reported as ADDED (or DELETED).
func (wc *watchChan) transform(ev *event) (*watch.Event, error) {
	var cur, old runtime.Object
	var err error
	if !ev.deleted {
		if cur, err = wc.s.decodeEvent(wc.ctx, ev.key, ev.value, ev.rev); err != nil {
			return nil, err
		}
	}
	if ev.prev != nil && (ev.deleted || !wc.pred.Empty()) {
		// The old object carries the revision of this event, as in etcd3.
		if old, err = wc.s.decodeEvent(wc.ctx, ev.key, ev.prev, ev.rev); err != nil {
			return nil, err
		}
	}
	var res *watch.Event
	switch {
	case ev.deleted:
		if old == nil || !wc.filter(old) {
			return nil, nil
		}
		res = &watch.Event{Type: watch.Deleted, Object: old}
	case ev.created:
		if !wc.filter(cur) {
			return nil, nil
		}
		res = &watch.Event{Type: watch.Added, Object: cur}
	case wc.pred.Empty():
		res = &watch.Event{Type: watch.Modified, Object: cur}
	default:
		curPasses, oldPasses := wc.filter(cur), old != nil && wc.filter(old)
		switch {
		case curPasses && oldPasses:
			res = &watch.Event{Type: watch.Modified, Object: cur}
		case curPasses:
			res = &watch.Event{Type: watch.Added, Object: cur}
		case oldPasses:
			res = &watch.Event{Type: watch.Deleted, Object: old}
		default:
			return nil, nil
		}
	}
	if wc.recordTimestamps {
		res.Object = &timedWatchEvent{Object: res.Object, recordTime: ev.at}
	}
	return res, nil
}

// sendBookmark sends a BOOKMARK at pos. It is a no-op without newFunc.
func (wc *watchChan) sendBookmark(initialEventsEnd bool) bool {
	if wc.s.newFunc == nil {
		return true
	}
	obj := wc.s.newFunc()
	if err := wc.s.versioner.UpdateObject(obj, uint64(wc.pos)); err != nil {
		wc.sendError(fmt.Errorf("failed to propagate object resource version: %w", err))
		return false
	}
	if initialEventsEnd {
		if err := storage.AnnotateInitialEventsEndBookmark(obj); err != nil {
			wc.sendError(err)
			return false
		}
	}
	return wc.send(watch.Event{Type: watch.Bookmark, Object: obj})
}

func (wc *watchChan) send(e watch.Event) bool {
	select {
	case wc.result <- e:
		return true
	case <-wc.ctx.Done():
		return false
	}
}

// sendError sends an ERROR event (unless the watch was stopped) and ends the watch.
func (wc *watchChan) sendError(err error) {
	defer wc.cancel()
	if errors.Is(err, context.Canceled) || wc.ctx.Err() != nil {
		return
	}
	var status apierrors.APIStatus
	if !errors.As(err, &status) {
		status = apierrors.NewInternalError(err)
	}
	st := status.Status()
	wc.send(watch.Event{Type: watch.Error, Object: &st})
}

// decodeEvent decodes the stored bytes of an event's object.
func (s *store) decodeEvent(ctx context.Context, key string, stored []byte, rev int64) (runtime.Object, error) {
	data, _, err := s.transformer.TransformFromStorage(ctx, stored, authenticatedDataString(key))
	if err != nil {
		return nil, err
	}
	obj, err := runtime.Decode(s.codec, data)
	if err != nil {
		return nil, err
	}
	if err := s.versioner.UpdateObject(obj, uint64(rev)); err != nil {
		return nil, fmt.Errorf("failure to version api object (%d) %#v: %w", rev, obj, err)
	}
	return obj, nil
}

// newObject is the item constructor of watch initial events.
func (s *store) newObject() runtime.Object {
	if s.newFunc != nil {
		return s.newFunc()
	}
	return nil
}

// timedWatchEvent carries the time an event was read from RethinkDB, for the
// watch cache's latency metrics (ListOptions.RecordTimestamps).
type timedWatchEvent struct {
	runtime.Object
	recordTime time.Time
}

var _ storage.WatchEventWithRecordTime = &timedWatchEvent{}

func (t *timedWatchEvent) GetObjectMeta() metav1.Object {
	m, _ := meta.Accessor(t.Object)
	return m
}

func (t *timedWatchEvent) DeepCopyObject() runtime.Object {
	return &timedWatchEvent{Object: t.Object.DeepCopyObject(), recordTime: t.recordTime}
}

func (t *timedWatchEvent) RecordTime() time.Time  { return t.recordTime }
func (t *timedWatchEvent) Unwrap() runtime.Object { return t.Object }
