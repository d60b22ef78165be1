package workspace

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/registry/rest"

	"github.com/guildnet/guildnet/apis/guildnet"
	"github.com/guildnet/guildnet/apis/guildnet/v1alpha1"
)

// ProxyConfig configures workspaces/proxy.
type ProxyConfig struct {
	// Resolver finds the workspace's endpoints.
	Resolver *EndpointResolver
	// Activity records use of the workspace (may be nil).
	Activity *Activity
	// Authorizer checks the extra create verb a WebSocket needs.
	Authorizer authorizer.Authorizer
	// Origins are the browser origins allowed to use the proxy.
	Origins *OriginPolicy
	// Transport carries HTTP requests to workspaces (nil: a default
	// transport that never uses environment proxies).
	Transport http.RoundTripper
	// PingInterval is how often an open WebSocket is pinged on both sides
	// (0: DefaultPingInterval).
	PingInterval time.Duration
	// Assets keeps workspaces' long-lived public responses (nil: none).
	Assets *AssetCache
}

// DefaultPingInterval keeps idle WebSockets alive through load balancers
// and NATs that drop quiet connections after a minute or more.
const DefaultPingInterval = 30 * time.Second

// ProxyREST is the workspaces/proxy subresource: HTTP and WebSocket
// traffic to the workspace's own endpoints, for every method.
type ProxyREST struct {
	workspaces rest.Getter
	cfg        ProxyConfig
}

// NewProxyREST returns workspaces/proxy on top of the workspaces storage.
func NewProxyREST(workspaces rest.Getter, cfg ProxyConfig) *ProxyREST {
	if cfg.Transport == nil {
		cfg.Transport = newBackendTransport()
	}
	if cfg.PingInterval <= 0 {
		cfg.PingInterval = DefaultPingInterval
	}
	return &ProxyREST{workspaces: workspaces, cfg: cfg}
}

func newBackendTransport() *http.Transport {
	return &http.Transport{
		// Never through an environment proxy: the target is a pod address.
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   32,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
		// Pass compressed bodies through as they are.
		DisableCompression: true,
	}
}

var (
	_ rest.Connecter       = &ProxyREST{}
	_ rest.StorageMetadata = &ProxyREST{}
)

var proxyMethods = []string{"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"}

// New returns the options object of the subresource.
func (r *ProxyREST) New() runtime.Object { return &guildnet.WorkspaceProxyOptions{} }

// Destroy stops the activity recorder.
func (r *ProxyREST) Destroy() {
	if r.cfg.Activity != nil {
		r.cfg.Activity.Stop()
	}
}

// ConnectMethods lists every method: the proxy is transparent.
func (r *ProxyREST) ConnectMethods() []string { return proxyMethods }

// NewConnectOptions: the rest of the path after .../proxy goes to the workspace.
func (r *ProxyREST) NewConnectOptions() (runtime.Object, bool, string) {
	return &guildnet.WorkspaceProxyOptions{}, true, "path"
}

// ProducesMIMETypes: whatever the workspace serves.
func (r *ProxyREST) ProducesMIMETypes(string) []string { return []string{"*/*"} }

// ProducesObject: the workspace's bytes, not a Kubernetes object.
func (r *ProxyREST) ProducesObject(string) any { return "" }

// Connect checks that the workspace runs and returns the handler that
// forwards one request to it.
func (r *ProxyREST) Connect(ctx context.Context, name string, _ runtime.Object, responder rest.Responder) (http.Handler, error) {
	// From the watch cache without a quorum read: every proxied request
	// (each asset of a page) comes here, and a workspace's spec changes
	// reach the cache within milliseconds.
	obj, err := r.workspaces.Get(ctx, name, &metav1.GetOptions{ResourceVersion: "0"})
	if err != nil {
		return nil, err
	}
	ws, ok := obj.(*guildnet.Workspace)
	if !ok {
		return nil, fmt.Errorf("unexpected object %T", obj)
	}
	if ws.Spec.Suspend {
		return nil, unavailable(ws, "is stopped (spec.suspend is true%s); resume it with: kubectl patch workspace %s -n %s --type merge -p '{\"spec\":{\"suspend\":false}}'",
			idleNote(ws), ws.Name, ws.Namespace)
	}
	port := int32(guildnet.WorkspaceDefaultPort)
	if len(ws.Spec.Ports) > 0 {
		port = ws.Spec.Ports[0].Port
	}
	target, err := r.cfg.Resolver.Resolve(ws, port)
	if err != nil {
		return nil, unavailable(ws, "has no running pod to proxy to (%v)%s", err, readyNote(ws))
	}
	return &proxyHandler{rest: r, ws: ws, target: target, responder: responder}, nil
}

