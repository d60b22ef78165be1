// Package portal is the root of guildnet-portal, the per-device program that
// joins GuildNet clusters and serves the browser UI that drives them through
// each cluster's Kubernetes API.
//
// The code lives in subpackages, one purpose each:
//
//   - store: the state dir — one kubeconfig and a small settings file per
//     joined cluster, written so that a crash never leaves half a cluster.
//   - join: reading a guildnet.config or kubeconfig, refusing credential
//     plugins unless allowed, checking the cluster before anything is kept,
//     exporting a cluster for another device, and minting ServiceAccount-based
//     join files for cluster admins.
//   - server: `guildnet-portal serve` — the session token, Host/Origin
//     checks, the JSON API, forwarding to each cluster's kube-apiserver and
//     the per-workspace origins.
//   - ui: the single-page app (built with npm, embedded).
//   - cli: the guildnet-portal command tree (cmd/guildnet-portal is its main).
package portal
