package workspace

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	"github.com/guildnet/guildnet/apis/guildnet"
	"github.com/guildnet/guildnet/test/workspacetest"
)

// fakeWorkspaces is a rest.Getter holding one workspace.
type fakeWorkspaces struct{ ws *guildnet.Workspace }

func (f fakeWorkspaces) Get(_ context.Context, name string, _ *metav1.GetOptions) (runtime.Object, error) {
	if f.ws == nil || f.ws.Name != name {
		return nil, apierrors.NewNotFound(guildnet.Resource("workspaces"), name)
	}
	return f.ws.DeepCopy(), nil
}

// responder writes errors as kube-apiserver's handler would: the status code and message.
type responder struct{ w http.ResponseWriter }

func (r responder) Object(code int, obj runtime.Object) { r.w.WriteHeader(code) }
func (r responder) Error(err error) {
	status := apierrors.APIStatus(nil)
	if s, ok := err.(apierrors.APIStatus); ok {
		status = s
	} else {
		status = apierrors.NewInternalError(err)
	}
	r.w.WriteHeader(int(status.Status().Code))
	_ = json.NewEncoder(r.w).Encode(status.Status())
}

// allowCreate is an authorizer that allows (or not) create on workspaces/proxy.
func allowCreate(allow bool) authorizer.Authorizer {
	return authorizer.AuthorizerFunc(func(_ context.Context, attrs authorizer.Attributes) (authorizer.Decision, string, error) {
		if attrs.GetVerb() == "create" && attrs.GetSubresource() == "proxy" && allow {
			return authorizer.DecisionAllow, "", nil
		}
		return authorizer.DecisionNoOpinion, "no RBAC rule allows it", nil
	})
}

// proxyFixture serves workspaces/proxy of workspace ns/w, backed by
// backend, the way the API server would call the Connecter.
type proxyFixture struct {
	t      *testing.T
	server *httptest.Server
	ws     *guildnet.Workspace
	prefix string
}

func newProxyFixture(t *testing.T, backend http.Handler, mutate func(*guildnet.Workspace, *ProxyConfig)) *proxyFixture {
	t.Helper()
	be := httptest.NewServer(backend)
	t.Cleanup(be.Close)
	host, portStr, _ := net.SplitHostPort(be.Listener.Addr().String())
	port, _ := strconv.Atoi(portStr)

	ws := &guildnet.Workspace{ObjectMeta: metav1.ObjectMeta{Name: "w", Namespace: "ns", UID: "u1"},
		Spec: guildnet.WorkspaceSpec{Image: "x", Ports: []guildnet.WorkspacePort{{Name: "http", Port: int32(port)}}}}
	indexer := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	_ = indexer.Add(&discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "w-1", Namespace: "ns", Labels: map[string]string{discoveryv1.LabelServiceName: "w"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{host}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}},
		Ports:       []discoveryv1.EndpointPort{{Port: ptr.To(int32(port))}},
	})
	origins, err := NewOriginPolicy([]string{"https://portal.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	cfg := ProxyConfig{
		Resolver:     NewEndpointResolver(discoverylisters.NewEndpointSliceLister(indexer)),
		Authorizer:   allowCreate(true),
		Origins:      origins,
		PingInterval: time.Second,
	}
	if mutate != nil {
		mutate(ws, &cfg)
	}
	r := NewProxyREST(fakeWorkspaces{ws}, cfg)
	f := &proxyFixture{t: t, ws: ws, prefix: ProxyPrefix("ns", "w")}
	f.server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		ctx := genericapirequest.WithUser(req.Context(), &user.DefaultInfo{Name: "alice"})
		ctx = genericapirequest.WithNamespace(ctx, "ns")
		req = req.WithContext(ctx)
		h, err := r.Connect(ctx, "w", &guildnet.WorkspaceProxyOptions{}, responder{w})
		if err != nil {
			responder{w}.Error(err)
			return
		}
		h.ServeHTTP(w, req)
	}))
	t.Cleanup(f.server.Close)
	return f
}

func (f *proxyFixture) url(path string) string { return f.server.URL + f.prefix + path }

