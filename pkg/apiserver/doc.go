// Package apiserver assembles guildnet-apiserver: the scheme of the
// guildnet.io group, the generic API server configured by k8s.io/apiserver,
// the REST storage of each resource on RethinkDB, and the checks and hooks
// that keep the server honest about what it can serve.
//
// Discovery and OpenAPI are built from the scheme and the registered storage
// alone; they never touch RethinkDB, because kube-apiserver gives an
// aggregated server a few seconds for discovery and a slow one breaks kubectl
// for the whole cluster.
package apiserver