// idleNote tells the user the reconciler suspended the workspace because
// nobody used it (any condition with reason IdleTimeout says so).
func idleNote(ws *guildnet.Workspace) string {
	for _, c := range ws.Status.Conditions {
		if c.Reason == "IdleTimeout" {
			return ", set after it was idle: " + c.Message
		}
	}
	return ""
}

func readyNote(ws *guildnet.Workspace) string {
	c := meta.FindStatusCondition(ws.Status.Conditions, v1alpha1.ConditionReady)
	if c == nil || c.Status == metav1.ConditionTrue {
		return ""
	}
	msg := fmt.Sprintf("; phase %s, %s", ws.Status.Phase, c.Reason)
	if c.Message != "" {
		msg += ": " + c.Message
	}
	return msg
}

// unavailable is the 503 a user gets for a workspace that is not serving,
// with the reason in the message.
func unavailable(ws *guildnet.Workspace, format string, args ...any) error {
	return apierrors.NewServiceUnavailable(fmt.Sprintf("workspace %s/%s ", ws.Namespace, ws.Name) + fmt.Sprintf(format, args...))
}

// ProxyPrefix is the API path of workspace namespace/name's proxy, without
// the trailing slash.
func ProxyPrefix(namespace, name string) string {
	return "/apis/" + v1alpha1.SchemeGroupVersion.Group + "/" + v1alpha1.SchemeGroupVersion.Version +
		"/namespaces/" + namespace + "/workspaces/" + name + "/proxy"
}

type proxyHandler struct {
	rest      *ProxyREST
	ws        *guildnet.Workspace
	target    *url.URL
	responder rest.Responder
}

func (h *proxyHandler) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	prefix := ProxyPrefix(h.ws.Namespace, h.ws.Name)
	rest, ok := strings.CutPrefix(req.URL.Path, prefix)
	if !ok {
		h.responder.Error(apierrors.NewBadRequest(fmt.Sprintf("path %q is not below %s", req.URL.Path, prefix)))
		return
	}
	if rest == "" {
		// A relative target: the browser resolves it against whatever
		// prefix it sees (kubectl proxy, the portal), which an absolute
		// path would lose.
		loc := "proxy/"
		if req.URL.RawQuery != "" {
			loc += "?" + req.URL.RawQuery
		}
		writeRefresh(w, http.StatusMovedPermanently, loc)
		return
	}
	origin := req.Header.Get("Origin")
	if origin != "" && !h.rest.cfg.Origins.Allowed(origin) {
		h.responder.Error(apierrors.NewForbidden(guildnet.Resource("workspaces/proxy"), h.ws.Name,
			fmt.Errorf("requests from origin %s are refused (they could come from any web site through a local kubectl proxy); allow it with guildnet-apiserver --workspace-proxy-allowed-origins", origin)))
		return
	}
	backendPath, backendRawPath := rest, ""
	if esc, ok := strings.CutPrefix(req.URL.EscapedPath(), prefix); ok && esc != rest {
		backendRawPath = esc
	}
	if httpstream.IsUpgradeRequest(req) {
		if err := h.authorizeUpgrade(req.Context()); err != nil {
			h.responder.Error(err)
			return
		}
		h.serveWebSocket(w, req, prefix, backendPath, backendRawPath)
		return
	}
	if a := h.rest.cfg.Activity; a != nil {
		a.Touch(h.ws)
	}
	assetPath := backendPath
	if backendRawPath != "" {
		assetPath = backendRawPath
	}
	asset := h.rest.cfg.Assets.classify(h.ws.Spec.Image, req, assetPath)
	rp := &httputil.ReverseProxy{
		Transport: h.rest.cfg.Transport,
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme, pr.Out.URL.Host = h.target.Scheme, h.target.Host
			pr.Out.URL.Path, pr.Out.URL.RawPath = backendPath, backendRawPath
			pr.Out.Host = ""
			forwardHeaders(pr.In, pr.Out.Header, prefix, h.rest.cfg.Origins)
			if asset != nil {
				asset.rewrite(pr.Out.Header)
			}
		},
		ModifyResponse: func(resp *http.Response) error {
			rewriteResponseHeaders(resp.Header, prefix, h.target)
			throughAggregator(resp)
			if asset != nil {
				return asset.modify(resp)
			}
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, req *http.Request, err error) {
			if req.Context().Err() != nil {
				return // the client went away
			}
			h.responder.Error(unavailable(h.ws, "did not answer at %s: %v%s", h.target.Host, err, readyNote(h.ws)))
		},
	}
	rp.ServeHTTP(w, req)
}

