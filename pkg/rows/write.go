package rows

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	r "gopkg.in/rethinkdb/rethinkdb-go.v6"

	"github.com/guildnet/guildnet/pkg/rethinkdb"
)

// OnConflict says what an insert does with a row whose key exists.
type OnConflict string

const (
	// OnConflictError refuses the whole batch (409) when any key exists.
	OnConflictError OnConflict = "error"
	// OnConflictReplace replaces the existing row with the new one.
	OnConflictReplace OnConflict = "replace"
	// OnConflictUpdate merges the new row's fields into the existing row
	// (top-level fields; nested objects merge too, as RethinkDB's update).
	OnConflictUpdate OnConflict = "update"
)

// ParseOnConflict reads the conflict query parameter; "" means
// OnConflictError.
func ParseOnConflict(s string) (OnConflict, error) {
	switch OnConflict(s) {
	case "", OnConflictError:
		return OnConflictError, nil
	case OnConflictReplace, OnConflictUpdate:
		return OnConflict(s), nil
	}
	return "", &ParameterError{Param: "conflict", Msg: fmt.Sprintf("%q is not a conflict mode; use %q (the default), %q or %q", s, OnConflictError, OnConflictReplace, OnConflictUpdate)}
}

// InsertResult counts what an insert did.
type InsertResult struct {
	Inserted  int // new rows
	Replaced  int // existing rows replaced or updated
	Unchanged int // existing rows the write left as they were
}

var (
	// writeChunk is how many rows one insert query carries. A batch is
	// written in chunks so no single query or its returned changes grows
	// without bound. A variable so tests can make batches span chunks.
	writeChunk = 1000
	// rollbackTimeout bounds undoing a failed batch. Rollback runs even
	// when the request's context is cancelled (a client that disconnects
	// must not leave half a batch behind), so it needs a bound of its own.
	rollbackTimeout = 30 * time.Second
	// patchAttempts is how often MergePatch retries when another writer
	// changed the row between its read and its write.
	patchAttempts = 5

	// Test hooks, nil in production: called after the conflict check of an
	// insert and before rolling a failed batch back, so tests can act as a
	// concurrent writer at exactly those moments.
	testHookAfterCheck     func()
	testHookBeforeRollback func()
	// called between MergePatch's read and its conditional write
	testHookBeforePatchWrite func()
)

// Markers of this package's conditional writes, told apart in RethinkDB's
// first_error.
const (
	errMissing = "guildnet: the row does not exist"
	errChanged = "guildnet: the row changed"
)

// change is one row a batch changed: its key, its value before (nil if the
// batch created it) and after.
type change struct {
	key      any
	old, new any
}

