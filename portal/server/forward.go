package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/client-go/rest"

	"github.com/guildnet/guildnet/portal/join"
	"github.com/guildnet/guildnet/portal/store"
)

// forwardMode says which host a forwarded request came through; it decides
// what is stripped from the request and the answer.
type forwardMode int

const (
	// modeMain: /clusters/{id}/k8s/ on the portal's host, used by the UI.
	modeMain forwardMode = iota
	// modeWorkspace: a workspace host, serving a web app.
	modeWorkspace
)

type modeKey struct{}

func modeOf(ctx context.Context) forwardMode {
	m, _ := ctx.Value(modeKey{}).(forwardMode)
	return m
}

const (
	// sweepInterval is how often cached clusters are checked against the
	// state dir, so that a cluster removed by another process (the CLI)
	// loses its open streams too.
	sweepInterval = 5 * time.Second
	// dialTimeout and keepAlive are client-go's defaults; keep-alive is
	// what notices a dead connection under a quiet watch.
	dialTimeout = 30 * time.Second
	keepAlive   = 30 * time.Second
	// bearerProtocolPrefix marks a WebSocket subprotocol that carries a
	// bearer token to kube-apiserver. The portal's own credentials are the
	// only ones it forwards.
	bearerProtocolPrefix = "base64url.bearer.authorization.k8s.io."
)

// errClusterRemoved ends connections of a cluster that was removed.
var errClusterRemoved = errors.New("the cluster was removed from this portal")

// serveForward handles /clusters/{id}/k8s/<path>.
func (s *Server) serveForward(w http.ResponseWriter, r *http.Request) {
	// Work on the escaped path so that an escaped "/" inside a segment (a
	// row key) stays escaped on the way to the cluster.
	tail, _ := strings.CutPrefix(r.URL.EscapedPath(), "/clusters/")
	id, tail, _ := strings.Cut(tail, "/")
	if !store.ValidID(id) {
		writeStatus(w, http.StatusNotFound, metav1.StatusReasonNotFound, fmt.Sprintf("no joined cluster has id %q", id))
		return
	}
	sub, ok := strings.CutPrefix(tail, "k8s")
	if !ok || (sub != "" && !strings.HasPrefix(sub, "/")) {
		writeStatus(w, http.StatusNotFound, metav1.StatusReasonNotFound,
			fmt.Sprintf("%s is not a portal path; the cluster's API is under /clusters/%s/k8s/", r.URL.Path, id))
		return
	}
	if sub == "" {
		sub = "/"
	}
	p, err := url.PathUnescape(sub)
	if err != nil {
		writeStatus(w, http.StatusBadRequest, metav1.StatusReasonBadRequest, fmt.Sprintf("the path %s is not valid: %v", r.URL.EscapedPath(), err))
		return
	}
	s.forward(w, r, id, p, sub, modeMain)
}

// forward sends r to cluster id's kube-apiserver at path (rawPath its
// escaped form, or "") with the stored credentials.
func (s *Server) forward(w http.ResponseWriter, r *http.Request, id, path, rawPath string, mode forwardMode) {
	c, err := s.clusters.get(id)
	if err != nil {
		code, reason := http.StatusInternalServerError, metav1.StatusReasonInternalError
		if errors.Is(err, store.ErrNotFound) {
			code, reason = http.StatusNotFound, metav1.StatusReasonNotFound
			err = fmt.Errorf("no joined cluster has id %q (it may have been removed); the list is at /api/clusters", id)
		}
		if mode == modeWorkspace {
			s.workspacePage(w, code, "Cluster not available", err.Error())
			return
		}
		writeStatus(w, code, reason, err.Error())
		return
	}
	out := r.Clone(context.WithValue(r.Context(), modeKey{}, mode))
	out.URL.Path, out.URL.RawPath = path, rawPath
	out.RequestURI = ""
	stripCredentials(out.Header, mode)
	c.handler.ServeHTTP(w, out)
}

// stripCredentials removes from a request everything that would let the
// browser (or a workspace's JavaScript) speak to the cluster as someone
// other than the stored credentials say, and the portal's own cookies.
func stripCredentials(h http.Header, mode forwardMode) {
	// client-go keeps an Authorization header it finds rather than adding
	// the stored token, so a browser's header must never get through.
	h.Del("Authorization")
	h.Del("Proxy-Authorization")
	for k := range h {
		if strings.HasPrefix(k, "Impersonate-") || strings.HasPrefix(k, "X-Remote-") {
			delete(h, k)
		}
	}
	if protos := h.Values("Sec-Websocket-Protocol"); len(protos) > 0 {
		var keep []string
		for _, line := range protos {
			for _, p := range strings.Split(line, ",") {
				if p = strings.TrimSpace(p); p != "" && !strings.HasPrefix(p, bearerProtocolPrefix) {
					keep = append(keep, p)
				}
			}
		}
		h.Del("Sec-Websocket-Protocol")
		if len(keep) > 0 {
			h.Set("Sec-Websocket-Protocol", strings.Join(keep, ", "))
		}
	}
	if mode == modeMain {
		// kube-apiserver has no use for cookies; the portal's host holds
		// only the portal's.
		h.Del("Cookie")
		return
	}
	// A workspace's app has cookies of its own (code-server's login);
	// only the portal's are removed.
	var keep []string
	for _, c := range (&http.Request{Header: h}).Cookies() {
		if c.Name != SessionCookie && c.Name != WorkspaceCookie {
			keep = append(keep, c.Name+"="+c.Value)
		}
	}
	h.Del("Cookie")
	if len(keep) > 0 {
		h.Set("Cookie", strings.Join(keep, "; "))
	}
}

