package tablewatch

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"github.com/guildnet/guildnet/pkg/rows"
)

// Subscription is one watcher of a table. Read Events until it closes, then
// Err says why.
type Subscription struct {
	hub    *Hub
	feed   *feed
	ctx    context.Context
	cancel context.CancelFunc

	in      chan Event // from the feed; closed (under feed.mu) when dropped
	endErr  error      // why in was closed; written before close(in)
	out     chan Event
	done    chan struct{}
	backlog []Event // buffered events to deliver first (resume)

	snapshot   bool   // includeInitial: read the rows first
	snapshotAt uint64 // feed position the snapshot starts from

	token atomic.Value // string: token of the last delivered event

	mu  sync.Mutex
	err error
}

// Events returns the channel of events. It is closed when the subscription
// ends; then Err says why.
func (s *Subscription) Events() <-chan Event { return s.out }

// Err is nil while Events is open and when the subscription ended because
// its context ended or Close was called. Otherwise: ErrSlow, a *ResyncError,
// ErrClosed, a snapshot read error (includeInitial), or an error wrapping a
// *rethinkdb.UnavailableError when the changefeed failed.
func (s *Subscription) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Token returns the resume token of the last delivered event (or of the
// position the watch started from), for the final BOOKMARK of a stream. It
// is exact once Events has closed; before, it may lag the event just
// received (it is stored after the send), but never runs ahead of what was
// delivered, so resuming from it loses nothing. It is "" while an
// includeInitial snapshot is still being sent: a client cut off then must
// reload.
func (s *Subscription) Token() string {
	t, _ := s.token.Load().(string)
	return t
}

// Close ends the subscription and waits until its resources are released.
// Events closes; Err stays nil unless the subscription had ended before.
func (s *Subscription) Close() {
	s.cancel()
	<-s.done
}

var errCancelled = errors.New("subscription cancelled")

func (s *Subscription) run() {
	err := s.deliver()
	if errors.Is(err, errCancelled) || (err != nil && s.ctx.Err() != nil && errors.Is(err, s.ctx.Err())) {
		err = nil
	}
	f := s.feed
	f.mu.Lock()
	delete(f.live, s)
	f.mu.Unlock()
	s.mu.Lock()
	s.err = err
	s.mu.Unlock()
	s.hub.release(f)
	s.cancel()
	close(s.out)
	close(s.done)
}

func (s *Subscription) send(ev Event) error {
	select {
	case s.out <- ev:
		s.token.Store(ev.ResumeToken)
		return nil
	case <-s.ctx.Done():
		return errCancelled
	}
}

func (s *Subscription) deliver() error {
	f := s.feed
	if s.snapshot {
		tok := f.tokenFor(s.snapshotAt)
		err := f.table.Each(s.ctx, s.hub.client.Session(), rows.ListOptions{}, func(row rows.Row) error {
			select {
			case s.out <- Event{Type: Added, New: row, ResumeToken: tok}:
				return nil
			case <-s.ctx.Done():
				return errCancelled
			}
		})
		if err != nil {
			if s.ctx.Err() != nil {
				return errCancelled
			}
			return s.hub.client.WrapError(err)
		}
		f.mu.Lock()
		if f.err != nil {
			err := f.err
			f.mu.Unlock()
			return err
		}
		backlog, ok := f.since(s.snapshotAt)
		if !ok {
			f.mu.Unlock()
			return ErrSlow
		}
		s.backlog = backlog
		f.live[s] = true
		f.mu.Unlock()
		s.token.Store(tok)
	}
	for _, ev := range s.backlog {
		if err := s.send(ev); err != nil {
			return err
		}
	}
	s.backlog = nil
	for {
		select {
		case ev, ok := <-s.in:
			if !ok {
				return s.endErr
			}
			if err := s.send(ev); err != nil {
				return err
			}
		case <-s.ctx.Done():
			return errCancelled
		}
	}
}
