// Package store keeps guildnet-portal's state dir: the clusters this device
// has joined, each with its kubeconfig and a few per-cluster settings.
//
// # Layout
//
//	<state dir>/                  0700 (created if missing)
//	  clusters/                   0700
//	    <id>/                     0700, one folder per joined cluster
//	      kubeconfig              0600, self-contained, single context
//	      cluster.json            0600, {"version":1,"name":…,"server":…,"addedAt":…}
//	      settings.json           0600, {"defaultNamespace":…,"imagePullSecret":…,"defaultExposure":…}
//
// The folder name is the cluster's id: short, URL- and DNS-label-safe, never
// containing "--" (later work builds host names from it), derived from the
// name the cluster was joined under and suffixed (-2, -3, …) on collision.
//
// # Guarantees
//
// A crash (or power loss, as far as the file system honours fsync) at any
// point leaves either the old state or the new one, never a mix:
//
//   - Add writes all of a cluster's files into a hidden staging folder,
//     fsyncs them, and only then renames the folder to clusters/<id>. A
//     cluster therefore either exists with its complete kubeconfig or not at
//     all; rename(2) of a folder onto a non-empty one fails, which is also
//     how concurrent Adds (even from two processes) claim distinct ids.
//   - Files inside a cluster (settings.json) are replaced by writing a temp
//     file in the same folder, fsyncing it, renaming it over the old one and
//     fsyncing the folder.
//   - Remove renames the folder to a hidden trash name first, so a crash
//     halfway through deleting never leaves a cluster without credentials.
//
// Hidden leftovers of interrupted operations are ignored by every reader and
// swept by Open once they are stale.
//
// Credentials are secrets: every file is 0600 and every folder 0700.
package store
