package integration

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/guildnet/guildnet/apis/guildnet/v1alpha1"
	guildnetclient "github.com/guildnet/guildnet/generated/clientset/versioned"
	"github.com/guildnet/guildnet/test/framework"
	"github.com/guildnet/guildnet/test/workspacetest"
)

// recordingBackend is a workspace's server: it records what each request
// carried and answers with redirects, cookies, HTML, a large body and a
// WebSocket echo.
type recordingBackend struct {
	mu      sync.Mutex
	headers http.Header
}

const backendPage = `<!doctype html><html><head><base href="./"></head><body><a href="/abs">abs</a><img src="static/x.png"></body></html>`

const largeSize = 64 << 20

func (b *recordingBackend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.mu.Lock()
	b.headers = r.Header.Clone()
	b.mu.Unlock()
	switch r.URL.Path {
	case "/login":
		w.Header().Add("Set-Cookie", "session=abc; Path=/; HttpOnly")
		w.Header().Set("Location", "/home")
		w.WriteHeader(http.StatusFound)
	case "/large":
		w.Header().Set("Content-Length", strconv.Itoa(largeSize))
		chunk := make([]byte, 1<<16)
		for i := range chunk {
			chunk[i] = byte(i * 7)
		}
		for sent := 0; sent < largeSize; sent += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	case "/ws":
		workspacetest.Echo(nil).ServeHTTP(w, r)
	default:
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, backendPage)
	}
}

func (b *recordingBackend) lastHeaders() http.Header {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.headers.Clone()
}

// proxiedWorkspace is a Workspace whose endpoint is a test server in a
// network namespace: the test plays the kubelet and the EndpointSlice
// controller (there is no node) by publishing the server's pod-like address
// in an EndpointSlice of the workspace's Service, exactly where
// guildnet-apiserver looks for a real pod's address.
type proxiedWorkspace struct {
	ns, name string
	port     int
	prefix   string
}

func startProxiedWorkspace(t *testing.T, kube kubernetes.Interface, gn guildnetclient.Interface, ns, name string, handler http.Handler, idle time.Duration) *proxiedWorkspace {
	t.Helper()
	ctx := context.Background()
	netns := framework.NewNetNS(t)
	l := netns.Listen(t, 0)
	srv := &http.Server{Handler: handler}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	port := l.Addr().(*net.TCPAddr).Port

	ws := &v1alpha1.Workspace{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1alpha1.WorkspaceSpec{Image: "example.com/test-backend:1", Ports: []v1alpha1.WorkspacePort{{Name: "http", Port: int32(port)}}}}
	if idle > 0 {
		ws.Spec.IdleTimeout = &metav1.Duration{Duration: idle}
	}
	if _, err := gn.GuildnetV1alpha1().Workspaces(ns).Create(ctx, ws, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := workspacetest.PublishEndpoint(ctx, kube, ns, name, netns.IP, int32(port), "guildnet-integration-test"); err != nil {
		t.Fatal(err)
	}
	return &proxiedWorkspace{ns: ns, name: name, port: port,
		prefix: "/apis/guildnet.io/v1alpha1/namespaces/" + ns + "/workspaces/" + name + "/proxy"}
}

// httpClientFor is a plain HTTP client that authenticates as cfg's user to
// kube-apiserver and does not follow redirects (the tests look at them).
func httpClientFor(t *testing.T, cfg *rest.Config) *http.Client {
	t.Helper()
	c, err := rest.HTTPClientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return c
}

func get(t *testing.T, c *http.Client, url string, hdr http.Header) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// wsDial opens a WebSocket through kube-apiserver as cfg's user.
func wsDial(t *testing.T, cfg *rest.Config, url string, hdr http.Header) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	tlsCfg, err := rest.TLSConfigFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if tlsCfg == nil {
		tlsCfg = &tls.Config{}
	}
	d := websocket.Dialer{TLSClientConfig: tlsCfg, HandshakeTimeout: 15 * time.Second}
	if cfg.BearerToken != "" {
		hdr = hdr.Clone()
		hdr.Set("Authorization", "Bearer "+cfg.BearerToken)
	}
	return d.Dial("wss"+strings.TrimPrefix(url, "https"), hdr)
}

