package guildnet

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// SplitTableName splits a Table's name "<database>.<table>" into its parts.
// ok is false unless there is exactly one dot with text on both sides.
func SplitTableName(name string) (database, table string, ok bool) {
	database, table, found := strings.Cut(name, ".")
	if !found || database == "" || table == "" || strings.Contains(table, ".") {
		return "", "", false
	}
	return database, table, true
}

// RethinkDBDatabaseName is the RethinkDB database behind Database namespace/name.
// RethinkDB names allow only [A-Za-z0-9_], so dashes become underscores; a
// short hash of the original pair keeps "a-b"/"c" and "a"/"b-c" apart.
func RethinkDBDatabaseName(namespace, name string) string {
	sum := sha256.Sum256([]byte(namespace + "/" + name))
	return rethinkIdent(namespace) + "_" + rethinkIdent(name) + "_" + hex.EncodeToString(sum[:4])
}

// RethinkDBTableName is the RethinkDB table behind the table part of a
// Table's name. Kubernetes names have no underscores, so the mapping is
// one-to-one within a database.
func RethinkDBTableName(table string) string {
	return rethinkIdent(table)
}

func rethinkIdent(s string) string {
	return strings.ReplaceAll(s, "-", "_")
}