// mainOwnedHeaders are set by the portal on its own host; the cluster's
// copies are dropped so each appears once.
var mainOwnedHeaders = []string{
	"Set-Cookie", "Cache-Control", "Content-Security-Policy", "Content-Security-Policy-Report-Only",
	"X-Frame-Options", "Referrer-Policy", "X-Content-Type-Options", "Cross-Origin-Resource-Policy",
	"Access-Control-Allow-Origin", "Access-Control-Allow-Credentials", "Access-Control-Allow-Headers",
	"Access-Control-Allow-Methods", "Access-Control-Expose-Headers",
}

// modifyAnswer adjusts the cluster's answer for the host it goes to.
func modifyAnswer(resp *http.Response) error {
	if modeOf(resp.Request.Context()) == modeMain {
		// No cookie of a cluster (or of a service proxied through it) may
		// land on the portal's host, and no CORS grant either.
		for _, k := range mainOwnedHeaders {
			resp.Header.Del(k)
		}
		return nil
	}
	rewriteWorkspaceCookies(resp.Header)
	return nil
}

// rewriteWorkspaceCookies makes a workspace app's cookies work inside the
// portal's iframe, where the browser treats the workspace as a third party
// (see redeemTicket): partitioned, SameSite=None, Secure, host-only. The
// app may not set the portal's own cookies.
func rewriteWorkspaceCookies(h http.Header) {
	lines := h.Values("Set-Cookie")
	if len(lines) == 0 {
		return
	}
	h.Del("Set-Cookie")
	for _, line := range lines {
		c, err := http.ParseSetCookie(line)
		if err != nil || c.Name == SessionCookie || c.Name == WorkspaceCookie {
			continue
		}
		c.Domain = ""
		c.Secure = true
		c.SameSite = http.SameSiteNoneMode
		c.Partitioned = true
		if v := c.String(); v != "" {
			h.Add("Set-Cookie", v)
		}
	}
}

// clusters caches one forwarding handler (and its connections) per joined
// cluster, rebuilt when the cluster is joined again and closed when it is
// removed.
type clusters struct {
	st  *store.Store
	log logr.Logger
	// frameAncestors is for error pages on workspace hosts.
	frameAncestors string

	mu      sync.Mutex
	entries map[string]*clusterEntry
	stop    chan struct{}
	stopped bool
}

type clusterEntry struct {
	// addedAt and server identify the stored cluster the entry was built
	// from; a cluster removed and joined again under the same id differs.
	addedAt time.Time
	server  string
	handler *httputil.ReverseProxy
	conns   *connTracker
	rt      http.RoundTripper
}

func newClusters(st *store.Store, log logr.Logger, frameAncestors string) *clusters {
	c := &clusters{st: st, log: log, frameAncestors: frameAncestors, entries: map[string]*clusterEntry{}, stop: make(chan struct{})}
	go c.sweepLoop()
	return c
}

// get returns the handler of cluster id, building it if needed. The state
// dir is read on every call: it is the truth, shared with the CLI.
func (c *clusters) get(id string) (*clusterEntry, error) {
	cl, err := c.st.Get(id)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			c.invalidate(id)
		}
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return nil, errors.New("the portal is shutting down")
	}
	if e := c.entries[id]; e != nil {
		if e.addedAt.Equal(cl.AddedAt) && e.server == cl.Server {
			return e, nil
		}
		delete(c.entries, id)
		e.close()
	}
	e, err := c.build(id, cl)
	if err != nil {
		return nil, err
	}
	c.entries[id] = e
	return e, nil
}

// invalidate drops cluster id's handler and cuts its open connections.
func (c *clusters) invalidate(id string) {
	c.mu.Lock()
	e := c.entries[id]
	delete(c.entries, id)
	c.mu.Unlock()
	if e != nil {
		e.close()
	}
}

func (c *clusters) close() {
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		return
	}
	c.stopped = true
	close(c.stop)
	entries := c.entries
	c.entries = map[string]*clusterEntry{}
	c.mu.Unlock()
	for _, e := range entries {
		e.close()
	}
}

