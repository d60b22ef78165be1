package rethinkstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	r "gopkg.in/rethinkdb/rethinkdb-go.v6"
)

// Tables of the system database. See doc.go for what each holds.
const (
	metaTable    = "meta"
	logTable     = "log"
	objectsTable = "objects"

	// keyIndex is the secondary index on "key" of the log and objects tables.
	keyIndex = "key"

	revisionDoc = "revision" // meta document: {id, value: last allocated revision}
	compactDoc  = "compact"  // meta document: see compactState
)

// logRow is one entry of the revision log. Its primary key is the revision.
// A fill row ({id, key: "", fill: true}) marks a revision that carries no write.
type logRow struct {
	Rev     int64  `rethinkdb:"id"`
	Key     string `rethinkdb:"key,omitempty"`
	Value   string `rethinkdb:"value,omitempty"`    // base64 of the stored bytes; empty for deletes
	Prev    string `rethinkdb:"prev,omitempty"`     // base64 of the value this write replaced
	PrevRev int64  `rethinkdb:"prev_rev,omitempty"` // revision of Prev; 0 for creates
	Deleted bool   `rethinkdb:"deleted,omitempty"`
	Fill    bool   `rethinkdb:"fill,omitempty"`
}

// objectRow is the current state of one key, and the lock that serializes its
// writers (see doc.go). Rev 0 with Pending set is the claim of a create.
type objectRow struct {
	ID      string `rethinkdb:"id"`
	Key     string `rethinkdb:"key"`
	Rev     int64  `rethinkdb:"rev"`
	Value   string `rethinkdb:"value"`
	Pending int64  `rethinkdb:"pending"`
}

// compactState is the meta document that coordinates compaction between replicas.
type compactState struct {
	// Rev: history at or below it is compacted; reads and watches older than it get 410.
	Rev int64 `rethinkdb:"rev"`
	// Prev is the Rev before the last compaction; fill rows at or below it can go.
	Prev int64 `rethinkdb:"prev"`
	// Next is the watermark seen at the last compaction: the next compaction
	// compacts up to it, so at least one interval of history is always kept.
	Next int64 `rethinkdb:"next"`
}

// objectID is the primary key of a key's row in the objects table. RethinkDB
// primary keys are at most 127 bytes; longer keys are hashed (storage keys start
// with "/", so a "#" id never collides with a literal key).
func objectID(key string) string {
	if len(key) <= 127 && !strings.ContainsRune(key, 0) {
		return key
	}
	sum := sha256.Sum256([]byte(key))
	return "#" + hex.EncodeToString(sum[:])
}

// ensureSchema creates the database, tables, indexes and counter documents that
// are missing. It is safe to run from several replicas at once: "already
// exists" answers are ignored. base is the revision a new counter starts at:
// 0 for a new database; the last known revision when the database was lost,
// so resourceVersions never go backwards.
func ensureSchema(ctx context.Context, s *r.Session, db string, base int64) error {
	run := func(t r.Term) error {
		cur, err := t.Run(s, r.RunOpts{Context: ctx})
		if err == nil {
			err = cur.Close()
		}
		if err != nil && !strings.Contains(err.Error(), "already exists") {
			return err
		}
		return nil
	}
	var dbs []string
	if err := r.DBList().ReadAll(&dbs, s, r.RunOpts{Context: ctx}); err != nil {
		return fmt.Errorf("list databases: %w", err)
	}
	if !slices.Contains(dbs, db) {
		if err := run(r.DBCreate(db)); err != nil {
			return fmt.Errorf("create database %s: %w", db, err)
		}
	}
	var tables []string
	if err := r.DB(db).TableList().ReadAll(&tables, s, r.RunOpts{Context: ctx}); err != nil {
		return fmt.Errorf("list tables of %s: %w", db, err)
	}
	for _, t := range []string{metaTable, logTable, objectsTable} {
		if slices.Contains(tables, t) {
			continue
		}
		if err := run(r.DB(db).TableCreate(t, r.TableCreateOpts{PrimaryKey: "id"})); err != nil {
			return fmt.Errorf("create table %s.%s: %w", db, t, err)
		}
	}
	for _, t := range []string{logTable, objectsTable} {
		var idx []string
		if err := r.DB(db).Table(t).IndexList().ReadAll(&idx, s, r.RunOpts{Context: ctx}); err != nil {
			return fmt.Errorf("list indexes of %s.%s: %w", db, t, err)
		}
		if !slices.Contains(idx, keyIndex) {
			if err := run(r.DB(db).Table(t).IndexCreate(keyIndex)); err != nil {
				return fmt.Errorf("create index %s.%s.%s: %w", db, t, keyIndex, err)
			}
		}
		if err := run(r.DB(db).Table(t).IndexWait(keyIndex)); err != nil {
			return fmt.Errorf("wait for index %s.%s.%s: %w", db, t, keyIndex, err)
		}
	}
	// conflict "error" keeps existing documents; a duplicate key is a write
	// error in the response, not a query error. In a new database revision
	// 1 is taken by a fill row, so the store's revision is never 0 (as
	// etcd's); a recreated one starts after the last revision this process
	// saw, with everything before it compacted (reads from then get 410).
	counter, seedFill := base, false
	if base == 0 {
		counter, seedFill = 1, true
	}
	seed := []any{
		map[string]any{"id": revisionDoc, "value": counter},
		map[string]any{"id": compactDoc, "rev": base, "prev": base, "next": base},
	}
	cur, err := r.DB(db).Table(metaTable).Insert(seed, r.InsertOpts{Conflict: "error"}).Run(s, r.RunOpts{Context: ctx})
	if err != nil {
		return fmt.Errorf("seed %s.%s: %w", db, metaTable, err)
	}
	if err := cur.Close(); err != nil {
		return err
	}
	if !seedFill {
		return nil
	}
	cur, err = r.DB(db).Table(logTable).Insert(fillRow(1), r.InsertOpts{Conflict: "error"}).Run(s, r.RunOpts{Context: ctx})
	if err != nil {
		return fmt.Errorf("seed %s.%s: %w", db, logTable, err)
	}
	return cur.Close()
}

// isSchemaMissing reports an error saying the database or a table is gone.
func isSchemaMissing(err error) bool {
	return err != nil && strings.Contains(err.Error(), "does not exist")
}

// fillRow is the log row of a revision that carries no write. It has the
// empty key, which no storage key equals, so every log row is in the key
// index (rows without the indexed field are legal in RethinkDB, but keeping
// the index total keeps range scans simple for every ReQL server).
func fillRow(rev int64) map[string]any {
	return map[string]any{"id": rev, "key": "", "fill": true}
}
