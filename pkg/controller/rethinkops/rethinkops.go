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

// EnsureDatabase creates the database unless it exists.
func EnsureDatabase(ctx context.Context, s *r.Session, db string) error {
	var names []string
	if err := r.DBList().ReadAll(&names, s, runOpts(ctx)); err != nil {
		return err
	}
	if slices.Contains(names, db) {
		return nil
	}
	_, err := r.DBCreate(db).RunWrite(s, runOpts(ctx))
	if err != nil && strings.Contains(err.Error(), "already exists") {
		return nil // another replica was faster
	}
	return err
}

// DatabaseExists reports whether db exists.
func DatabaseExists(ctx context.Context, s *r.Session, db string) (bool, error) {
	var names []string
	if err := r.DBList().ReadAll(&names, s, runOpts(ctx)); err != nil {
		return false, err
	}
	return slices.Contains(names, db), nil
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
// primary key, and creates missing secondary indexes. Indexes not in the
// list are left alone: they may be someone's, and dropping them is not ours
// to decide.
func EnsureTable(ctx context.Context, s *r.Session, db, table, primaryKey, durability string, indexes []Index) error {
	tables, err := ListTables(ctx, s, db)
	if err != nil {
		return err
	}
	if !slices.Contains(tables, table) {
		_, err := r.DB(db).TableCreate(table, r.TableCreateOpts{PrimaryKey: primaryKey, Durability: durability}).RunWrite(s, runOpts(ctx))
		if err != nil && !strings.Contains(err.Error(), "already exists") {
			return err
		}
	}
	var info struct {
		PrimaryKey string `rethinkdb:"primary_key"`
	}
	if err := r.DB(db).Table(table).Info().ReadOne(&info, s, runOpts(ctx)); err != nil {
		return err
	}
	if info.PrimaryKey != primaryKey {
		return &PrimaryKeyMismatchError{Table: db + "." + table, Want: primaryKey, Have: info.PrimaryKey}
	}
	var existing []string
	if err := r.DB(db).Table(table).IndexList().ReadAll(&existing, s, runOpts(ctx)); err != nil {
		return err
	}
	var created []any
	for _, idx := range indexes {
		if slices.Contains(existing, idx.Name) {
			continue
		}
		fields := idx.Fields
		if len(fields) == 0 {
			fields = []string{idx.Name}
		}
		var term r.Term
		opts := r.IndexCreateOpts{Multi: idx.Multi}
		if len(fields) == 1 {
			term = r.DB(db).Table(table).IndexCreateFunc(idx.Name, func(row r.Term) any { return row.Field(fields[0]) }, opts)
		} else {
			term = r.DB(db).Table(table).IndexCreateFunc(idx.Name, func(row r.Term) any {
				parts := make([]any, len(fields))
				for i, f := range fields {
					parts[i] = row.Field(f)
				}
				return parts
			}, opts)
		}
		if _, err := term.RunWrite(s, runOpts(ctx)); err != nil && !strings.Contains(err.Error(), "already exists") {
			return fmt.Errorf("creating index %s on %s.%s: %w", idx.Name, db, table, err)
		}
		created = append(created, idx.Name)
	}
	if len(created) > 0 {
		if _, err := r.DB(db).Table(table).IndexWait(created...).Run(s, runOpts(ctx)); err != nil {
			return err
		}
	}
	return nil
}

// CountRows returns the number of rows in a table.
func CountRows(ctx context.Context, s *r.Session, db, table string) (int64, error) {
	var n int64
	err := r.DB(db).Table(table).Count().ReadOne(&n, s, runOpts(ctx))
	return n, err
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
