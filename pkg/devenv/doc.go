// Package devenv launches GuildNet's local control plane on loopback: etcd,
// kube-apiserver with the aggregation layer configured (request-header CA,
// front-proxy client certificate, RBAC), kube-controller-manager (namespace
// and garbage-collector controllers among others), a RethinkDB-protocol
// server (reqlite) and guildnet-apiserver registered through a real
// APIService with a caBundle. `make dev` and the integration tests use the
// same launcher.
//
// Every port is picked free at start, every file lives under the
// environment's own folder, and Stop ends every process it started, so
// environments can run side by side and leave nothing behind.
package devenv
