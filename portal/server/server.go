package server

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"strings"
	"time"

	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/httpstream"

	"github.com/guildnet/guildnet/portal/store"
)

const (
	// SessionCookie holds the portal's main session, on the portal's own
	// host only.
	SessionCookie = "guildnet_session"
	// WorkspaceCookie holds a workspace session, on that workspace's host
	// only.
	WorkspaceCookie = "guildnet_workspace"
	// OpenPath is where a workspace host redeems a one-time ticket.
	OpenPath = "/_guildnet/open"

	// DefaultTicketTTL is how long a workspace's one-time URL stays valid:
	// long enough for the iframe to load it, short enough that a URL that
	// leaks (history, a screenshot) is already dead.
	DefaultTicketTTL = time.Minute
	// sessionMaxAge keeps the main session across browser restarts. The
	// token file is what really controls it: a new token ends every
	// session.
	sessionMaxAge = 30 * 24 * time.Hour
	// maxJoinFile bounds an uploaded join file, like the CLI does.
	maxJoinFile = 1 << 20
)

// Config is what a Server needs.
type Config struct {
	// Store holds the joined clusters.
	Store *store.Store
	// Token is the device's secret (see LoadOrCreateToken). A browser that
	// presents it once gets a session.
	Token string
	// Port is the TCP port browsers reach the portal on; every allowed
	// Host carries it.
	Port int
	// ExtraHosts are more names (or IPs) the portal answers to besides
	// 127.0.0.1, localhost and ::1, e.g. when it listens on a LAN address.
	ExtraHosts []string
	// AllowHost, when set, admits more Hosts of the portal itself, each
	// with its own port: those of another listener whose names are known
	// only once it runs and may change, such as the tailnet listener
	// (portal/tailnet). host is lower-case, an IPv6 address without
	// brackets; port is 80 when the Host has none. It is asked only about
	// Hosts that are neither the portal's own names on Port nor workspace
	// hosts, and must be cheap: it runs on every such request.
	AllowHost func(host string, port int) bool
	// UI holds the single-page app: index.html at its root, assets below.
	// Nil serves a small built-in page instead.
	UI fs.FS
	// JoinTimeout bounds the cluster check of a join; 0 means join's
	// default (10 s).
	JoinTimeout time.Duration
	// TicketTTL is how long a workspace's one-time URL is valid; 0 means
	// DefaultTicketTTL.
	TicketTTL time.Duration
	// Log receives errors worth an operator's attention.
	Log logr.Logger
}

// Server is the portal's HTTP handler. Create it with New; Close it to end
// its background work and every connection to the clusters.
type Server struct {
	cfg      Config
	hosts    *hosts
	tickets  *tickets
	clusters *clusters
	ui       http.Handler
	// sessionValue is the main session cookie's value: derived from the
	// token, so it survives restarts and dies with the token.
	sessionValue string
	// workspaceFrameAncestors is the CSP frame-ancestors list of workspace
	// hosts: the workspace itself and the portal's UI origins.
	workspaceFrameAncestors string
}

// New checks cfg and returns a Server.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil {
		return nil, errors.New("portal server: no store")
	}
	if len(cfg.Token) < 32 {
		return nil, errors.New("portal server: the token is missing or too short")
	}
	if cfg.Port <= 0 || cfg.Port > 65535 {
		return nil, fmt.Errorf("portal server: port %d is not a TCP port", cfg.Port)
	}
	if cfg.TicketTTL <= 0 {
		cfg.TicketTTL = DefaultTicketTTL
	}
	s := &Server{cfg: cfg, hosts: newHosts(cfg.Port, cfg.ExtraHosts, cfg.AllowHost)}
	s.sessionValue = s.mac("main session")
	s.tickets = newTickets(cfg.TicketTTL)
	s.workspaceFrameAncestors = strings.Join(append([]string{"'self'"}, s.hosts.mainOrigins()...), " ")
	s.clusters = newClusters(cfg.Store, cfg.Log, s.workspaceFrameAncestors)
	s.ui = newUIHandler(cfg.UI)
	return s, nil
}

// Close stops background work and cuts every open connection to the
// clusters (watches, WebSockets).
func (s *Server) Close() { s.clusters.close() }

