// Package tablewatch serves tables/watch: it fans one RethinkDB changefeed
// per watched table out to every watcher of that table, and keeps a bounded
// buffer of recent events per table so that watchers can resume.
//
// # Events
//
// Every change is one Event: ADDED (no old_val), MODIFIED (both) or DELETED
// (no new_val). Event types are derived from old_val/new_val, so the package
// needs neither includeTypes nor includeInitial from the server (reqlite, the
// dev and test stand-in, supports neither). BOOKMARK is never produced here;
// the HTTP handler sends one at the end of a stream with Subscription.Token.
//
// # Delivery guarantees
//
//   - One changefeed per table and Hub, shared by all of the table's
//     subscribers, on its own feed session (no read timeout, TCP keep-alive).
//   - Each subscriber sees the table's events exactly once and in the
//     feed's order, from the moment its Watch call returned (or from its
//     resume token) until its Events channel closes. Err then says why it
//     closed: nil (its context ended or Close was called), ErrSlow, a
//     *ResyncError, ErrClosed, or an error wrapping a
//     *rethinkdb.UnavailableError (the changefeed failed). Never a silent gap.
//   - Resume tokens are opaque. A token names the Hub instance (random per
//     process), the table, the feed incarnation and a sequence number. A
//     token whose event is still among the last Options.BufferSize events of
//     the same feed resumes right after that event: no gap, no duplicate.
//     A token from another Hub (the apiserver restarted), from an earlier
//     feed of the table (the feed failed or was closed when idle, so changes
//     may have been missed) or too old is answered with a *ResyncError
//     (HTTP 410: reload with includeInitial=true). A token that cannot be
//     read, or that belongs to another table, is a *rows.ParameterError
//     (HTTP 400, rows.StatusError maps it).
//   - includeInitial (without a resume token): the feed is opened (or
//     joined) first and its current sequence number noted; then the table
//     is read with rows.Each and every row sent as ADDED, carrying the noted
//     position as its token; then every feed event after that position
//     follows. A change that races with the snapshot may therefore show up
//     twice (the snapshot already holds the new row, and the change follows
//     as ADDED or MODIFIED with the same content; a row deleted meanwhile
//     may be sent as ADDED and then DELETED), but no change is ever missed.
//     Subscription.Token stays "" until the snapshot is complete, so a
//     stream cut during the snapshot ends without a token and the client
//     reloads. When more than BufferSize changes happen while the snapshot
//     is read, the watch ends with ErrSlow.
//     With a resume token, includeInitial is ignored: the client already
//     holds the rows.
//   - Fan-out never blocks the feed: each subscriber has a bounded queue
//     (Options.SubscriberBuffer); a subscriber whose queue is full is
//     dropped with ErrSlow. The events queued before the drop are still
//     delivered, so the last token the client saw resumes exactly, if it is
//     still in the buffer. Other subscribers are unaffected.
//   - When the changefeed fails (RethinkDB down, table dropped), all its
//     subscribers end with an error wrapping *rethinkdb.UnavailableError,
//     the feed is forgotten, and the next Watch opens a new one. When
//     RethinkDB reports that the feed skipped changes, subscribers end with
//     a *ResyncError.
//   - A table nobody watches has its feed closed after Options.IdleClose;
//     tokens of that feed then get a *ResyncError (changes were not
//     followed meanwhile).
package tablewatch
