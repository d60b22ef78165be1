// Package rethinkdb manages guildnet-apiserver's connections to RethinkDB.
//
// Options holds the --rethinkdb-* flags. Options.Connect finds the server (an
// explicit --rethinkdb-address, or a Kubernetes Service: its LoadBalancer
// ingress, then a NodePort on a node address, then its ClusterIP), makes one
// bounded first connection attempt, and returns a Client.
//
// What a Client guarantees:
//
//   - Bounded waits. The first connection attempt takes at most DialTimeout.
//     Every new connection is dialled with DialTimeout, and a query run on
//     Session() without its own context is cut after Timeout. Callers should
//     still pass a context (r.RunOpts{Context: ctx}) bounded by the request.
//   - Fail fast while RethinkDB is down. A query on a dead connection fails
//     with a connection error instead of hanging; the pool re-dials on the next
//     query, and a refused dial returns at once. IsUnavailable tells these
//     connection-level failures apart from query errors, so callers can answer
//     503 instead of 500.
//   - Recovery without restarts. The pool of Session() (at most MaxOpen
//     connections) replaces broken connections by itself, so once RethinkDB is
//     back (same address) the same Client works again. Nothing needs to be
//     re-created; do not cache connections, call Session() when you need one.
//   - Changefeeds on their own connection. NewFeedSession returns a session
//     with one connection, no read timeout (a feed is idle for long stretches)
//     and TCP keep-alive on, so a feed on a dead peer ends with an error
//     instead of blocking forever. The caller closes it.
//
// What it does not do: it does not re-resolve the Service after Connect (a
// Service's ClusterIP is stable; restart the apiserver if a LoadBalancer
// address changes), and it does not create databases or tables; the storage
// layer does that.
package rethinkdb
