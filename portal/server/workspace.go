package server

import (
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"strings"
	"sync"
	"time"
)

// serveWorkspace answers on a workspace host. That origin exists so that
// JavaScript inside the workspace (an extension, a dev server's page) runs
// apart from the portal: its only credential is a cookie that opens this
// workspace's workspaces/proxy path and nothing else.
func (s *Server) serveWorkspace(w http.ResponseWriter, r *http.Request, hp hostPort, ref workspaceRef) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	// Only the portal's UI (and the workspace itself, for its own frames)
	// may frame it. A separate header from any policy the workspace's app
	// sends: browsers enforce both.
	h.Add("Content-Security-Policy", "frame-ancestors "+s.workspaceFrameAncestors)

	// Page loads (the portal's iframe, a new tab) come from another site by
	// nature; anything else must come from this origin, or another
	// workspace's JavaScript could drive this one with the cookie the
	// browser holds for it.
	if err := checkSource(r, hp, true); err != nil {
		s.workspacePage(w, http.StatusForbidden, "Request refused", err.Error())
		return
	}
	if r.URL.Path == OpenPath {
		s.redeemTicket(w, r, ref)
		return
	}
	if !hasCookie(r, WorkspaceCookie, s.workspaceCookieValue(ref)) {
		s.workspacePage(w, http.StatusUnauthorized, "Workspace not open",
			"This workspace's origin has no session in this browser (or frame). Open the workspace from the portal.")
		return
	}
	prefix := ref.proxyPrefix()
	if !underPrefix(r.URL.Path, prefix) {
		s.workspacePage(w, http.StatusForbidden, "Not this workspace",
			"This origin serves only workspace "+ref.Namespace+"/"+ref.Name+" under "+prefix+"/.")
		return
	}
	// Same path on both sides: the API server already scopes the
	// workspace's redirects and cookies to its proxy path.
	s.forward(w, r, ref.Cluster, r.URL.Path, r.URL.RawPath, modeWorkspace)
}

func (s *Server) workspacePage(w http.ResponseWriter, code int, title, msg string) {
	// writePage sets its own complete policy.
	w.Header().Del("Content-Security-Policy")
	writePage(w, code, s.workspaceFrameAncestors, page{Title: title, Message: msg})
}

// underPrefix reports whether path is prefix or below prefix/, with no "."
// or ".." segment anywhere that could climb out of it further along.
func underPrefix(path, prefix string) bool {
	if path != prefix && !strings.HasPrefix(path, prefix+"/") {
		return false
	}
	for _, seg := range strings.Split(path, "/") {
		if seg == "." || seg == ".." {
			return false
		}
	}
	return true
}

// redeemTicket trades a one-time ticket for the workspace cookie and
// sends the browser on to the workspace.
func (s *Server) redeemTicket(w http.ResponseWriter, r *http.Request, ref workspaceRef) {
	if r.Method != http.MethodGet {
		s.workspacePage(w, http.StatusMethodNotAllowed, "Method not allowed", "Open the workspace from the portal.")
		return
	}
	// Taken whatever happens next: a ticket works once.
	got, ok := s.tickets.take(r.URL.Query().Get("ticket"))
	if !ok || got != ref {
		s.workspacePage(w, http.StatusForbidden, "Link expired",
			"This workspace link was already used, has expired, or belongs to another workspace: links work once, for a short time. Open the workspace again from the portal.")
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name:     WorkspaceCookie,
		Value:    s.workspaceCookieValue(ref),
		Path:     "/",
		HttpOnly: true,
		// The portal's UI frames this host, and to the browser that frame
		// is a third party (the UI's host is another site). Chromium sends
		// neither SameSite=Lax cookies nor, with third-party cookies
		// blocked, plain SameSite=None ones there; a partitioned cookie
		// (CHIPS) works, kept apart per top-level site: the cookie set in
		// the portal's frame is never sent when another site frames or
		// links this host. Secure is required for both and is allowed on
		// http://*.localhost, a secure context.
		Secure:      true,
		SameSite:    http.SameSiteNoneMode,
		Partitioned: true,
	})
	http.Redirect(w, r, ref.proxyPrefix()+"/", http.StatusSeeOther)
}

// tickets are the one-time workspace URLs handed out and not yet used.
// They live in memory only: a restart of the portal voids them, which
// costs a click at most.
type tickets struct {
	ttl time.Duration
	now func() time.Time

	mu sync.Mutex
	m  map[string]ticket
}

type ticket struct {
	ref     workspaceRef
	expires time.Time
}

func newTickets(ttl time.Duration) *tickets {
	return &tickets{ttl: ttl, now: time.Now, m: map[string]ticket{}}
}

// issue returns a new ticket for ref.
func (t *tickets) issue(ref workspaceRef) (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	id := base64.RawURLEncoding.EncodeToString(b[:])
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	// Sweeping here keeps the map as small as the tickets of the last TTL.
	for k, v := range t.m {
		if now.After(v.expires) {
			delete(t.m, k)
		}
	}
	t.m[id] = ticket{ref: ref, expires: now.Add(t.ttl)}
	return id, nil
}

// take removes the ticket and returns its workspace if it had not expired.
func (t *tickets) take(id string) (workspaceRef, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	tk, ok := t.m[id]
	if !ok {
		return workspaceRef{}, false
	}
	delete(t.m, id)
	if t.now().After(tk.expires) {
		return workspaceRef{}, false
	}
	return tk.ref, true
}
