package tablewatch

import (
	"errors"
	"fmt"
)

// ErrSlow ends a subscription that could not keep up with its table's
// changes: its queue was full, so it was dropped. Other subscribers are
// unaffected. The client resumes with its last token (or reloads).
var ErrSlow = errors.New("the watcher could not keep up with the table's changes and was dropped; reconnect with the last resume token, or reload with includeInitial=true")

// ErrClosed ends subscriptions when the Hub is closed (the apiserver shuts
// down), and is returned by Watch afterwards.
var ErrClosed = errors.New("the apiserver is shutting down; reconnect with the last resume token")

// ResyncError says a watch cannot resume from a token: the token is too old,
// from another apiserver instance (e.g. before a restart), or from before the
// table's changefeed was restarted, so changes may have been missed. Callers
// answer HTTP 410 Gone; the client reloads with includeInitial=true.
type ResyncError struct {
	Table  string // "<db>.<table>" inside RethinkDB
	Reason string // why, for the message
}

func (e *ResyncError) Error() string {
	msg := "resume token too old or from another apiserver instance; reload with includeInitial=true"
	if e.Reason != "" {
		msg = fmt.Sprintf("%s (%s)", msg, e.Reason)
	}
	if e.Table != "" {
		msg = fmt.Sprintf("table %s: %s", e.Table, msg)
	}
	return msg
}