// Everything a browser sends through kube-apiserver's aggregation layer to
// a workspace arrives without the user's credentials, with the forwarded
// headers of the sub-path, redirects and cookies mapped to the proxy path,
// HTML untouched, large bodies intact and WebSockets working.
func TestWorkspaceProxyThroughTheAggregationLayer(t *testing.T) {
	env := framework.Env(t)
	ctx := context.Background()
	adminCfg := env.AdminConfig()
	kube := kubernetes.NewForConfigOrDie(adminCfg)
	gn := guildnetclient.NewForConfigOrDie(adminCfg)
	ns := createNamespace(t, kube, "proxy")
	backend := &recordingBackend{}
	w := startProxiedWorkspace(t, kube, gn, ns, "web", backend, 0)
	client := httpClientFor(t, adminCfg)
	base := adminCfg.Host + w.prefix

	framework.Eventually(t, 30*time.Second, "the proxy reaches the workspace", func(context.Context) error {
		resp, body := get(t, client, base+"/", nil)
		if resp.StatusCode != 200 {
			return fmt.Errorf("%d %s", resp.StatusCode, body)
		}
		return nil
	})

	t.Run("credentials stripped, forwarded headers set", func(t *testing.T) {
		get(t, client, base+"/page", http.Header{
			"Cookie": {"guildnet_session=portal-secret; app=1"},
			"Origin": {"http://127.0.0.1:8001"},
		})
		h := backend.lastHeaders()
		for _, name := range []string{"Authorization", "X-Remote-User", "X-Remote-Group", "Impersonate-User"} {
			if v := h.Get(name); v != "" {
				t.Errorf("the workspace received %s: %q", name, v)
			}
		}
		for k := range h {
			if strings.HasPrefix(k, "X-Remote-") || strings.HasPrefix(k, "Impersonate-") {
				t.Errorf("the workspace received %s", k)
			}
		}
		if c := h.Get("Cookie"); c != "app=1" {
			t.Errorf("Cookie at the workspace = %q, want only app=1", c)
		}
		if p := h.Get("X-Forwarded-Prefix"); p != w.prefix {
			t.Errorf("X-Forwarded-Prefix = %q, want %q", p, w.prefix)
		}
		if xfh := h.Get("X-Forwarded-Host"); xfh != "127.0.0.1:8001" {
			t.Errorf("X-Forwarded-Host = %q, want the allowed Origin's host", xfh)
		}
	})

	t.Run("redirect to trailing slash", func(t *testing.T) {
		resp, body := get(t, client, base, nil)
		if _, loc, _ := strings.Cut(resp.Header.Get("Refresh"), "url="); resp.StatusCode != 200 || loc != "proxy/" {
			t.Fatalf("GET .../proxy: %d Refresh %q %s; want a redirect to proxy/", resp.StatusCode, resp.Header.Get("Refresh"), body)
		}
	})

	t.Run("Location and Set-Cookie rewritten, HTML untouched", func(t *testing.T) {
		resp, _ := get(t, client, base+"/login", nil)
		// Redirects travel as a Refresh: the aggregation layer refuses 3xx
		// responses of aggregated servers.
		if _, loc, _ := strings.Cut(resp.Header.Get("Refresh"), "url="); loc != w.prefix+"/home" || resp.Header.Get("X-Guildnet-Redirect-Status") != "302" {
			t.Errorf("redirect %d Refresh %q, want to %q", resp.StatusCode, resp.Header.Get("Refresh"), w.prefix+"/home")
		}
		if c := resp.Header.Get("Set-Cookie"); c != "session=abc; Path="+w.prefix+"/; HttpOnly" {
			t.Errorf("Set-Cookie %q, want the cookie scoped to the proxy path", c)
		}
		_, body := get(t, client, base+"/index.html", nil)
		if body != backendPage {
			t.Errorf("HTML changed on the way:\n%s\nwant:\n%s", body, backendPage)
		}
	})

	t.Run("large download", func(t *testing.T) {
		resp, err := client.Get(base + "/large")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		h := sha256.New()
		n, err := io.Copy(h, resp.Body)
		if err != nil || n != largeSize {
			t.Fatalf("downloaded %d bytes (%v), want %d", n, err, largeSize)
		}
		want := sha256.New()
		chunk := make([]byte, 1<<16)
		for i := range chunk {
			chunk[i] = byte(i * 7)
		}
		for sent := 0; sent < largeSize; sent += len(chunk) {
			want.Write(chunk)
		}
		if string(h.Sum(nil)) != string(want.Sum(nil)) {
			t.Fatal("the download's bytes differ from what the workspace sent")
		}
	})

	t.Run("WebSocket echo", func(t *testing.T) {
		c, resp, err := wsDial(t, adminCfg, base+"/ws", http.Header{"Origin": {"http://localhost:8001"}})
		if err != nil {
			body := ""
			if resp != nil {
				b, _ := io.ReadAll(resp.Body)
				body = string(b)
			}
			t.Fatalf("WebSocket through kube-apiserver: %v %s", err, body)
		}
		defer c.Close()
		for _, msg := range []string{"hello", strings.Repeat("y", 256<<10)} {
			if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
				t.Fatal(err)
			}
			_, got, err := c.ReadMessage()
			if err != nil || string(got) != msg {
				t.Fatalf("echo: %d bytes, %v", len(got), err)
			}
		}
	})

	t.Run("foreign origin refused", func(t *testing.T) {
		resp, body := get(t, client, base+"/", http.Header{"Origin": {"https://evil.example"}})
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("Origin https://evil.example: %d %s, want 403", resp.StatusCode, body)
		}
	})

	t.Run("stopped workspace answers 503 with the reason", func(t *testing.T) {
		_, err := gn.GuildnetV1alpha1().Workspaces(ns).Patch(ctx, w.name, types.MergePatchType, []byte(`{"spec":{"suspend":true}}`), metav1.PatchOptions{})
		if err != nil {
			t.Fatal(err)
		}
		resp, body := get(t, client, base+"/", nil)
		if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "spec.suspend is true") {
			t.Fatalf("suspended: %d %s; want 503 saying it is stopped", resp.StatusCode, body)
		}
	})
}