func noRedirects() *http.Client {
	return &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func TestProxyStripsCredentialsAndSetsForwardedHeaders(t *testing.T) {
	var got http.Header
	var gotPath string
	f := newProxyFixture(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, gotPath = r.Header.Clone(), r.URL.RequestURI()
	}), nil)
	req, _ := http.NewRequest("GET", f.url("/some/path?q=1"), nil)
	req.Header.Set("Authorization", "Bearer secret")
	req.Header.Set("Impersonate-User", "root")
	req.Header.Set("X-Remote-User", "alice")
	req.Header.Set("X-Remote-Group", "system:masters")
	req.Header.Set("Forwarded", "host=evil.example")
	req.Header.Set("X-Forwarded-Host", "evil.example")
	req.Header.Set("Cookie", "guildnet_session=s3cret; code-server-session=abc")
	req.Header.Set("Origin", "http://127.0.0.1:8001")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if gotPath != "/some/path?q=1" {
		t.Errorf("backend got path %q, want /some/path?q=1 (the prefix stripped)", gotPath)
	}
	for _, h := range []string{"Authorization", "Impersonate-User", "X-Remote-User", "X-Remote-Group", "Forwarded"} {
		if v := got.Get(h); v != "" {
			t.Errorf("backend received %s: %q; credentials must not reach a workspace", h, v)
		}
	}
	if c := got.Get("Cookie"); c != "code-server-session=abc" {
		t.Errorf("backend got Cookie %q, want only the workspace's own cookie", c)
	}
	if v := got.Get("X-Forwarded-Prefix"); v != f.prefix {
		t.Errorf("X-Forwarded-Prefix = %q, want %q", v, f.prefix)
	}
	if v := got.Get("X-Forwarded-Host"); v != "127.0.0.1:8001" {
		t.Errorf("X-Forwarded-Host = %q, want the allowed Origin's host 127.0.0.1:8001", v)
	}
}

func TestProxyRedirectsToTrailingSlashRelatively(t *testing.T) {
	f := newProxyFixture(t, http.NotFoundHandler(), nil)
	resp, err := noRedirects().Get(f.server.URL + f.prefix + "?a=b")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := redirectTarget(resp); resp.StatusCode != 200 || got != "proxy/?a=b" || resp.Header.Get(redirectStatusHeader) != "301" {
		t.Fatalf("got %d redirect to %q, want a (refresh) redirect to the relative proxy/?a=b", resp.StatusCode, got)
	}
}

func TestProxyRewritesRedirectsAndCookiesButNotHTML(t *testing.T) {
	const page = `<html><a href="/root-link">x</a><script src="./static/app.js"></script></html>`
	var backendHost string
	f := newProxyFixture(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/abs":
			w.Header().Set("Location", "/login?next=1")
			w.WriteHeader(http.StatusFound)
		case "/full":
			w.Header().Set("Location", "http://"+backendHost+"/login")
			w.WriteHeader(http.StatusFound)
		case "/rel":
			w.Header().Set("Location", "./login")
			w.WriteHeader(http.StatusFound)
		case "/away":
			w.Header().Set("Location", "https://example.com/x")
			w.WriteHeader(http.StatusFound)
		case "/cookie":
			w.Header().Add("Set-Cookie", "a=1; Path=/; Domain=10.0.0.5; HttpOnly; SameSite=Lax")
			w.Header().Add("Set-Cookie", "b=2; Path=/apis/guildnet.io/v1alpha1/namespaces/ns/workspaces/w/proxy/")
			w.Header().Add("Set-Cookie", "c=3")
		default:
			w.Header().Set("Content-Type", "text/html")
			fmt.Fprint(w, page)
		}
	}), nil)
	// The backend's own address, as it would put it in an absolute redirect.
	backendHost = "127.0.0.1:" + strconv.Itoa(int(f.ws.Spec.Ports[0].Port))

	client := noRedirects()
	for path, want := range map[string]string{
		"/abs":  f.prefix + "/login?next=1",
		"/full": f.prefix + "/login",
		"/rel":  "./login",
		"/away": "https://example.com/x",
	} {
		resp, err := client.Get(f.url(path))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := redirectTarget(resp); got != want || resp.Header.Get("Location") != "" {
			t.Errorf("%s: redirect to %q (Location %q), want %q as a Refresh", path, got, resp.Header.Get("Location"), want)
		}
	}
	resp, err := client.Get(f.url("/cookie"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	want := []string{
		"a=1; Path=" + f.prefix + "/; HttpOnly; SameSite=Lax",
		"b=2; Path=" + f.prefix + "/",
		"c=3",
	}
	if got := resp.Header.Values("Set-Cookie"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("Set-Cookie:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	resp, err = client.Get(f.url("/index.html"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != page {
		t.Errorf("HTML was changed:\n%s\nwant it as the workspace sent it:\n%s", body, page)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "Text/HTML" {
		t.Errorf("Content-Type %q, want Text/HTML (spelled so the aggregator does not rewrite it)", ct)
	}
}

func TestProxyRefusesForeignOrigins(t *testing.T) {
	f := newProxyFixture(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}), nil)
	for origin, want := range map[string]int{
		"https://evil.example":        http.StatusForbidden,
		"http://localhost:8001":       http.StatusOK,
		"http://w--ns--c.localhost:7": http.StatusOK,
		"https://portal.example.com":  http.StatusOK,
		"null":                        http.StatusForbidden,
	} {
		req, _ := http.NewRequest("POST", f.url("/x"), strings.NewReader("{}"))
		req.Header.Set("Origin", origin)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("Origin %s: %d, want %d (%s)", origin, resp.StatusCode, want, body)
		}
		if want == http.StatusForbidden && !strings.Contains(string(body), "--workspace-proxy-allowed-origins") {
			t.Errorf("Origin %s: the refusal should name the flag that allows it: %s", origin, body)
		}
	}
}