// Insert writes rows (see Parse; rows are checked again here) with the
// given conflict mode, all or nothing from the user's view:
//
//   - every row must be valid and no key may appear twice (*InvalidError,
//     422), and with OnConflictError no key may exist (*ConflictError, 409,
//     naming each such row) — checked before anything is written;
//   - rows are then written in chunks; if RethinkDB refuses any row (a key
//     another request created since the check, a value it rejects), the
//     rows this call already wrote are rolled back and the error is a
//     *BatchError whose cause is the *ConflictError or *InvalidError.
//
// See doc.go, "Atomicity", for what this guarantees and what it cannot.
func (t Table) Insert(ctx context.Context, s *r.Session, rows []Row, conflict OnConflict) (InsertResult, error) {
	if conflict == "" {
		conflict = OnConflictError
	}
	if _, err := ParseOnConflict(string(conflict)); err != nil {
		return InsertResult{}, err
	}
	pk := t.pk()
	keys, err := checkRows(rows, pk, nil)
	if err != nil {
		return InsertResult{}, err
	}
	if len(rows) == 0 {
		return InsertResult{}, nil
	}
	rowOf := make(map[string]int, len(keys))
	for i, k := range keys {
		rowOf[keyID(k)] = i
	}
	if conflict == OnConflictError {
		if err := t.checkNoneExist(ctx, s, keys, rowOf); err != nil {
			return InsertResult{}, err
		}
	}
	if testHookAfterCheck != nil {
		testHookAfterCheck()
	}

	docs := make([]any, len(rows))
	for i, row := range rows {
		docs[i] = toDatum(row)
	}
	var (
		res     InsertResult
		applied []change
	)
	for start := 0; start < len(docs); start += writeChunk {
		end := min(start+writeChunk, len(docs))
		// "always" returns a change for every row, also the refused ones
		// (with their error), so a failure names its rows.
		resp, err := t.write(ctx, s, "insert rows", t.term().Insert(docs[start:end],
			r.InsertOpts{Conflict: string(conflict), ReturnChanges: "always"}))
		if err != nil {
			// The query failed as a whole. When RethinkDB did not
			// answer, whether this chunk was applied is unknown.
			var uncertain []any
			if rethinkdb.IsUnavailable(err) || ctx.Err() != nil {
				uncertain = keys[start:end]
			}
			return InsertResult{}, t.abort(ctx, s, applied, dataError(err), uncertain)
		}
		var failed []failure
		for _, c := range resp.Changes {
			k := t.keyOf(c.NewValue)
			if k == nil {
				k = t.keyOf(c.OldValue)
			}
			if c.Error != "" {
				failed = append(failed, failure{key: k, msg: c.Error})
				continue
			}
			if k != nil {
				applied = append(applied, change{key: k, old: c.OldValue, new: c.NewValue})
			}
		}
		res.Inserted += resp.Inserted
		res.Replaced += resp.Replaced
		res.Unchanged += resp.Unchanged
		if resp.Errors > 0 {
			if len(failed) == 0 { // a server that reports no per-row errors
				failed = append(failed, failure{msg: resp.FirstError})
			}
			return InsertResult{}, t.abort(ctx, s, applied, failureCause(failed, resp.Errors, rowOf), nil)
		}
	}
	return res, nil
}

// checkNoneExist returns a *ConflictError naming the rows whose keys exist,
// the first ones of the batch first.
func (t Table) checkNoneExist(ctx context.Context, s *r.Session, keys []any, rowOf map[string]int) error {
	var taken []int // row indices
	for start := 0; start < len(keys); start += writeChunk {
		end := min(start+writeChunk, len(keys))
		found, err := t.readAll(ctx, s, "check which keys exist",
			t.term().GetAll(r.Args(keys[start:end])).Field(t.pk()))
		if err != nil {
			return err
		}
		for _, k := range found {
			if nk, msg := keyValue(k); msg == "" {
				taken = append(taken, rowOf[keyID(nk)])
			}
		}
	}
	if len(taken) == 0 {
		return nil
	}
	slices.Sort(taken)
	ce := &ConflictError{Msg: "rows already exist, nothing was written (use conflict=replace or conflict=update to overwrite them)", Total: len(taken)}
	for _, i := range taken[:min(len(taken), MaxReportedErrors)] {
		ce.Rows = append(ce.Rows, KeyConflict{Row: i, Key: keys[i]})
	}
	return ce
}

// dataError turns RethinkDB refusing a query because of the data in it
// (e.g. a malformed time value, which fails the query before any write)
// into an *InvalidError; other errors pass unchanged.
func dataError(err error) error {
	var logic r.RQLQueryLogicError
	if errors.As(err, &logic) {
		return &InvalidError{Total: 1, Errors: []RowError{{Row: -1, Msg: "RethinkDB refused the data: " + rethinkMessage(strings.TrimPrefix(logic.Error(), "rethinkdb: "))}}}
	}
	return err
}

// failure is a row RethinkDB refused.
type failure struct {
	key any // nil when RethinkDB did not say which row
	msg string
}

