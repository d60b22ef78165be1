package workspace

import (
	"context"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/registry/rest"
	"k8s.io/klog/v2"

	"github.com/guildnet/guildnet/apis/guildnet"
)

// Activity records when workspaces are used through workspaces/proxy and
// writes it to status.lastActivityTime, which the reconciler compares with
// spec.idleTimeout.
//
// Requests only touch an in-memory map; a background loop writes each
// workspace at most once per interval, so a page that loads a hundred
// assets costs one status write, not a hundred. The interval is a quarter
// of the workspace's idleTimeout (bounded to [1s, MaxInterval]), so the
// recorded time is never more than a quarter timeout behind. An open
// WebSocket counts as activity for as long as it is open.
type Activity struct {
	status rest.Updater
	// MaxInterval bounds how stale lastActivityTime may be (workspaces
	// without an idleTimeout are written this often while in use).
	maxInterval time.Duration
	now         func() time.Time

	mu      sync.Mutex
	entries map[types.NamespacedName]*activityEntry
	stop    chan struct{}
	done    chan struct{}
}

type activityEntry struct {
	uid       types.UID
	lastSeen  time.Time
	written   time.Time
	open      int
	interval  time.Duration
	unwritten bool
}

// DefaultActivityMaxInterval is how often a busy workspace without an
// idleTimeout gets its lastActivityTime refreshed.
const DefaultActivityMaxInterval = 30 * time.Second

// NewActivity starts the loop that writes lastActivityTime through status
// (the workspaces/status storage). Stop ends it after a final write.
func NewActivity(status rest.Updater, maxInterval time.Duration) *Activity {
	if maxInterval <= 0 {
		maxInterval = DefaultActivityMaxInterval
	}
	a := &Activity{
		status:      status,
		maxInterval: maxInterval,
		now:         time.Now,
		entries:     map[types.NamespacedName]*activityEntry{},
		stop:        make(chan struct{}),
		done:        make(chan struct{}),
	}
	go a.loop()
	return a
}

func (a *Activity) interval(ws *guildnet.Workspace) time.Duration {
	d := a.maxInterval
	if t := ws.Spec.IdleTimeout; t != nil && t.Duration > 0 && t.Duration/4 < d {
		d = t.Duration / 4
	}
	return max(d, time.Second)
}

func (a *Activity) entry(ws *guildnet.Workspace) *activityEntry {
	key := types.NamespacedName{Namespace: ws.Namespace, Name: ws.Name}
	e := a.entries[key]
	if e == nil || e.uid != ws.UID {
		e = &activityEntry{uid: ws.UID}
		a.entries[key] = e
	}
	e.interval = a.interval(ws)
	return e
}

// Touch records one request to ws.
func (a *Activity) Touch(ws *guildnet.Workspace) {
	a.mu.Lock()
	defer a.mu.Unlock()
	e := a.entry(ws)
	e.lastSeen = a.now()
	e.unwritten = true
}

// Open records a WebSocket to ws that stays open until the returned
// function is called.
func (a *Activity) Open(ws *guildnet.Workspace) (closed func()) {
	a.mu.Lock()
	e := a.entry(ws)
	e.open++
	e.lastSeen = a.now()
	e.unwritten = true
	a.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			a.mu.Lock()
			defer a.mu.Unlock()
			e.open--
			e.lastSeen = a.now()
			e.unwritten = true
		})
	}
}

// Stop writes what is pending and ends the loop.
func (a *Activity) Stop() {
	select {
	case <-a.stop:
	default:
		close(a.stop)
	}
	<-a.done
}

func (a *Activity) loop() {
	defer close(a.done)
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-a.stop:
			a.flush(true)
			return
		case <-tick.C:
			a.flush(false)
		}
	}
}

type pendingWrite struct {
	key  types.NamespacedName
	uid  types.UID
	seen time.Time
}

// flush writes every workspace whose interval has passed since its last
// write (all of them when final).
func (a *Activity) flush(final bool) {
	now := a.now()
	var writes []pendingWrite
	a.mu.Lock()
	for key, e := range a.entries {
		if e.open > 0 {
			e.lastSeen = now
			e.unwritten = true
		}
		if !e.unwritten {
			if now.Sub(e.lastSeen) > 2*a.maxInterval {
				delete(a.entries, key) // forget workspaces nobody uses
			}
			continue
		}
		if !final && now.Sub(e.written) < e.interval {
			continue
		}
		writes = append(writes, pendingWrite{key: key, uid: e.uid, seen: e.lastSeen})
		e.written = now
		e.unwritten = false
	}
	a.mu.Unlock()
	for _, w := range writes {
		if err := a.write(w); err != nil && !errors.IsNotFound(err) && !errors.IsConflict(err) {
			klog.ErrorS(err, "Recording workspace activity", "workspace", w.key)
		}
	}
}

// write moves status.lastActivityTime forward to w.seen. The update works
// on the object as stored (the storage retries on conflicts), so a
// concurrent status write by the reconciler is never overwritten, and an
// older time from another replica never moves the field back.
func (a *Activity) write(w pendingWrite) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ctx = genericapirequest.WithNamespace(ctx, w.key.Namespace)
	seen := metav1.NewTime(w.seen.Truncate(time.Second))
	_, _, err := a.status.Update(ctx, w.key.Name, rest.DefaultUpdatedObjectInfo(nil, func(_ context.Context, _, stored runtime.Object) (runtime.Object, error) {
		ws, ok := stored.(*guildnet.Workspace)
		if !ok || ws.UID != w.uid {
			return nil, errors.NewConflict(guildnet.Resource("workspaces"), w.key.Name, errRecreated)
		}
		if ws.Status.LastActivityTime != nil && !ws.Status.LastActivityTime.Before(&seen) {
			return ws, nil
		}
		ws = ws.DeepCopy()
		ws.Status.LastActivityTime = &seen
		return ws, nil
	}), nil, rest.ValidateAllObjectUpdateFunc, false, &metav1.UpdateOptions{})
	return err
}

var errRecreated = errorString("the workspace was deleted and created again")

type errorString string

func (e errorString) Error() string { return string(e) }
