package server

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

// builtinPage is served when the binary carries no UI.
const builtinPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>GuildNet portal</title></head>
<body style="font:16px/1.5 system-ui,sans-serif;max-width:40em;margin:4em auto;padding:0 1em">
<h1>GuildNet portal</h1>
<p>The portal is running, but this build of guildnet-portal carries no web UI.
The JSON API is at <a href="/api/clusters">/api/clusters</a>, and each joined cluster's
Kubernetes API at /clusters/ID/k8s/.</p>
</body></html>
`

// newUIHandler serves the single-page app from fsys: files as they are,
// index.html for "/" and for any other path that is not a file, so that
// the app's own routes survive a reload. Missing files under /assets/ are
// 404: answering a script request with HTML only hides the mistake.
func newUIHandler(fsys fs.FS) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "the portal's pages are read with GET", http.StatusMethodNotAllowed)
			return
		}
		// The app changes with the binary; revalidating is cheap on loopback.
		w.Header().Set("Cache-Control", "no-cache")
		if fsys == nil {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			_, _ = io.WriteString(w, builtinPage)
			return
		}
		name := strings.TrimPrefix(path.Clean("/"+r.URL.Path), "/")
		if name != "" && serveFile(w, r, fsys, name) {
			return
		}
		if strings.HasPrefix(name, "assets/") {
			http.Error(w, "no such file: /"+name, http.StatusNotFound)
			return
		}
		if !serveFile(w, r, fsys, "index.html") {
			http.Error(w, "this build of guildnet-portal has a broken UI: index.html is missing", http.StatusInternalServerError)
		}
	})
}

// serveFile serves one regular file of fsys; false if there is none.
func serveFile(w http.ResponseWriter, r *http.Request, fsys fs.FS, name string) bool {
	f, err := fsys.Open(name)
	if err != nil {
		return false
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return false
	}
	rs, ok := f.(io.ReadSeeker)
	if !ok {
		data, err := io.ReadAll(f)
		if err != nil {
			return errors.Is(err, nil)
		}
		rs = bytes.NewReader(data)
	}
	modTime := fi.ModTime()
	if modTime.IsZero() {
		modTime = time.Time{} // embed.FS has none; ServeContent then skips Last-Modified
	}
	http.ServeContent(w, r, name, modTime, rs)
	return true
}