// authorizeUpgrade: a browser WebSocket arrives as GET, which RBAC checks
// as get; opening one also needs create on workspaces/proxy, as
// Kubernetes does for pods/exec, so read-only access cannot drive a
// terminal in the workspace.
func (h *proxyHandler) authorizeUpgrade(ctx context.Context) error {
	user, ok := genericapirequest.UserFrom(ctx)
	if !ok {
		return apierrors.NewUnauthorized("no user in the request")
	}
	if h.rest.cfg.Authorizer == nil {
		return apierrors.NewForbidden(guildnet.Resource("workspaces/proxy"), h.ws.Name, fmt.Errorf("no authorizer configured"))
	}
	attrs := authorizer.AttributesRecord{
		User:            user,
		Verb:            "create",
		Namespace:       h.ws.Namespace,
		APIGroup:        v1alpha1.SchemeGroupVersion.Group,
		APIVersion:      v1alpha1.SchemeGroupVersion.Version,
		Resource:        "workspaces",
		Subresource:     "proxy",
		Name:            h.ws.Name,
		ResourceRequest: true,
	}
	decision, reason, err := h.rest.cfg.Authorizer.Authorize(ctx, attrs)
	if decision == authorizer.DecisionAllow {
		return nil
	}
	msg := fmt.Sprintf("user %q cannot open a WebSocket: that needs the create verb on workspaces/proxy in namespace %q besides get", user.GetName(), h.ws.Namespace)
	if reason != "" {
		msg += " (" + reason + ")"
	}
	if err != nil {
		msg += ": " + err.Error()
	}
	return apierrors.NewForbidden(guildnet.Resource("workspaces/proxy"), h.ws.Name, fmt.Errorf("%s", msg))
}