// failureCause turns RethinkDB's refusals into the error the user sees:
// keys taken meanwhile by another request are a conflict (409), anything
// else makes the rows invalid (422).
func failureCause(failed []failure, total int, rowOf map[string]int) error {
	allDuplicates := true
	for _, f := range failed {
		if !strings.HasPrefix(f.msg, "Duplicate primary key") || f.key == nil {
			allDuplicates = false
		}
	}
	if allDuplicates {
		ce := &ConflictError{Msg: "rows were created by another request meanwhile, nothing was written", Total: total}
		for _, f := range failed {
			if len(ce.Rows) < MaxReportedErrors {
				ce.Rows = append(ce.Rows, KeyConflict{Row: rowOf[keyID(f.key)], Key: f.key})
			}
		}
		return ce
	}
	var errs rowErrors
	for _, f := range failed {
		e := RowError{Row: -1, Msg: "RethinkDB refused the row: " + rethinkMessage(f.msg)}
		if f.key != nil {
			e.Row = rowOf[keyID(f.key)]
		}
		errs.add(e)
	}
	errs.total = max(errs.total, total)
	return errs.err()
}

// rethinkMessage is the first line of a RethinkDB error without the
// document it prints after a colon (which can be large).
func rethinkMessage(msg string) string {
	msg = strings.TrimSuffix(firstLine(msg), " in:")
	if i := strings.Index(msg, ":{"); i >= 0 {
		msg = msg[:i]
	}
	return strings.TrimSuffix(strings.TrimSuffix(msg, ":"), ".")
}

func (t Table) keyOf(doc any) any {
	m, ok := doc.(map[string]any)
	if !ok {
		return nil
	}
	k, msg := keyValue(m[t.pk()])
	if msg != "" {
		return nil
	}
	return k
}

