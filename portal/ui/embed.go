// Package ui is guildnet-portal's browser UI: a single-page app (TypeScript
// and Preact under src/, bundled by esbuild) that drives the portal's
// /api/clusters endpoints and each cluster's Kubernetes API through
// /clusters/{id}/k8s/ (portal/CONTRACT.md).
//
// The built app in dist/ is checked in and embedded here, so `go build`
// needs no Node.js. After changing src/, run build.sh (npm ci + build);
// verify.sh rebuilds into a temporary directory and fails when dist/ is
// stale.
//
// FS holds the files at the URL paths the portal serves them under: serve
// it at the root, e.g. http.FileServerFS(ui.FS()):
//
//	index.html            GET /
//	assets/app.js         GET /assets/app.js
//	assets/app.css        GET /assets/app.css
//	assets/favicon.svg    GET /assets/favicon.svg
//
// The app routes in the URL fragment (#/c/CLUSTER/NS/workspaces), so the
// server needs no fallback route for client-side paths.
package ui

import (
	"embed"
	"io/fs"
)

//go:embed all:dist
var dist embed.FS

// FS returns the built UI, rooted at dist/.
func FS() fs.FS {
	sub, err := fs.Sub(dist, "dist")
	if err != nil {
		panic(err) // "dist" is a valid path: cannot happen
	}
	return sub
}
