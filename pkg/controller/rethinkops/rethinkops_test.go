package rethinkops

import (
	"errors"
	"slices"
	"strings"
	"testing"

	r "gopkg.in/rethinkdb/rethinkdb-go.v6"

	"github.com/guildnet/guildnet/pkg/devenv/reqlite/reqlitetest"
)

func session(t *testing.T) *r.Session {
	t.Helper()
	s, err := r.Connect(r.ConnectOpts{Address: reqlitetest.StartForTest(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestEnsureDatabaseCreatesOnceAndCountsTables(t *testing.T) {
	ctx, s := t.Context(), session(t)
	for i := range 2 {
		n, err := EnsureDatabase(ctx, s, "d")
		if err != nil || n != 0 {
			t.Fatalf("EnsureDatabase call %d = %d, %v; want 0 tables", i, n, err)
		}
	}
	if exists, err := DatabaseExists(ctx, s, "d"); err != nil || !exists {
		t.Fatalf("DatabaseExists(d) = %v, %v after EnsureDatabase", exists, err)
	}
	if exists, err := DatabaseExists(ctx, s, "other"); err != nil || exists {
		t.Fatalf("DatabaseExists(other) = %v, %v; want false", exists, err)
	}
	for _, tbl := range []string{"a", "b"} {
		if err := r.DB("d").TableCreate(tbl).Exec(s); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := EnsureDatabase(ctx, s, "d"); err != nil || n != 2 {
		t.Fatalf("EnsureDatabase with two tables = %d, %v; want 2", n, err)
	}
}

func TestEnsureTableCreatesWhatIsMissingAndCountsRows(t *testing.T) {
	ctx, s := t.Context(), session(t)
	if _, err := EnsureDatabase(ctx, s, "d"); err != nil {
		t.Fatal(err)
	}
	indexes := []Index{{Name: "email"}, {Name: "name_age", Fields: []string{"name", "age"}}}
	if n, err := EnsureTable(ctx, s, "d", "people", "uid", "hard", indexes); err != nil || n != 0 {
		t.Fatalf("EnsureTable (create) = %d, %v; want 0 rows", n, err)
	}
	rows := []map[string]any{{"uid": "1", "email": "a@x", "name": "a", "age": 1}, {"uid": "2", "email": "b@x", "name": "b", "age": 2}}
	if err := r.DB("d").Table("people").Insert(rows).Exec(s); err != nil {
		t.Fatal(err)
	}
	// Someone else's index is left alone.
	if err := r.DB("d").Table("people").IndexCreate("theirs").Exec(s); err != nil {
		t.Fatal(err)
	}
	if n, err := EnsureTable(ctx, s, "d", "people", "uid", "hard", indexes); err != nil || n != 2 {
		t.Fatalf("EnsureTable (existing) = %d, %v; want 2 rows", n, err)
	}
	var got []string
	if err := r.DB("d").Table("people").IndexList().ReadAll(&got, s); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"email", "name_age", "theirs"} {
		if !slices.Contains(got, want) {
			t.Errorf("indexes = %v, want %s among them", got, want)
		}
	}
	// A compound index finds rows by both fields.
	var byNameAge []map[string]any
	if err := r.DB("d").Table("people").GetAllByIndex("name_age", []any{"b", 2}).ReadAll(&byNameAge, s); err != nil || len(byNameAge) != 1 {
		t.Fatalf("rows by name_age [b 2] = %v, %v; want one", byNameAge, err)
	}

	// An index added to the spec later is created on the next call.
	more := append(slices.Clone(indexes), Index{Name: "tags", Multi: true})
	if _, err := EnsureTable(ctx, s, "d", "people", "uid", "hard", more); err != nil {
		t.Fatal(err)
	}
	if err := r.DB("d").Table("people").IndexList().ReadAll(&got, s); err != nil || !slices.Contains(got, "tags") {
		t.Fatalf("indexes = %v, %v; want tags created", got, err)
	}
}

func TestEnsureTableKeepsATableWithAnotherPrimaryKey(t *testing.T) {
	ctx, s := t.Context(), session(t)
	if _, err := EnsureDatabase(ctx, s, "d"); err != nil {
		t.Fatal(err)
	}
	if err := r.DB("d").TableCreate("t", r.TableCreateOpts{PrimaryKey: "key"}).Exec(s); err != nil {
		t.Fatal(err)
	}
	if err := r.DB("d").Table("t").Insert(map[string]any{"key": "k"}).Exec(s); err != nil {
		t.Fatal(err)
	}
	_, err := EnsureTable(ctx, s, "d", "t", "id", "hard", nil)
	var mismatch *PrimaryKeyMismatchError
	if !errors.As(err, &mismatch) || mismatch.Have != "key" || mismatch.Want != "id" {
		t.Fatalf("EnsureTable = %v, want a primary-key mismatch (have key, want id)", err)
	}
	if !strings.Contains(err.Error(), `set spec.primaryKey to "key"`) {
		t.Errorf("error %q does not say how to fix it", err)
	}
	var n int
	if err := r.DB("d").Table("t").Count().ReadOne(&n, s); err != nil || n != 1 {
		t.Fatalf("rows after the mismatch = %d, %v; want the table and its row kept", n, err)
	}
}

func TestEnsureTableInAMissingDatabaseFails(t *testing.T) {
	ctx, s := t.Context(), session(t)
	_, err := EnsureTable(ctx, s, "nope", "t", "id", "hard", nil)
	if err == nil || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("EnsureTable in a missing database = %v, want an error naming it", err)
	}
}

func TestDropsOfWhatIsMissingSucceed(t *testing.T) {
	ctx, s := t.Context(), session(t)
	if err := DropTable(ctx, s, "nope", "t"); err != nil {
		t.Errorf("DropTable in a missing database = %v", err)
	}
	if err := DropDatabase(ctx, s, "nope"); err != nil {
		t.Errorf("DropDatabase of a missing database = %v", err)
	}
	if _, err := EnsureTable(ctx, s, "d", "t", "id", "hard", nil); err == nil {
		t.Fatal("EnsureTable before EnsureDatabase succeeded")
	}
	if _, err := EnsureDatabase(ctx, s, "d"); err != nil {
		t.Fatal(err)
	}
	if _, err := EnsureTable(ctx, s, "d", "t", "id", "hard", nil); err != nil {
		t.Fatal(err)
	}
	if err := DropTable(ctx, s, "d", "t"); err != nil {
		t.Fatal(err)
	}
	if tables, err := ListTables(ctx, s, "d"); err != nil || len(tables) != 0 {
		t.Fatalf("tables after DropTable = %v, %v", tables, err)
	}
	if err := DropDatabase(ctx, s, "d"); err != nil {
		t.Fatal(err)
	}
	if exists, err := DatabaseExists(ctx, s, "d"); err != nil || exists {
		t.Fatalf("DatabaseExists after DropDatabase = %v, %v", exists, err)
	}
}
