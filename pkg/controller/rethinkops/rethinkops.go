// Package rethinkops holds the idempotent RethinkDB operations the
// reconcilers need: ensure a database, ensure a table with its primary key
// and indexes, count rows, drop. Every "ensure" first looks, then creates
// only what is missing, and never drops or changes existing data.
package rethinkops

import (
	"context"
	"fmt"
	"slices"
	"strings"

	r "gopkg.in/rethinkdb/rethinkdb-go.v6"
)

// Index is a secondary index to ensure.
type Index struct {
	Name   string
	Fields []string
	Multi  bool
}

// EnsureDatabase creates the database unless it exists and returns how
// many tables it has. A resync of an existing database is one query.
func EnsureDatabase(ctx context.Context, s *r.Session, db string) (tables int, err error) {
	if err := r.DB(db).TableList().Count().ReadOne(&tables, s, runOpts(ctx)); err == nil {
		return tables, nil
	}
	// Most often the database does not exist yet; if RethinkDB is
	// unreachable instead, creating fails with that error.
	_, err = r.DBCreate(db).RunWrite(s, runOpts(ctx))
	if err != nil && !strings.Contains(err.Error(), "already exists") { // another replica may have been faster
		return 0, err
	}
	err = r.DB(db).TableList().Count().ReadOne(&tables, s, runOpts(ctx))
	return tables, err
}

// DatabaseExists reports whether db exists. RethinkDB answers it: the
// reconcilers ask for every database each resync, and reading the whole
// list each time would cost O(databases) per database.
func DatabaseExists(ctx context.Context, s *r.Session, db string) (bool, error) {
	var exists bool
	err := r.DBList().Contains(db).ReadOne(&exists, s, runOpts(ctx))
	return exists, err
}

// ListTables returns the tables of db.
func ListTables(ctx context.Context, s *r.Session, db string) ([]string, error) {
	var names []string
	err := r.DB(db).TableList().ReadAll(&names, s, runOpts(ctx))
	return names, err
}

// DropDatabase drops db and all its tables; a missing database is not an error.
func DropDatabase(ctx context.Context, s *r.Session, db string) error {
	exists, err := DatabaseExists(ctx, s, db)
	if err != nil || !exists {
		return err
	}
	_, err = r.DBDrop(db).RunWrite(s, runOpts(ctx))
	return err
}

// PrimaryKeyMismatchError says an existing table has another primary key
// than the spec asks for; the table is left as it is.
type PrimaryKeyMismatchError struct {
	Table, Want, Have string
}

func (e *PrimaryKeyMismatchError) Error() string {
	return fmt.Sprintf("RethinkDB table %s already exists with primary key %q, not %q; the existing table and its data are kept: set spec.primaryKey to %q or use another table name", e.Table, e.Have, e.Want, e.Have)
}

// EnsureTable creates the table unless it exists, checks an existing table's
// primary key, creates missing secondary indexes and returns the table's
// number of rows. Indexes not in the list are left alone: they may be
// someone's, and dropping them is not ours to decide. When all is in place,
// as on every resync, it is one query.
func EnsureTable(ctx context.Context, s *r.Session, db, table, primaryKey, durability string, indexes []Index) (rows int64, err error) {
	st, err := readTable(ctx, s, db, table)
	if err != nil {
		// Most often the table does not exist yet; if the database is
		// missing or RethinkDB is unreachable, creating fails with that.
		_, err := r.DB(db).TableCreate(table, r.TableCreateOpts{PrimaryKey: primaryKey, Durability: durability}).RunWrite(s, runOpts(ctx))
		if err != nil && !strings.Contains(err.Error(), "already exists") {
			return 0, err
		}
		if st, err = readTable(ctx, s, db, table); err != nil {
			return 0, err
		}
	}
	if st.Info.PrimaryKey != primaryKey {
		return 0, &PrimaryKeyMismatchError{Table: db + "." + table, Want: primaryKey, Have: st.Info.PrimaryKey}
	}
	var created []any
	for _, idx := range indexes {
		if slices.Contains(st.Info.Indexes, idx.Name) {
			continue
		}
		if err := createIndex(ctx, s, db, table, idx); err != nil {
			return 0, err
		}
		created = append(created, idx.Name)
	}
	if len(created) > 0 {
		if _, err := r.DB(db).Table(table).IndexWait(created...).Run(s, runOpts(ctx)); err != nil {
			return 0, err
		}
	}
	return st.Rows, nil
}

// tableState is what EnsureTable reads of an existing table, in one query.
type tableState struct {
	Info struct {
		PrimaryKey string   `rethinkdb:"primary_key"`
		Indexes    []string `rethinkdb:"indexes"`
	} `rethinkdb:"info"`
	Rows int64 `rethinkdb:"rows"`
}

func readTable(ctx context.Context, s *r.Session, db, table string) (tableState, error) {
	var st tableState
	t := r.DB(db).Table(table)
	err := r.Expr(map[string]any{"info": t.Info(), "rows": t.Count()}).ReadOne(&st, s, runOpts(ctx))
	return st, err
}

func createIndex(ctx context.Context, s *r.Session, db, table string, idx Index) error {
	fields := idx.Fields
	if len(fields) == 0 {
		fields = []string{idx.Name}
	}
	term := r.DB(db).Table(table).IndexCreateFunc(idx.Name, func(row r.Term) any {
		if len(fields) == 1 {
			return row.Field(fields[0])
		}
		parts := make([]any, len(fields))
		for i, f := range fields {
			parts[i] = row.Field(f)
		}
		return parts
	}, r.IndexCreateOpts{Multi: idx.Multi})
	if _, err := term.RunWrite(s, runOpts(ctx)); err != nil && !strings.Contains(err.Error(), "already exists") {
		return fmt.Errorf("creating index %s on %s.%s: %w", idx.Name, db, table, err)
	}
	return nil
}

// DropTable drops a table; a missing table or database is not an error.
func DropTable(ctx context.Context, s *r.Session, db, table string) error {
	exists, err := DatabaseExists(ctx, s, db)
	if err != nil || !exists {
		return err
	}
	tables, err := ListTables(ctx, s, db)
	if err != nil || !slices.Contains(tables, table) {
		return err
	}
	_, err = r.DB(db).TableDrop(table).RunWrite(s, runOpts(ctx))
	return err
}

func runOpts(ctx context.Context) r.RunOpts {
	return r.RunOpts{Context: ctx}
}