func (c *clusters) sweepLoop() {
	t := time.NewTicker(sweepInterval)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
		c.mu.Lock()
		ids := make(map[string]*clusterEntry, len(c.entries))
		for id, e := range c.entries {
			ids[id] = e
		}
		c.mu.Unlock()
		for id, e := range ids {
			cl, err := c.st.Get(id)
			if errors.Is(err, store.ErrNotFound) || (err == nil && (!cl.AddedAt.Equal(e.addedAt) || cl.Server != e.server)) {
				c.invalidate(id)
			}
		}
	}
}

// build makes the forwarding handler of a cluster: a reverse proxy over
// client-go's transport, so that client certificates, bearer tokens, the CA
// and allowed credential plugins are all honoured as kubectl would. The
// same transport carries WebSocket upgrades: net/http sends a request with
// "Upgrade: websocket" over HTTP/1.1 even where the server speaks HTTP/2,
// and the reverse proxy then joins the two connections.
func (c *clusters) build(id string, cl store.Cluster) (*clusterEntry, error) {
	cfg, err := join.RESTConfigFor(c.st, id)
	if err != nil {
		return nil, err
	}
	cfg = rest.CopyConfig(cfg)
	conns := &connTracker{conns: map[*trackedConn]struct{}{}}
	// Every connection to the cluster goes through conns, so that removing
	// the cluster can cut them all, streams included.
	cfg.Dial = conns.DialContext
	// An explicit proxy function (client-go's default one) makes the
	// transport uncacheable in client-go's global cache: this entry owns
	// it, and a rebuilt entry does not leave the old one cached forever.
	if cfg.Proxy == nil {
		cfg.Proxy = utilnet.NewProxierWithNoProxyCIDR(http.ProxyFromEnvironment)
	}
	rt, err := rest.TransportFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: building its transport: %v", id, err)
	}
	target, err := url.Parse(cfg.Host)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: its server %q is not a URL: %v", id, cfg.Host, err)
	}
	resp := &responder{id: id, server: cl.Server, log: c.log, frameAncestors: c.frameAncestors}
	h := &httputil.ReverseProxy{
		// Rewrite (rather than Director) also drops any X-Forwarded-*
		// header the browser sent.
		Rewrite: func(pr *httputil.ProxyRequest) {
			// Keeps a path prefix of the server URL and sets Host to the
			// server's.
			pr.SetURL(target)
		},
		Transport: rt,
		// Flush every write at once: watches, logs and changefeeds are
		// streams.
		FlushInterval:  -1,
		ModifyResponse: modifyAnswer,
		ErrorHandler:   resp.Error,
		ErrorLog:       log.New(io.Discard, "", 0),
	}
	return &clusterEntry{addedAt: cl.AddedAt, server: cl.Server, handler: h, conns: conns, rt: rt}, nil
}

func (e *clusterEntry) close() {
	e.conns.closeAll()
	utilnet.CloseIdleConnectionsFor(e.rt)
}

// responder answers when the cluster cannot be reached.
type responder struct {
	id, server     string
	log            logr.Logger
	frameAncestors string
}

func (r *responder) Error(w http.ResponseWriter, req *http.Request, err error) {
	if req.Context().Err() != nil {
		return // the browser went away; nobody to tell
	}
	r.log.V(1).Info("Forwarding failed", "cluster", r.id, "path", req.URL.Path, "err", err.Error())
	msg := fmt.Sprintf("cluster %s (%s) could not be reached: %v", r.id, r.server, err)
	if errors.Is(err, errClusterRemoved) {
		msg = fmt.Sprintf("cluster %s was removed from this portal", r.id)
	}
	if modeOf(req.Context()) == modeWorkspace {
		w.Header().Del("Content-Security-Policy")
		writePage(w, http.StatusBadGateway, r.frameAncestors, page{Title: "Cluster not reachable", Message: msg})
		return
	}
	writeStatus(w, http.StatusBadGateway, metav1.StatusReasonServiceUnavailable, msg)
}

// connTracker dials and remembers every open connection to one cluster.
type connTracker struct {
	mu     sync.Mutex
	conns  map[*trackedConn]struct{}
	closed bool
}

func (t *connTracker) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	t.mu.Lock()
	closed := t.closed
	t.mu.Unlock()
	if closed {
		return nil, errClusterRemoved
	}
	d := net.Dialer{Timeout: dialTimeout, KeepAlive: keepAlive}
	conn, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: conn, t: t}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		conn.Close()
		return nil, errClusterRemoved
	}
	t.conns[tc] = struct{}{}
	return tc, nil
}

func (t *connTracker) closeAll() {
	t.mu.Lock()
	t.closed = true
	conns := t.conns
	t.conns = map[*trackedConn]struct{}{}
	t.mu.Unlock()
	for c := range conns {
		c.Conn.Close()
	}
}

type trackedConn struct {
	net.Conn
	t    *connTracker
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.t.mu.Lock()
		delete(c.t.conns, c)
		c.t.mu.Unlock()
	})
	return c.Conn.Close()
}
