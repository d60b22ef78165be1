// Package rethinkstore is a k8s.io/apiserver storage.Interface on RethinkDB:
// guildnet-apiserver keeps its own objects in RethinkDB instead of etcd. It
// passes the upstream storage conformance suite (k8s.io/apiserver/pkg/storage/
// testing; see store_test.go for what runs and what does not).
//
// Use NewStorageDecorator as the Decorator of the genericregistry.Store's
// RESTOptions. All resources of one rethinkdb.Client share one system
// database and one revision log, so resourceVersions are ordered across
// resources, as with etcd.
//
// # Tables
//
// The system database (--rethinkdb-database) holds three tables:
//
//   - meta: the revision counter {id: "revision", value} and the compaction
//     state {id: "compact", rev, prev, next, at}.
//   - log: the revision log, one row per revision, primary key = revision:
//     {id, key, value, prev, prev_rev, deleted} for a write, {id, key: "",
//     fill: true} for a revision that carries none. value and prev are the
//     stored bytes (codec, then transformer) in base64. Secondary index "key".
//   - objects: the current state of each key, primary key = the key (hashed
//     above 127 bytes): {id, key, rev, value, pending}. It is also the lock
//     that serializes writers of a key (pending). Secondary index "key".
//
// This is kine's design (k3s-io/kine, docs/flow.md) on RethinkDB: the log is
// the truth, in strictly increasing revisions with no gaps; the objects table
// makes compare-and-swap possible, since RethinkDB has no transactions and no
// unique secondary indexes, only atomic single-document writes.
//
// # Writes
//
// A write of key K based on the committed revision E (0: K does not exist):
//
//  1. Allocate R: an atomic increment of the counter document. R is unique
//     and greater than every revision allocated before, in particular E.
//  2. Claim K: a conditional single-document update of objects[K] that
//     succeeds only if K is still at E and nobody holds it (pending = 0),
//     and sets pending = R (for a create: insert objects[K], which fails if K
//     exists). A writer that loses gets a conflict (409 from the registry, or
//     a re-read and retry in GuaranteedUpdate) and fills R at once.
//  3. Commit: insert log[R] with the new value and the previous one. This
//     insert is the commit point. It fails if R was filled meanwhile (the
//     writer was too slow); the writer then releases its claim and retries
//     with a new revision.
//  4. Apply: objects[K] gets rev R and the new value, pending 0 (delete: the
//     row is removed), conditionally on pending = R.
//
// Whoever finds a claim (pending = P) decides it from log[P] alone: a write
// row means committed (apply it), a fill row means abandoned (release it), no
// row means in flight. Readers (Get) then see the committed state without
// waiting; writers wait until log[P] exists, which takes at most GapTimeout
// because the tailer fills a revision nobody writes. So a writer that dies at
// any step leaves nothing that blocks or corrupts: after step 1 a gap that
// gets filled, after step 2 a claim released via that fill, after step 3 a
// committed write that the next reader or writer applies.
//
// Why no update is lost with N writers (replicas): two writers based on the
// same E both try step 2 on the same document; RethinkDB applies single-
// document updates atomically, so only one sees pending = 0 and rev = E. The
// winner's R is then K's only successor of E. Each claim is also read back
// once (a no-op on RethinkDB, a guard on servers that interleave updates).
//
// # Ordering and no missed events
//
// Each process runs one tailer per system database. It reads the log in
// revision order after its watermark W (all revisions <= W are written or
// filled and were handed to watchers), advances W over consecutive rows, and
// when revision W+1 is missing while the counter or a later row shows it was
// allocated, waits GapTimeout for its writer and then inserts a fill row for
// it. That insert and the writer's commit insert race on the same primary key:
// exactly one wins, so a revision is either a write that every tailer reports
// or a fill that every tailer skips, never a write that appears after a
// tailer passed it. Hence, on every replica:
//
//   - events are delivered in strictly increasing revision order (watchers
//     never see resourceVersions go backwards), and
//   - every committed write is delivered (no gaps are skipped unfilled).
//
// The changefeed on the log is only a wake-up; the tailer also polls every
// PollInterval, so a dropped or delayed changefeed costs latency, never an
// event (RethinkDB changefeeds do not guarantee delivery).
//
// # Reads
//
// Get reads objects[K] (and, if claimed, log[pending]) in one query: the
// latest committed state, linearizable with writes.
//
// GetList reads the log as of one revision S: for each key in range the
// newest row with id <= S, unless that is a delete. Rows <= S never change
// once the tailer's watermark reached S, so the result is a consistent
// snapshot although RethinkDB reads are not. Without a resourceVersion, S is
// the counter value after the watermark reached it (every write completed
// before the call is included). With one (exact, or from a continue token),
// S is that revision: older than the compacted revision answers 410
// (ResourceExpired), newer than the counter "too large resource version".
// Continue tokens are the upstream storage helpers' (storage.EncodeContinue).
//
// # Watch
//
// A watch reads the tailer's window of the last WindowSize events in memory
// (shared by all watches of the process) from its resourceVersion on, at its
// own pace, filters by key and SelectionPredicate (an update that makes an
// object stop matching is a DELETED, as with etcd3), and sends bookmarks
// every ProgressInterval when bookmarks or progress notifications were asked
// for. A slow watcher delays nobody; if the window moves past it, or its
// resourceVersion is older than the window or the compacted revision, it
// gets 410 Gone and the client relists. A watch from 0 starts with the
// current state as ADDED events. At start the window is filled from the log
// above the compacted revision, so an apiserver restart does not force every
// client to relist. A log row carries its previous object in full (a watch
// needs it for DELETED events and selectors), but in the window an update
// shares those bytes with the key's event before it, so each version of an
// object is held once.
//
// # Compaction
//
// Every CompactionInterval one replica (chosen by an atomic update of the
// compact document that only succeeds once an interval has passed) removes
// log rows older than the watermark seen at the previous compaction, so at
// least one interval of history stays: rows superseded by a newer row of
// their key, fill rows and final delete rows compacted one round earlier.
// Removing a delete row only after its predecessors are gone keeps a list
// that runs during compaction from seeing a deleted object reappear; lists
// are bounded to a minute, far below the interval. A writer gives up a
// revision it could not commit within 30 s, so a fill row is never removed
// while its writer might still commit.
//
// # Availability
//
// Connection-level failures (refused, reset, timeout) become 503 Service
// Unavailable with "RethinkDB at ADDR is unreachable: …"; ReadinessCheck
// fails while the log cannot be read. Nothing needs restarting when
// RethinkDB is back: the client's pool reconnects, the tailer resumes. If the
// system database itself disappeared, it is created again and revisions
// continue after the last one seen (history before it answers 410).
//
// Not supported: TTLs (objects are kept, with a logged warning; no guildnet.io
// resource uses them), deleting undecodable objects (the
// AllowUnsafeMalformedObjectDeletion feature), and object size estimation.
package rethinkstore