// abort rolls back the changes of a failed batch and returns the
// *BatchError for cause. It runs even if ctx is cancelled, bounded by
// rollbackTimeout.
func (t Table) abort(ctx context.Context, s *r.Session, applied []change, cause error, uncertain []any) error {
	if testHookBeforeRollback != nil {
		testHookBeforeRollback()
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
	defer cancel()
	left := t.rollback(rctx, s, applied)
	return &BatchError{Cause: cause, RolledBack: len(applied) - len(left), Left: left, Uncertain: uncertain}
}

// rollback restores each changed row to its value before the batch (nil:
// deletes it), but only while the row still holds what the batch wrote: a
// row another writer changed in between keeps that writer's value and is
// returned in left. Rows that could not be checked or restored (RethinkDB
// unreachable) are in left too.
//
// Each row is read with its serialization (toJSON); values are compared
// here, and the restore is a conditional replace that applies only if the
// row's serialization is still the one read, so check and restore are one
// atomic step per row. (Comparing a stored row with a literal on the server
// would depend on the server ordering object keys canonically.)
func (t Table) rollback(ctx context.Context, s *r.Session, applied []change) (left []any) {
	for start := 0; start < len(applied); start += writeChunk {
		chunk := applied[start:min(start+writeChunk, len(applied))]
		giveUp := func() []any {
			for _, c := range applied[start:] {
				left = append(left, c.key)
			}
			return left
		}
		states, err := t.readStates(ctx, s, chunk)
		if err != nil {
			return giveUp()
		}
		var restore []any
		var restored []change
		for _, c := range chunk {
			if reflect.DeepEqual(c.old, c.new) {
				continue // the batch left this row unchanged
			}
			st := states[keyID(c.key)]
			if !reflect.DeepEqual(st.doc, c.new) {
				left = append(left, c.key) // changed by another writer
				continue
			}
			restore = append(restore, map[string]any{"k": c.key, "old": c.old, "seen": st.json})
			restored = append(restored, c)
		}
		if len(restore) == 0 {
			continue
		}
		q := r.Expr(restore).ForEach(func(c r.Term) any {
			return t.term().Get(c.Field("k")).Replace(func(cur r.Term) any {
				return r.Branch(cur.ToJSON().Eq(c.Field("seen")), c.Field("old"), cur)
			})
		})
		if _, err := t.write(ctx, s, "roll back rows", q); err != nil {
			return giveUp()
		}
		// Which rows do not hold their old value now?
		after, err := t.readStates(ctx, s, restored)
		if err != nil {
			return giveUp()
		}
		for _, c := range restored {
			if !reflect.DeepEqual(after[keyID(c.key)].doc, c.old) {
				left = append(left, c.key)
			}
		}
	}
	return left
}

// rowState is a row as stored and its serialization by the server.
type rowState struct {
	doc  any // nil: no such row
	json string
}

// readStates reads the rows of changes with one query.
func (t Table) readStates(ctx context.Context, s *r.Session, changes []change) (map[string]rowState, error) {
	keys := make([]any, len(changes))
	for i, c := range changes {
		keys[i] = c.key
	}
	list, err := t.readAll(ctx, s, "read rows", r.Expr(keys).Map(func(k r.Term) any {
		return t.term().Get(k).Do(func(d r.Term) any { return []any{k, d, d.ToJSON()} })
	}))
	if err != nil {
		return nil, err
	}
	states := make(map[string]rowState, len(list))
	for _, e := range list {
		triple, ok := e.([]any)
		if !ok || len(triple) != 3 {
			return nil, fmt.Errorf("read rows: unexpected answer %v", e)
		}
		k, msg := tokenKey(triple[0])
		if msg != "" {
			continue
		}
		js, _ := triple[2].(string)
		states[keyID(k)] = rowState{doc: triple[1], json: js}
	}
	return states, nil
}

// Replace replaces the row with key by row and returns what is stored. The
// row must exist (*NotFoundError otherwise; use Insert to create rows). Its
// primary key may be left out (it is the key) or must equal key; values are
// checked as for Insert (*InvalidError, 422, fields without "rows[i]").
func (t Table) Replace(ctx context.Context, s *r.Session, key any, row Row) (Row, error) {
	k, err := normalizeKey(key)
	if err != nil {
		return nil, err
	}
	pk := t.pk()
	if row == nil {
		return nil, &InvalidError{Total: 1, Errors: []RowError{{Row: -1, Msg: "the row is null; send a JSON object"}}}
	}
	var errs rowErrors
	doc := make(Row, len(row)+1)
	for f, v := range row {
		doc[f] = v
	}
	if v, ok := row[pk]; ok {
		checkKeyField(v, k, pk, &errs)
	}
	doc[pk] = k
	checkRow(doc, pk, -1, 0, &errs)
	if err := errs.err(); err != nil {
		return nil, err
	}
	d := toDatum(doc)
	resp, err := t.write(ctx, s, "replace row", t.term().Get(k).Replace(func(old r.Term) any {
		return r.Branch(old.Eq(nil), r.Error(errMissing), d)
	}, r.ReplaceOpts{ReturnChanges: true}))
	if err != nil {
		return nil, dataError(err)
	}
	if err := t.singleWriteError(resp, k); err != nil {
		return nil, err
	}
	return storedRow(resp, d), nil
}

// checkKeyField checks the primary key field v of a PUT or PATCH body
// against the key of the path.
func checkKeyField(v, key any, pk string, errs *rowErrors) {
	field := childPath("", pk)
	if v == nil {
		errs.add(RowError{Row: -1, Field: field, Msg: "the primary key cannot be removed"})
		return
	}
	bk, msg := keyValue(v)
	switch {
	case msg != "":
		errs.add(RowError{Row: -1, Field: field, Msg: msg})
	case !sameKey(bk, key):
		errs.add(RowError{Row: -1, Field: field, Msg: fmt.Sprintf("the primary key %s in the body does not match the key %s in the path; a row's key cannot change (insert a row with the new key and delete this one)", keyText(bk), keyText(key))})
	}
}

// singleWriteError reads the outcome of a conditional write of one row.
func (t Table) singleWriteError(resp r.WriteResponse, key any) error {
	switch {
	case resp.Errors > 0 && strings.Contains(resp.FirstError, errMissing):
		return &NotFoundError{Key: key}
	case resp.Errors > 0:
		return &InvalidError{Total: 1, Errors: []RowError{{Row: -1, Msg: "RethinkDB refused the row: " + rethinkMessage(resp.FirstError)}}}
	case resp.Skipped > 0 && resp.Replaced+resp.Unchanged == 0:
		// RethinkDB calls the function with null for a missing row (and
		// r.error answers); a server that skips missing rows says so here.
		return &NotFoundError{Key: key}
	}
	return nil
}

func storedRow(resp r.WriteResponse, written any) Row {
	for _, c := range resp.Changes {
		if m, ok := c.NewValue.(map[string]any); ok {
			return m
		}
	}
	m, _ := written.(map[string]any)
	return m
}

// MergePatch applies a JSON merge patch (RFC 7386) to the row with key and
// returns the result. A null removes a field; the primary key cannot be
// changed or removed (*InvalidError).
//
// The merge runs here, on the row as read, and is written with a
// conditional replace that succeeds only if the row is still exactly what
// was read. If another writer changed it in between, the patch is applied
// again to the new value (up to patchAttempts times, then a
// *ConflictError): concurrent patches never lose each other's updates.
func (t Table) MergePatch(ctx context.Context, s *r.Session, key any, patch Row) (Row, error) {
	k, err := normalizeKey(key)
	if err != nil {
		return nil, err
	}
	pk := t.pk()
	if patch == nil {
		return nil, &InvalidError{Total: 1, Errors: []RowError{{Row: -1, Msg: "a merge patch of a row must be a JSON object"}}}
	}
	var errs rowErrors
	if v, ok := patch[pk]; ok {
		checkKeyField(v, k, pk, &errs)
	}
	if _, ok := patch[reqlType]; ok {
		errs.add(RowError{Row: -1, Field: childPath("", reqlType), Msg: "a row must be a plain object; the field \"$reql_type$\" is reserved by RethinkDB"})
	}
	checkFields(patch, "", 1, -1, 0, &errs, pk)
	if err := errs.err(); err != nil {
		return nil, err
	}
	p := toDatum(patch)

	for range patchAttempts {
		// The row and its serialization, read together: the write below
		// compares the serialization to detect a concurrent change.
		pair, err := t.readAll(ctx, s, "read row", t.term().Get(k).Do(func(d r.Term) any {
			return []any{d, d.ToJSON()}
		}))
		if err != nil {
			return nil, err
		}
		if len(pair) != 2 {
			return nil, &NotFoundError{Key: k}
		}
		cur, ok := pair[0].(map[string]any)
		seen, _ := pair[1].(string)
		if !ok {
			return nil, &NotFoundError{Key: k}
		}
		next, _ := MergePatch(cur, p).(map[string]any)
		if reflect.DeepEqual(next, cur) {
			return cur, nil
		}
		if testHookBeforePatchWrite != nil {
			testHookBeforePatchWrite()
		}
		resp, err := t.write(ctx, s, "patch row", t.term().Get(k).Replace(func(old r.Term) any {
			return r.Branch(old.Eq(nil), r.Error(errMissing),
				r.Branch(old.ToJSON().Eq(seen), next, r.Error(errChanged)))
		}, r.ReplaceOpts{ReturnChanges: true}))
		if err != nil {
			return nil, dataError(err)
		}
		if resp.Errors > 0 && strings.Contains(resp.FirstError, errChanged) {
			continue
		}
		if err := t.singleWriteError(resp, k); err != nil {
			return nil, err
		}
		return storedRow(resp, next), nil
	}
	return nil, &ConflictError{Msg: fmt.Sprintf("row %s was changed by other writers %d times while this patch was applied; send the patch again", keyText(k), patchAttempts)}
}

// Delete deletes the row with key and returns it, or a *NotFoundError.
func (t Table) Delete(ctx context.Context, s *r.Session, key any) (Row, error) {
	k, err := normalizeKey(key)
	if err != nil {
		return nil, err
	}
	resp, err := t.write(ctx, s, "delete row", t.term().Get(k).Delete(r.DeleteOpts{ReturnChanges: true}))
	if err != nil {
		return nil, err
	}
	if resp.Deleted == 0 {
		return nil, &NotFoundError{Key: k}
	}
	for _, c := range resp.Changes {
		if m, ok := c.OldValue.(map[string]any); ok {
			return m, nil
		}
	}
	return nil, nil
}
