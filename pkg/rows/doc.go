// Package rows is the library behind the tables/rows subresource: it reads
// request bodies into rows, writes rows out as NDJSON or CSV, encodes
// continue tokens, and runs row operations on a RethinkDB table. It knows
// nothing of HTTP; the REST handler calls it and answers its errors with
// StatusError.
//
// # Errors
//
// Every error a user can cause is typed, and StatusError turns it into a
// Kubernetes Status with a message saying what is wrong and what to do:
//
//	*SyntaxError                 400  malformed JSON/NDJSON/CSV, with line and column
//	*ParameterError              400  bad query parameter, key or continue token
//	*NotFoundError               404  no row with that key
//	*TableNotFoundError          404  the RethinkDB table does not exist (yet)
//	*ConflictError               409  keys exist (conflict=error), or a row kept changing
//	*TooLargeError               413  body over the byte limit or the row limit
//	*UnsupportedMediaTypeError   415  Content-Type not read here
//	*InvalidError                422  rows RethinkDB cannot store as sent, each named
//	*BatchError                  (its cause's code) a batch failed part way and was rolled back
//	RethinkDB unreachable        503
//
// A 422 or 409 lists each failed row (the first MaxReportedErrors, and how
// many more) as StatusCauses with fields like "rows[3].id". A batch is
// rejected as a whole: it either is written completely or the error says
// which rows failed and that nothing was written.
//
// # Bodies
//
// Parse reads an insert/import body: a JSON object, a JSON array of
// objects, NDJSON (application/x-ndjson, one object per line, blank lines
// skipped), or CSV (text/csv, a header row of field names). Numbers are
// kept as json.Number while parsing; an integer that RethinkDB's 64-bit
// floats cannot hold exactly (beyond ±2^53, e.g. 9007199254740993) is
// refused with 422 rather than silently rounded: send such IDs as strings.
//
// CSV cells are strings by default (csvTypes=strings): "007" stays "007",
// "true" stays "true". An empty cell means no value: the field is left out
// (CSV cannot tell an empty string from a missing value). csvTypes=infer
// reads what the CSV export writes: JSON numbers become numbers (unless not
// exactly storable: then they stay strings), true/false booleans, null
// null, a cell that is a JSON object or array that value. Fields are flat:
// a header "a.b" is a field named "a.b".
//
// Every row needs its primary key: a non-empty string of at most 127 bytes
// without NUL, or a number. (RethinkDB would generate UUID keys for rows
// without one; the API refuses them instead, so that a failed batch can be
// rolled back and a retried import does not duplicate rows.) A key may
// appear once per batch. "$reql_type$" is reserved by RethinkDB: a row may
// not have it, nested objects may only use it for TIME, BINARY and GEOMETRY
// values (the form reads return them in). Values nest at most MaxDepth
// levels; arrays hold at most MaxArrayLen elements (RethinkDB's limit).
//
// # Keys in URL paths
//
// A path segment is a string, and a table may key rows by numbers. ParseKey
// reads the segment as a string unless the request says keyType=number; a
// 404 for a string key that looks like a number says so. Guessing (try the
// string, then the number) is not done: a table may hold both "1" and 1,
// and a guess could then read, replace or delete the wrong row.
//
// # Exports
//
// NDJSONEncoder writes one object per line. CSVEncoder writes the primary
// key's column first, then the other fields sorted; Table.Columns gets the
// exact union of the table's fields from RethinkDB before streaming, so no
// value is dropped. A row written during the export with a new field makes
// the encoder fail (UnknownFieldError) instead of silently leaving it out.
// Nested values are JSON text, null is "null", a missing field empty.
//
// # Paging
//
// List reads key ranges: between(last position, maxval) ordered by the
// index, limit+1 rows, the extra row telling whether a next page exists.
// The continue token (base64url JSON, versioned, see Continue) carries the
// last key, and for a secondary index also the last index value; rows with
// equal index values are ordered by primary key, as RethinkDB's indexes do.
// Each page costs one range read however deep it is, and rows present
// during the whole listing come back exactly once.
//
// # Atomicity
//
// RethinkDB writes each document atomically; a batch insert is not a
// transaction. Insert makes a batch all or nothing as far as this API can:
//
//  1. It validates every row and (conflict=error) looks up every key
//     before writing anything, so the common failures reject the batch
//     with nothing written and each failed row named.
//  2. It then writes in chunks, asking RethinkDB for the old and new value
//     of every row. If RethinkDB refuses any row (e.g. another request
//     created one of the keys since step 1), it rolls back every row this
//     call wrote: each row is restored to its old value (or deleted if it
//     was new) by a conditional replace that applies only while the row
//     still holds what this call wrote. A row another writer changed in
//     between keeps that writer's value, and the error names it.
//  3. Rollback runs even when the client has gone away.
//
// What cannot be guaranteed: other readers and watchers may see the rows
// of a failed batch for the moment between write and rollback (a watcher
// sees them added, then deleted); and if RethinkDB becomes unreachable in
// the middle of a batch, rows of the unanswered chunk may or may not be
// stored and the rollback may not be possible: the 503 says so and names
// those keys. conflict=replace is idempotent, so repeating such a request
// is safe.
//
// Replace and MergePatch change one row, which RethinkDB does atomically.
// MergePatch merges in Go and writes with a conditional replace that
// succeeds only if the row is unchanged since it was read (compared by its
// serialization, toJSON), retrying on a concurrent change, so concurrent
// patches never lose each other's updates.
//
// # RethinkDB and reqlite
//
// The queries follow RethinkDB's documented behaviour. The reqlite stand-in
// used in tests differs in ways that matter here, and the tests that need
// RethinkDB's behaviour run only against it (GUILDNET_TEST_RETHINKDB):
//   - rows with equal secondary index values come back in insertion order,
//     not primary key order, so paging through ties is exact on RethinkDB
//     only; its between on a secondary index fails if a row lacks the field;
//   - it evaluates a replace function and writes the result in separate
//     steps, so concurrent conditional writes (MergePatch) can interleave;
//     RethinkDB applies them atomically per document;
//   - eq on a stored document is always false, and it does not keep object
//     keys sorted: rows are therefore compared by value here, and
//     conditional writes compare a row's toJSON with the toJSON read
//     before, never with a literal;
//   - it skips replace functions on missing rows instead of calling them
//     with null (handled: "skipped" means not found), and does not count
//     unchanged rows of an insert.
package rows
