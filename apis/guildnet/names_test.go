package guildnet

import "testing"

func TestSplitTableName(t *testing.T) {
	for name, want := range map[string][2]string{"orders.items": {"orders", "items"}, "a.b": {"a", "b"}} {
		db, tbl, ok := SplitTableName(name)
		if !ok || db != want[0] || tbl != want[1] {
			t.Errorf("SplitTableName(%q) = %q, %q, %v", name, db, tbl, ok)
		}
	}
	for _, bad := range []string{"", "orders", ".items", "orders.", "a.b.c"} {
		if _, _, ok := SplitTableName(bad); ok {
			t.Errorf("SplitTableName(%q) accepted a bad name", bad)
		}
	}
}

// Namespaces never collide in RethinkDB, even when dashes would make two
// pairs read the same.
func TestRethinkDBDatabaseNameIsInjective(t *testing.T) {
	a := RethinkDBDatabaseName("a-b", "c")
	b := RethinkDBDatabaseName("a", "b-c")
	if a == b {
		t.Fatalf("a-b/c and a/b-c both map to %s", a)
	}
	if got := RethinkDBDatabaseName("team-a", "orders"); got[:len("team_a_orders_")] != "team_a_orders_" {
		t.Errorf("name should stay readable, got %s", got)
	}
	for _, r := range a + b {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_') {
			t.Fatalf("%s has a character RethinkDB refuses: %q", a+b, r)
		}
	}
}