// Headers that carry the user's credentials to the API server, or that
// the API server chain sets about the user: none of them may reach a
// workspace, where any code could read them.
var credentialHeaders = []string{"Authorization", "Proxy-Authorization", "Forwarded", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Forwarded-Prefix", "X-Forwarded-Port", "X-Forwarded-Uri"}

var credentialHeaderPrefixes = []string{"Impersonate-", "X-Remote-"}

// portalCookiePrefix names the cookies of guildnet-portal, which a browser
// sends along with the workspace's own on the portal's host.
const portalCookiePrefix = "guildnet_"

// forwardHeaders prepares out (a copy of in's headers) for the workspace:
// credentials removed, X-Forwarded-* set for the sub-path.
func forwardHeaders(in *http.Request, out http.Header, prefix string, origins *OriginPolicy) {
	for _, h := range credentialHeaders {
		out.Del(h)
	}
	for k := range out {
		for _, p := range credentialHeaderPrefixes {
			if strings.HasPrefix(k, p) {
				out.Del(k)
			}
		}
	}
	filterCookies(out)
	// The chain of client addresses kube-apiserver forwarded, plus its own.
	if xff := in.Header.Values("X-Forwarded-For"); len(xff) > 0 {
		out["X-Forwarded-For"] = append([]string(nil), xff...)
	}
	if ip, _, err := net.SplitHostPort(in.RemoteAddr); err == nil {
		out.Add("X-Forwarded-For", ip)
	}
	out.Set("X-Forwarded-Prefix", prefix)
	// Behind kube-apiserver the browser's host is lost. Apps such as
	// code-server compare a WebSocket's Origin with the forwarded host, so
	// the host is taken from Origin — only for origins we trust.
	if origin := in.Header.Get("Origin"); origin != "" && origins.Allowed(origin) {
		if u, err := url.Parse(origin); err == nil {
			out.Set("X-Forwarded-Host", u.Host)
			out.Set("X-Forwarded-Proto", u.Scheme)
		}
	}
}

// filterCookies drops the portal's session cookies from the Cookie header.
func filterCookies(h http.Header) {
	var keep []string
	for _, line := range h.Values("Cookie") {
		var parts []string
		for _, c := range strings.Split(line, ";") {
			if name, _, _ := strings.Cut(strings.TrimSpace(c), "="); strings.HasPrefix(name, portalCookiePrefix) {
				continue
			}
			if c = strings.TrimSpace(c); c != "" {
				parts = append(parts, c)
			}
		}
		if len(parts) > 0 {
			keep = append(keep, strings.Join(parts, "; "))
		}
	}
	h.Del("Cookie")
	if len(keep) > 0 {
		h.Set("Cookie", strings.Join(keep, "; "))
	}
}

// rewriteResponseHeaders maps the workspace's view of paths onto the proxy
// path: redirects to the workspace's root or address land below prefix,
// and cookies are scoped to it. Bodies are never rewritten: apps that use
// relative URLs (code-server, Jupyter) work as they are, and rewriting
// HTML breaks the ones that already know their sub-path.
func rewriteResponseHeaders(h http.Header, prefix string, target *url.URL) {
	if loc := h.Get("Location"); loc != "" {
		h.Set("Location", rewriteLocation(loc, prefix, target))
	}
	if cookies := h.Values("Set-Cookie"); len(cookies) > 0 {
		h.Del("Set-Cookie")
		for _, c := range cookies {
			h.Add("Set-Cookie", rewriteSetCookie(c, prefix))
		}
	}
}

func rewriteLocation(loc, prefix string, target *url.URL) string {
	u, err := url.Parse(loc)
	if err != nil {
		return loc
	}
	if u.IsAbs() || u.Host != "" {
		if !strings.EqualFold(u.Host, target.Host) {
			return loc // somewhere else entirely: leave it
		}
		u.Scheme, u.Host, u.User = "", "", nil
	} else if !strings.HasPrefix(u.Path, "/") {
		return loc // relative: already right under the sub-path
	}
	if u.Path != prefix && !strings.HasPrefix(u.Path, prefix+"/") {
		u.Path = prefix + u.Path
		if u.RawPath != "" {
			u.RawPath = prefix + u.RawPath
		}
	}
	return u.String()
}

// rewriteSetCookie scopes a cookie to the proxy path and drops its Domain,
// editing only those attributes so everything else passes as sent.
func rewriteSetCookie(c, prefix string) string {
	parts := strings.Split(c, ";")
	out := parts[:1]
	for _, a := range parts[1:] {
		name, value, _ := strings.Cut(strings.TrimSpace(a), "=")
		switch strings.ToLower(name) {
		case "domain":
			continue
		case "path":
			if value != prefix && !strings.HasPrefix(value, prefix+"/") {
				if !strings.HasPrefix(value, "/") {
					value = "/" + value
				}
				if value == "/" {
					value = prefix + "/"
				} else {
					value = prefix + value
				}
			}
			a = " Path=" + value
		}
		out = append(out, a)
	}
	return strings.Join(out, ";")
}