// mac derives a cookie value from the token. Cookies are MACs rather than
// server-side sessions so that a restart of the portal keeps the browser
// and its workspace frames logged in; knowing one cookie reveals neither
// the token nor any other cookie.
func (s *Server) mac(purpose string) string {
	m := hmac.New(sha256.New, []byte(s.cfg.Token))
	m.Write([]byte("guildnet-portal v1\x00" + purpose))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (s *Server) workspaceCookieValue(w workspaceRef) string {
	return s.mac("workspace\x00" + w.label())
}

// hasCookie reports whether r carries cookie name with value want. Every
// cookie of that name is compared (a page can plant a second one with a
// wider path), in constant time.
func hasCookie(r *http.Request, name, want string) bool {
	for _, c := range r.CookiesNamed(name) {
		if subtle.ConstantTimeCompare([]byte(c.Value), []byte(want)) == 1 {
			return true
		}
	}
	return false
}

// ServeHTTP dispatches on the Host header first: the portal, one of its
// workspace hosts, or nothing it answers to.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	kind, hp, ws := s.hosts.classify(r.Host)
	switch kind {
	case hostMain:
		s.serveMain(w, r, hp)
	case hostWorkspace:
		s.serveWorkspace(w, r, hp, ws)
	default:
		// 421: this server is not the one for that name. A DNS-rebinding
		// page lands here, since it sends its own name as Host.
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-store")
		http.Error(w, fmt.Sprintf("guildnet-portal answers only to http://127.0.0.1:%d (and localhost, [::1], and its workspace hosts *.localhost:%d), not to Host %q; open the URL guildnet-portal serve printed",
			s.cfg.Port, s.cfg.Port, r.Host), http.StatusMisdirectedRequest)
	}
}

// isAPIPath says whether path belongs to the JSON API or forwarding,
// which answer in JSON, rather than to the UI.
func isAPIPath(path string) bool {
	return path == "/api" || strings.HasPrefix(path, "/api/") || path == "/clusters" || strings.HasPrefix(path, "/clusters/")
}

// uiCSP is the policy of the single-page app. frame-src admits the
// workspace hosts; connect-src admits the portal's own origin, including
// WebSockets to it (named explicitly for browsers whose 'self' does not
// cover ws:).
func (s *Server) uiCSP(hp hostPort) string {
	connect := "'self'"
	if !strings.Contains(hp.host, ":") {
		connect += " ws://" + hp.String()
	}
	return "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; " +
		"connect-src " + connect + "; " +
		fmt.Sprintf("frame-src http://*.%s:%d; ", workspaceDomain, s.cfg.Port) +
		"frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'"
}

// apiCSP is the policy of every JSON and forwarded answer. Nothing under
// /clusters/ is meant to be rendered, but a cluster can serve HTML there
// (services/proxy, a workspace proxy opened on the wrong host): sandbox
// gives such a page an opaque origin and no script, so it can never act
// with the portal's session.
const apiCSP = "default-src 'none'; frame-ancestors 'none'; sandbox"

func (s *Server) serveMain(w http.ResponseWriter, r *http.Request, hp hostPort) {
	api := isAPIPath(r.URL.Path)
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	// No other origin (a workspace host included) may load the portal's
	// answers as a script, image or style.
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	if api {
		h.Set("Content-Security-Policy", apiCSP)
		h.Set("Cache-Control", "no-store")
	} else {
		h.Set("Content-Security-Policy", s.uiCSP(hp))
	}

	// Cross-site request forgery, from other sites and from workspace
	// hosts alike. A workspace's JavaScript runs on *.localhost; whether a
	// browser counts that as the same site as the portal's host is the
	// browser's call (Chromium 156: cross-site, even next to localhost),
	// and a SameSite cookie would not stop a same-site page (another port
	// of 127.0.0.1 is one), so the Origin and Sec-Fetch-Site checks decide.
	// Only page loads of the UI may come from elsewhere (they carry no
	// Strict session cookie then).
	if err := checkSource(r, hp, !api); err != nil {
		s.refuse(w, api, http.StatusForbidden, "Request refused", err.Error())
		return
	}

	if r.URL.Path == "/" && r.URL.Query().Has("token") {
		s.exchangeToken(w, r)
		return
	}
	if !hasCookie(r, SessionCookie, s.sessionValue) {
		s.refuse(w, api, http.StatusUnauthorized, "Not signed in",
			"This browser has no portal session. Open the URL that guildnet-portal serve printed when it started (http://127.0.0.1:PORT/?token=…); it stays the same across restarts.")
		return
	}
	switch {
	case strings.HasPrefix(r.URL.Path, "/clusters/"):
		s.serveForward(w, r)
	case api:
		s.serveAPI(w, r)
	default:
		s.ui.ServeHTTP(w, r)
	}
}