// workspaces/proxy is edit-and-up: view cannot use it at all, and a
// role with only get on workspaces/proxy can load pages but not open a
// WebSocket, which also needs create.
func TestWorkspaceProxyRBAC(t *testing.T) {
	env := framework.Env(t)
	ctx := context.Background()
	adminCfg := env.AdminConfig()
	kube := kubernetes.NewForConfigOrDie(adminCfg)
	gn := guildnetclient.NewForConfigOrDie(adminCfg)
	ns := createNamespace(t, kube, "proxy-rbac")
	w := startProxiedWorkspace(t, kube, gn, ns, "web", &recordingBackend{}, 0)

	if _, err := kube.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "proxy-get-only"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{"guildnet.io"}, Resources: []string{"workspaces/proxy"}, Verbs: []string{"get"}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	bind := func(user, kind, role string) {
		if _, err := kube.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: user},
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: kind, Name: role},
			Subjects:   []rbacv1.Subject{{Kind: "User", APIGroup: "rbac.authorization.k8s.io", Name: user}},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	bind("proxy-viewer", "ClusterRole", "view")
	bind("proxy-getter", "Role", "proxy-get-only")
	bind("proxy-editor", "ClusterRole", "edit")
	cfgOf := func(user string) *rest.Config {
		c, err := env.UserConfig(user)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	url := adminCfg.Host + w.prefix + "/"
	status := func(user string) func(context.Context) (int, string) {
		c := httpClientFor(t, cfgOf(user))
		return func(context.Context) (int, string) {
			resp, body := get(t, c, url, nil)
			return resp.StatusCode, body
		}
	}
	for user, want := range map[string]int{"proxy-viewer": 403, "proxy-getter": 200, "proxy-editor": 200} {
		check := status(user)
		framework.Eventually(t, 30*time.Second, user+" gets "+strconv.Itoa(want), func(ctx context.Context) error {
			if code, body := check(ctx); code != want {
				return fmt.Errorf("%d %s", code, body)
			}
			return nil
		})
	}
	// The WebSocket: the getter is refused by guildnet-apiserver (403 naming
	// the create verb); the editor gets through.
	framework.Eventually(t, 30*time.Second, "proxy-getter's WebSocket is refused", func(context.Context) error {
		c, resp, err := wsDial(t, cfgOf("proxy-getter"), url+"ws", nil)
		if err == nil {
			c.Close()
			return fmt.Errorf("the WebSocket opened")
		}
		if resp == nil {
			return err
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "create verb on workspaces/proxy") {
			return fmt.Errorf("%d %s", resp.StatusCode, body)
		}
		return nil
	})
	framework.Eventually(t, 30*time.Second, "proxy-editor's WebSocket opens", func(context.Context) error {
		c, resp, err := wsDial(t, cfgOf("proxy-editor"), url+"ws", nil)
		if err != nil {
			if resp != nil {
				body, _ := io.ReadAll(resp.Body)
				return fmt.Errorf("%v: %d %s", err, resp.StatusCode, body)
			}
			return err
		}
		return c.Close()
	})
}
