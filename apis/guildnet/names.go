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

// Names and labels of the objects a Workspace owns. The reconciler creates
// them and workspaces/proxy and workspaces/log find them by these names, so
// both sides share one definition.
const (
	// WorkspaceLabel is set to the workspace's name on its Deployment,
	// Service, pods, PersistentVolumeClaim and Secret.
	WorkspaceLabel = "guildnet.io/workspace"
	// WorkspaceContainerName is the name of the workspace's container.
	WorkspaceContainerName = "workspace"
	// WorkspaceDefaultPort is the port used when spec.ports is empty, and
	// the value of the PORT variable every workspace container gets.
	WorkspaceDefaultPort = 8080
	// WorkspacePasswordKey is the key of the password in a password Secret.
	WorkspacePasswordKey = "password"
	// WorkspaceHashedPasswordKey is the optional key of the password's
	// argon2 hash in a password Secret (code-server's HASHED_PASSWORD).
	WorkspaceHashedPasswordKey = "hashed-password"
)

// WorkspaceServiceName is the Service (and Deployment) of workspace name.
// Workspace names are DNS-1035 labels, which Services require.
func WorkspaceServiceName(name string) string { return name }

// WorkspacePasswordSecretName is the generated password Secret of workspace name.
func WorkspacePasswordSecretName(name string) string { return name + "-password" }

// WorkspaceHomeClaimName is the PersistentVolumeClaim of workspace name's home volume.
func WorkspaceHomeClaimName(name string) string { return name + "-home" }

// RethinkDBFinalizer holds a Database or Table until the reconciler has
// carried out its deletion policy in RethinkDB. A guildnet-apiserver that
// runs the reconcilers sets it when the object is created.
const RethinkDBFinalizer = "guildnet.io/rethinkdb"