// refuse answers an error in the form the caller reads: a Status for the
// API, a page for a browser.
func (s *Server) refuse(w http.ResponseWriter, api bool, code int, title, msg string) {
	if api {
		reason := metav1.StatusReasonForbidden
		if code == http.StatusUnauthorized {
			reason = metav1.StatusReasonUnauthorized
		}
		writeStatus(w, code, reason, msg)
		return
	}
	writePage(w, code, "'none'", page{Title: title, Message: msg})
}

// exchangeToken turns the printed URL into a session cookie.
func (s *Server) exchangeToken(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		writePage(w, http.StatusMethodNotAllowed, "'none'", page{Title: "Method not allowed", Message: "Open the portal's URL in the browser."})
		return
	}
	if subtle.ConstantTimeCompare([]byte(r.URL.Query().Get("token")), []byte(s.cfg.Token)) != 1 {
		writePage(w, http.StatusUnauthorized, "'none'", page{Title: "Wrong token",
			Message: "The token in this link is not this portal's. Open the URL that guildnet-portal serve printed when it started; if its token file was deleted, the token changed."})
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name:     SessionCookie,
		Value:    s.sessionValue,
		Path:     "/",
		MaxAge:   int(sessionMaxAge / time.Second),
		HttpOnly: true,
		// Strict: no other site's page, link or form ever sends it.
		SameSite: http.SameSiteStrictMode,
	})
	// A redirect drops the token from the address bar and history. After a
	// cross-site navigation (the link clicked in a chat app) the browser
	// would not send a Strict cookie along the redirect, so the page moves
	// on by itself instead, which counts as same-site.
	switch r.Header.Get("Sec-Fetch-Site") {
	case "cross-site", "same-site":
		writePage(w, http.StatusOK, "'none'", page{Title: "Opening the portal", Message: "Signed in.", Refresh: "/"})
	default:
		http.Redirect(w, r, "/", http.StatusSeeOther)
	}
}

// checkSource is the CSRF and cross-origin check of both hosts. own is the
// host the request came to. An Origin, when present, must be own's origin;
// a request that changes something or upgrades to a WebSocket must carry
// one (browsers always send it there). Sec-Fetch-Site, sent by current
// browsers on every request, must not say another site made the request,
// except for page loads when navigation is true.
func checkSource(r *http.Request, own hostPort, navigation bool) error {
	upgrade := httpstream.IsUpgradeRequest(r)
	safe := (r.Method == http.MethodGet || r.Method == http.MethodHead) && !upgrade
	if o := r.Header.Get("Origin"); o != "" {
		if hp, ok := parseOrigin(o); !ok || hp != own {
			return fmt.Errorf("requests from origin %s are refused: only pages of %s may use it", o, own.origin())
		}
	} else if !safe {
		what := r.Method + " request"
		if upgrade {
			what = "WebSocket upgrade"
		}
		return fmt.Errorf("a %s without an Origin header is refused (protection against cross-site request forgery); browsers send it by themselves, other clients must send Origin: %s", what, own.origin())
	}
	switch site := r.Header.Get("Sec-Fetch-Site"); site {
	case "cross-site", "same-site":
		if navigation && safe && r.Header.Get("Sec-Fetch-Mode") == "navigate" {
			return nil
		}
		return fmt.Errorf("a request made by a page of another site (Sec-Fetch-Site: %s) is refused: only pages of %s may use it", site, own.origin())
	}
	return nil
}
