package table

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apiserver/pkg/registry/rest"

	"github.com/guildnet/guildnet/apis/guildnet"
	"github.com/guildnet/guildnet/pkg/rows"
	"github.com/guildnet/guildnet/pkg/tablewatch"
)

// DefaultWatchMaxDuration ends a tables/watch stream before kube-apiserver's
// default --request-timeout (60 s) would cut it: kube-apiserver does not
// count GET on this subresource as long-running.
const DefaultWatchMaxDuration = 50 * time.Second

// WatchREST is the tables/watch subresource: the table's changefeed as
// newline-delimited JSON events or text/event-stream. Each stream ends
// gracefully with a BOOKMARK carrying a resume token before the request
// timeout; clients reconnect with ?resumeToken= and miss nothing, or get
// 410 Gone ("resync") when the token cannot be resumed.
type WatchREST struct {
	tables      rest.Getter
	hub         *tablewatch.Hub
	maxDuration time.Duration
}

// NewWatchREST returns the tables/watch subresource.
func NewWatchREST(tables rest.Getter, hub *tablewatch.Hub, maxDuration time.Duration) *WatchREST {
	if maxDuration <= 0 {
		maxDuration = DefaultWatchMaxDuration
	}
	return &WatchREST{tables: tables, hub: hub, maxDuration: maxDuration}
}

var _ rest.Connecter = &WatchREST{}

// New returns the kind the subresource belongs to.
func (w *WatchREST) New() runtime.Object { return &guildnet.Table{} }

// Destroy does nothing: the hub is closed by the server.
func (w *WatchREST) Destroy() {}

// ConnectMethods: a watch is a GET (RBAC verb get on tables/watch).
func (w *WatchREST) ConnectMethods() []string { return []string{http.MethodGet} }

// NewConnectOptions returns the query parameters.
func (w *WatchREST) NewConnectOptions() (runtime.Object, bool, string) {
	return &guildnet.TableWatchOptions{}, false, ""
}

// Connect returns the streaming handler of one watch on table name.
func (w *WatchREST) Connect(ctx context.Context, name string, options runtime.Object, _ rest.Responder) (http.Handler, error) {
	opts, ok := options.(*guildnet.TableWatchOptions)
	if !ok {
		return nil, fmt.Errorf("invalid options object: %#v", options)
	}
	table, err := rowsTable(ctx, w.tables, name)
	if err != nil {
		return nil, err
	}
	duration := w.maxDuration
	if opts.TimeoutSeconds != nil && *opts.TimeoutSeconds > 0 && time.Duration(*opts.TimeoutSeconds)*time.Second < duration {
		duration = time.Duration(*opts.TimeoutSeconds) * time.Second
	}
	return &watchHandler{rest: w, table: table, name: name, opts: opts, duration: duration}, nil
}

type watchHandler struct {
	rest     *WatchREST
	table    rows.Table
	name     string
	opts     *guildnet.TableWatchOptions
	duration time.Duration
}

func (h *watchHandler) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	sse := strings.Contains(req.Header.Get("Accept"), "text/event-stream")
	token := h.opts.ResumeToken
	if token == "" && sse {
		// EventSource reconnects with the id of the last event it saw.
		token = req.Header.Get("Last-Event-ID")
	}
	ctx, cancel := context.WithTimeout(req.Context(), h.duration)
	defer cancel()
	sub, err := h.rest.hub.Watch(ctx, h.table, h.opts.IncludeInitial, token)
	if err != nil {
		writeStatus(w, watchStatus(err, h.name))
		return
	}
	defer sub.Close()

	if sse {
		w.Header().Set("Content-Type", "text/event-stream")
	} else {
		w.Header().Set("Content-Type", "application/x-ndjson")
	}
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	write := func(ev any, id string) bool {
		b, err := json.Marshal(ev)
		if err != nil {
			return false
		}
		if sse {
			if id != "" {
				_, err = fmt.Fprintf(w, "id: %s\n", id)
			}
			if err == nil {
				_, err = fmt.Fprintf(w, "data: %s\n\n", b)
			}
		} else {
			_, err = w.Write(append(b, '\n'))
		}
		if flusher != nil {
			flusher.Flush()
		}
		return err == nil
	}
	if flusher != nil {
		flusher.Flush()
	}
	for ev := range sub.Events() {
		if !write(ev, ev.ResumeToken) {
			return
		}
	}
	switch err := sub.Err(); {
	case err == nil || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
		if req.Context().Err() != nil {
			return // the client left
		}
		// The stream's time is up: a final BOOKMARK to resume from.
		write(tablewatch.Event{Type: "BOOKMARK", ResumeToken: sub.Token()}, sub.Token())
	default:
		// The stream cannot go on (dropped as too slow, resync needed,
		// RethinkDB gone): say so in-band, as Kubernetes watches send ERROR.
		st := watchStatus(err, h.name).ErrStatus
		st.Kind, st.APIVersion = "Status", "v1"
		write(map[string]any{"type": "ERROR", "object": st, "resumeToken": sub.Token()}, "")
	}
}

// watchStatus maps a hub error to a Status: 410 for a resync, the rows
// mapping (400, 404, 503, ...) otherwise.
func watchStatus(err error, table string) *apierrors.StatusError {
	var resync *tablewatch.ResyncError
	if errors.As(err, &resync) {
		return &apierrors.StatusError{ErrStatus: metav1.Status{
			Status: metav1.StatusFailure, Code: http.StatusGone, Reason: metav1.StatusReasonExpired,
			Message: fmt.Sprintf("table %s: %v", table, err),
		}}
	}
	if errors.Is(err, tablewatch.ErrSlow) {
		return &apierrors.StatusError{ErrStatus: metav1.Status{
			Status: metav1.StatusFailure, Code: http.StatusTooManyRequests, Reason: metav1.StatusReasonTooManyRequests,
			Message: fmt.Sprintf("table %s: %v", table, err),
		}}
	}
	return rows.StatusError(err, table)
}