func TestProxyAnswers503WithTheReason(t *testing.T) {
	f := newProxyFixture(t, http.NotFoundHandler(), func(ws *guildnet.Workspace, _ *ProxyConfig) {
		ws.Spec.Suspend = true
	})
	resp, err := http.Get(f.url("/"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "spec.suspend") || !strings.Contains(string(body), "kubectl patch") {
		t.Fatalf("suspended workspace: %d %s; want 503 saying it is suspended and how to resume", resp.StatusCode, body)
	}

	f = newProxyFixture(t, http.NotFoundHandler(), func(ws *guildnet.Workspace, _ *ProxyConfig) {
		ws.Spec.Ports[0].Port++ // no endpoint serves this port
		ws.Status.Phase = guildnet.WorkspaceFailed
		ws.Status.Conditions = []metav1.Condition{{Type: "Ready", Status: metav1.ConditionFalse, Reason: "ImagePullBackOff", Message: "image nope:1 cannot be pulled"}}
	})
	resp, err = http.Get(f.url("/"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "ImagePullBackOff") {
		t.Fatalf("failed workspace: %d %s; want 503 with the Ready reason", resp.StatusCode, body)
	}
}

func TestProxyStreamsLargeDownloads(t *testing.T) {
	const size = 64 << 20
	f := newProxyFixture(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(size))
		buf := make([]byte, 1<<16)
		for i := range buf {
			buf[i] = byte(i)
		}
		for sent := 0; sent < size; sent += len(buf) {
			_, _ = w.Write(buf)
		}
	}), nil)
	resp, err := http.Get(f.url("/big"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	if err != nil || n != size {
		t.Fatalf("downloaded %d bytes (%v), want %d", n, err, size)
	}
}

func echoBackend(t *testing.T, seen *http.Header, mu *sync.Mutex) http.Handler {
	return workspacetest.Echo(func(h http.Header) {
		mu.Lock()
		*seen = h
		mu.Unlock()
	})
}

func wsURL(httpURL string) string { return "ws" + strings.TrimPrefix(httpURL, "http") }

func TestProxyWebSocketEchoAndPings(t *testing.T) {
	var seen http.Header
	var mu sync.Mutex
	f := newProxyFixture(t, echoBackend(t, &seen, &mu), nil)
	hdr := http.Header{"Origin": {"http://localhost:8001"}, "Authorization": {"Bearer secret"}}
	c, _, err := websocket.DefaultDialer.Dial(wsURL(f.url("/ws?x=1")), hdr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pings := make(chan struct{}, 10)
	c.SetPingHandler(func(string) error {
		pings <- struct{}{}
		return c.WriteControl(websocket.PongMessage, nil, time.Now().Add(time.Second))
	})
	big := strings.Repeat("x", 1<<20)
	for _, msg := range []string{"hello", big} {
		if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		_, got, err := c.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != msg {
			t.Fatalf("echo returned %d bytes, want %d", len(got), len(msg))
		}
	}
	mu.Lock()
	if seen.Get("Authorization") != "" || seen.Get("X-Forwarded-Host") != "localhost:8001" || seen.Get("Origin") != "http://localhost:8001" {
		t.Errorf("backend handshake headers: Authorization %q X-Forwarded-Host %q Origin %q", seen.Get("Authorization"), seen.Get("X-Forwarded-Host"), seen.Get("Origin"))
	}
	mu.Unlock()
	// The proxy pings an idle client every PingInterval (1s here); the
	// ping handler only runs while reading, so read until one arrives.
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	go func() { _, _, _ = c.ReadMessage() }()
	select {
	case <-pings:
	case <-time.After(5 * time.Second):
		t.Fatal("no ping from the proxy on an idle WebSocket")
	}
}

func TestProxyWebSocketNeedsCreate(t *testing.T) {
	var seen http.Header
	var mu sync.Mutex
	f := newProxyFixture(t, echoBackend(t, &seen, &mu), func(_ *guildnet.Workspace, cfg *ProxyConfig) {
		cfg.Authorizer = allowCreate(false)
	})
	_, resp, err := websocket.DefaultDialer.Dial(wsURL(f.url("/ws")), nil)
	if err == nil {
		t.Fatal("WebSocket opened without create on workspaces/proxy")
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "create verb on workspaces/proxy") {
		t.Fatalf("got %d %s; want 403 naming the missing create verb", resp.StatusCode, body)
	}
}

// redirectTarget is where a browser goes after resp: the Refresh header
// the proxy turns redirects into.
func redirectTarget(resp *http.Response) string {
	r := resp.Header.Get("Refresh")
	_, url, _ := strings.Cut(r, "url=")
	return url
}
