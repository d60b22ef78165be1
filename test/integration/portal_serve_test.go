package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/guildnet/guildnet/portal/cli"
	"github.com/guildnet/guildnet/portal/join"
	"github.com/guildnet/guildnet/portal/server"
	"github.com/guildnet/guildnet/test/framework"
)

// servedPortal is `guildnet-portal serve` running in this process.
type servedPortal struct {
	t      *testing.T
	port   int
	token  string
	addr   string
	client *http.Client
	cookie *http.Cookie

	cancel context.CancelFunc
	done   chan error
	mu     sync.Mutex
	stdout bytes.Buffer // everything after the first line
}

var portalLine = regexp.MustCompile(`^Portal: http://127\.0\.0\.1:(\d+)/\?token=([A-Za-z0-9_-]{43})\n$`)

// startPortal runs serve on a free loopback port with stateDir and waits
// for the line it prints once it listens.
func startPortal(t *testing.T, stateDir string) *servedPortal {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	cmd := cli.NewCommand()
	cmd.SetArgs([]string{"serve", "--state-dir", stateDir, "--listen", "127.0.0.1:0"})
	cmd.SetOut(pw)
	cmd.SetErr(os.Stderr)
	p := &servedPortal{t: t, cancel: cancel, done: make(chan error, 1)}
	go func() {
		err := cmd.ExecuteContext(ctx)
		pw.Close()
		p.done <- err
	}()
	br := bufio.NewReader(pr)
	lineCh := make(chan string, 1)
	go func() {
		line, _ := br.ReadString('\n')
		lineCh <- line
		p.mu.Lock()
		defer p.mu.Unlock()
		_, _ = io.Copy(&p.stdout, br)
	}()
	var line string
	select {
	case line = <-lineCh:
	case err := <-p.done:
		t.Fatalf("serve ended before printing its URL: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("serve printed no URL within 30 s")
	}
	m := portalLine.FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("serve printed %q; want one line Portal: http://127.0.0.1:PORT/?token=TOKEN", line)
	}
	fmt.Sscan(m[1], &p.port)
	p.token = m[2]
	p.addr = "127.0.0.1:" + m[1]
	p.client = &http.Client{
		// Every host name (workspace hosts too) is the portal's listener.
		Transport: &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, p.addr)
		}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	t.Cleanup(func() { p.stop() })
	return p
}

// stop ends serve and returns what it printed on stdout after the URL.
func (p *servedPortal) stop() string {
	p.cancel()
	select {
	case err := <-p.done:
		if err != nil {
			p.t.Errorf("serve ended with %v", err)
		}
		p.done <- nil // later stops return at once
	case <-time.After(20 * time.Second):
		p.t.Error("serve did not stop within 20 s of its context ending")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stdout.String()
}

func (p *servedPortal) host() string { return p.addr }

// do sends a request as the UI would: session cookie, Origin on unsafe
// methods.
func (p *servedPortal) do(method, host, path string, body []byte, cookies ...*http.Cookie) *http.Response {
	p.t.Helper()
	if host == "" {
		host = p.host()
	}
	req, err := http.NewRequest(method, "http://"+host+path, bytes.NewReader(body))
	if err != nil {
		p.t.Fatal(err)
	}
	req.Host = host
	if method != http.MethodGet {
		req.Header.Set("Origin", "http://"+host)
	}
	for _, c := range cookies {
		req.AddCookie(c)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		p.t.Fatalf("%s %s%s: %v", method, host, path, err)
	}
	return resp
}

func (p *servedPortal) api(method, path string, body []byte) *http.Response {
	p.t.Helper()
	return p.do(method, "", path, body, p.cookie)
}

func readAll(t *testing.T, resp *http.Response, code int) []byte {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != code {
		t.Fatalf("%s %s: %d, want %d: %s", resp.Request.Method, resp.Request.URL.Path, resp.StatusCode, code, b)
	}
	return b
}

func readStatus(t *testing.T, resp *http.Response, code int) metav1.Status {
	t.Helper()
	var st metav1.Status
	if err := json.Unmarshal(readAll(t, resp, code), &st); err != nil || st.Kind != "Status" {
		t.Fatalf("%s: not a Status: %v", resp.Request.URL.Path, err)
	}
	return st
}

// lines reads r line by line onto a channel, closed at the end.
func lines(r io.Reader) <-chan string {
	ch := make(chan string, 100)
	go func() {
		defer close(ch)
		br := bufio.NewReader(r)
		for {
			l, err := br.ReadString('\n')
			if l != "" {
				ch <- l
			}
			if err != nil {
				return
			}
		}
	}()
	return ch
}

// waitFor reads ch until a line contains want.
func waitFor(t *testing.T, ch <-chan string, want, what string) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case l, ok := <-ch:
			if !ok {
				t.Fatalf("%s: the stream ended before %q arrived", what, want)
			}
			if strings.Contains(l, want) {
				return
			}
		case <-deadline:
			t.Fatalf("%s: %q did not arrive within 20 s (is the portal buffering the stream?)", what, want)
		}
	}
}

// waitClosed waits for ch to be closed.
func waitClosed(t *testing.T, ch <-chan string, what string) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatalf("%s is still open 20 s after its cluster was removed", what)
		}
	}
}

// wsFrames opens a WebSocket through the portal (a minimal client: enough
// for kube-apiserver's watch, which sends one unfragmented frame per event)
// and returns the text of each frame it receives.
func (p *servedPortal) wsFrames(path string) (<-chan string, net.Conn) {
	p.t.Helper()
	conn, err := net.Dial("tcp", p.addr)
	if err != nil {
		p.t.Fatal(err)
	}
	p.t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: http://%s\r\nCookie: %s=%s\r\n\r\n",
		path, p.host(), p.host(), server.SessionCookie, p.cookie.Value)
	br := bufio.NewReader(conn)
	_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		p.t.Fatalf("WebSocket handshake: %v", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		p.t.Fatalf("WebSocket handshake: %s: %s", resp.Status, b)
	}
	if want := "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="; resp.Header.Get("Sec-WebSocket-Accept") != want {
		p.t.Fatalf("WebSocket handshake: Sec-WebSocket-Accept %q, want %q", resp.Header.Get("Sec-WebSocket-Accept"), want)
	}
	_ = conn.SetReadDeadline(time.Time{})
	ch := make(chan string, 100)
	go func() {
		defer close(ch)
		for {
			var h [2]byte
			if _, err := io.ReadFull(br, h[:]); err != nil {
				return
			}
			n := uint64(h[1] & 0x7f)
			switch n {
			case 126:
				var b [2]byte
				if _, err := io.ReadFull(br, b[:]); err != nil {
					return
				}
				n = uint64(binary.BigEndian.Uint16(b[:]))
			case 127:
				var b [8]byte
				if _, err := io.ReadFull(br, b[:]); err != nil {
					return
				}
				n = binary.BigEndian.Uint64(b[:])
			}
			payload := make([]byte, n)
			if _, err := io.ReadFull(br, payload); err != nil {
				return
			}
			if h[0]&0x0f == 0x8 { // close
				return
			}
			ch <- string(payload)
		}
	}()
	return ch, conn
}

func createConfigMap(t *testing.T, kube kubernetes.Interface, ns, name string) {
	t.Helper()
	if _, err := kube.CoreV1().ConfigMaps(ns).Create(context.Background(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// The portal end to end against the local control plane: serve prints its
// URL, the token opens a session, clusters are joined through the HTTP
// API, and the cluster's API is forwarded with the stored credentials:
// plain requests, watch streams and WebSockets, and a workspace's proxy
// path on the workspace's own origin.
func TestPortalServe(t *testing.T) {
	env := framework.Env(t)
	admin := kubernetes.NewForConfigOrDie(env.AdminConfig())
	ns := createNamespace(t, admin, "portal")
	stateDir := filepath.Join(t.TempDir(), "state")
	p := startPortal(t, stateDir)

	// No session, no service.
	readStatus(t, p.do(http.MethodGet, "", "/api/clusters", nil), http.StatusUnauthorized)
	resp := p.do(http.MethodGet, "", "/?token="+p.token, nil)
	readAll(t, resp, http.StatusSeeOther)
	for _, c := range resp.Cookies() {
		if c.Name == server.SessionCookie {
			p.cookie = c
		}
	}
	if p.cookie == nil {
		t.Fatal("the token exchange set no session cookie")
	}

	adminKubeconfig, err := os.ReadFile(env.AdminKubeconfig)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("failed joins store nothing", func(t *testing.T) {
		unreachable := regexp.MustCompile(`server: https://[^\s]+`).ReplaceAll(adminKubeconfig, []byte("server: https://127.0.0.1:1"))
		st := readStatus(t, p.api(http.MethodPost, "/api/clusters", unreachable), http.StatusBadGateway)
		if st.Reason != "Unreachable" {
			t.Errorf("unreachable cluster: reason %q: %s", st.Reason, st.Message)
		}
		noCA := regexp.MustCompile(`certificate-authority-data: [^\s]+`).ReplaceAll(adminKubeconfig, nil)
		st = readStatus(t, p.api(http.MethodPost, "/api/clusters", noCA), http.StatusBadGateway)
		if st.Reason != "TLS" {
			t.Errorf("untrusted certificate: reason %q: %s", st.Reason, st.Message)
		}
		if b := readAll(t, p.api(http.MethodGet, "/api/clusters", nil), http.StatusOK); strings.TrimSpace(string(b)) != `{"items":[]}` {
			t.Fatalf("after failed joins the portal lists %s", b)
		}
		entries, err := os.ReadDir(filepath.Join(stateDir, "clusters"))
		if err != nil || len(entries) != 0 {
			t.Fatalf("after failed joins the state dir holds %v, %v", entries, err)
		}
	})

	// Join as the admin, whose kubeconfig authenticates with a client
	// certificate.
	var joined struct{ ID string }
	if err := json.Unmarshal(readAll(t, p.api(http.MethodPost, "/api/clusters?name=local", adminKubeconfig), http.StatusCreated), &joined); err != nil || joined.ID != "local" {
		t.Fatalf("join answered id %q, %v", joined.ID, err)
	}
	k8s := "/clusters/" + joined.ID + "/k8s"

	t.Run("HTTP forwarding", func(t *testing.T) {
		var list corev1.NamespaceList
		if err := json.Unmarshal(readAll(t, p.api(http.MethodGet, k8s+"/api/v1/namespaces", nil), http.StatusOK), &list); err != nil {
			t.Fatal(err)
		}
		found := false
		for _, n := range list.Items {
			found = found || n.Name == ns
		}
		if !found {
			t.Fatalf("namespace %s not in the forwarded list of %d", ns, len(list.Items))
		}
		// The aggregated API too.
		readAll(t, p.api(http.MethodGet, k8s+"/apis/guildnet.io/v1alpha1/namespaces/"+ns+"/databases", nil), http.StatusOK)
	})

	// Both streams stay open for the removal at the end.
	var watchLines, wsEvents <-chan string
	t.Run("watch stream arrives incrementally", func(t *testing.T) {
		resp := p.api(http.MethodGet, k8s+"/api/v1/namespaces/"+ns+"/configmaps?watch=true", nil)
		if resp.StatusCode != http.StatusOK {
			readAll(t, resp, http.StatusOK)
		}
		t.Cleanup(func() { resp.Body.Close() })
		watchLines = lines(resp.Body)
		createConfigMap(t, admin, ns, "first")
		waitFor(t, watchLines, `"name":"first"`, "HTTP watch")
		// Still the same response: a second event comes through it.
		createConfigMap(t, admin, ns, "second")
		waitFor(t, watchLines, `"name":"second"`, "HTTP watch")
	})

	t.Run("WebSocket forwarding", func(t *testing.T) {
		// kube-apiserver serves a watch over WebSocket when asked to
		// upgrade.
		wsEvents, _ = p.wsFrames(k8s + "/api/v1/namespaces/" + ns + "/configmaps?watch=true")
		createConfigMap(t, admin, ns, "third")
		waitFor(t, wsEvents, `"name":"third"`, "WebSocket watch")
	})

	t.Run("bearer-token device", func(t *testing.T) {
		made, err := join.MakeJoinConfig(context.Background(), admin, join.MakeOptions{
			Namespace: ns, Name: "laptop", Server: env.KubeAPIServerURL, CertificateAuthorityData: env.AdminConfig().CAData,
		})
		if err != nil {
			t.Fatal(err)
		}
		var dev struct{ ID string }
		if err := json.Unmarshal(readAll(t, p.api(http.MethodPost, "/api/clusters?name=laptop", made.Data), http.StatusCreated), &dev); err != nil {
			t.Fatal(err)
		}
		framework.Eventually(t, 30*time.Second, "the device lists configmaps in its namespace", func(ctx context.Context) error {
			resp := p.api(http.MethodGet, "/clusters/"+dev.ID+"/k8s/api/v1/namespaces/"+ns+"/configmaps", nil)
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b, _ := io.ReadAll(resp.Body)
				return fmt.Errorf("%s: %s", resp.Status, b)
			}
			return nil
		})
		// The cluster's refusal comes through as the cluster said it.
		st := readStatus(t, p.api(http.MethodGet, "/clusters/"+dev.ID+"/k8s/api/v1/namespaces/default/configmaps", nil), http.StatusForbidden)
		if !strings.Contains(st.Message, "system:serviceaccount:"+ns+":laptop") {
			t.Fatalf("forbidden for whom? %s", st.Message)
		}
	})

	t.Run("workspace origin", func(t *testing.T) {
		var open struct{ URL string }
		if err := json.Unmarshal(readAll(t, p.api(http.MethodPost, "/api/clusters/"+joined.ID+"/workspaces/"+ns+"/code/open", nil), http.StatusOK), &open); err != nil {
			t.Fatal(err)
		}
		u, err := url.Parse(open.URL)
		if err != nil {
			t.Fatal(err)
		}
		wantHost := fmt.Sprintf("code--%s--%s.localhost:%d", ns, joined.ID, p.port)
		if u.Host != wantHost {
			t.Fatalf("workspace URL %s, want host %s", open.URL, wantHost)
		}
		resp := p.do(http.MethodGet, u.Host, u.RequestURI(), nil)
		readAll(t, resp, http.StatusSeeOther)
		var wc *http.Cookie
		for _, c := range resp.Cookies() {
			if c.Name == server.WorkspaceCookie {
				wc = c
			}
		}
		prefix := "/apis/guildnet.io/v1alpha1/namespaces/" + ns + "/workspaces/code/proxy"
		if wc == nil || resp.Header.Get("Location") != prefix+"/" {
			t.Fatalf("redeeming the ticket: cookie %v, Location %q", wc, resp.Header.Get("Location"))
		}
		// The proxy path goes to guildnet-apiserver unchanged: there is no
		// such workspace, and it says so.
		st := readStatus(t, p.do(http.MethodGet, u.Host, prefix+"/", nil, wc), http.StatusNotFound)
		if !strings.Contains(st.Message, `"code"`) {
			t.Fatalf("workspace proxy answered %q", st.Message)
		}
		// Nothing else of the cluster is reachable from that origin.
		readAll(t, p.do(http.MethodGet, u.Host, "/api/v1/namespaces/"+ns+"/configmaps", nil, wc), http.StatusForbidden)
		readAll(t, p.do(http.MethodGet, u.Host, k8s+"/api/v1/namespaces", nil, wc), http.StatusForbidden)
	})

	t.Run("removing a cluster stops forwarding", func(t *testing.T) {
		readStatus(t, p.api(http.MethodDelete, "/api/clusters/"+joined.ID, nil), http.StatusOK)
		waitClosed(t, watchLines, "the HTTP watch")
		waitClosed(t, wsEvents, "the WebSocket watch")
		st := readStatus(t, p.api(http.MethodGet, k8s+"/api/v1/namespaces", nil), http.StatusNotFound)
		if !strings.Contains(st.Message, joined.ID) {
			t.Fatalf("404 message %q does not name the cluster", st.Message)
		}
	})

	if rest := p.stop(); rest != "" {
		t.Fatalf("serve printed more than its one line on stdout: %q", rest)
	}

	t.Run("restart keeps token and session", func(t *testing.T) {
		again := startPortal(t, stateDir)
		if again.token != p.token {
			t.Fatal("the token changed across a restart")
		}
		again.cookie = p.cookie
		if b := readAll(t, again.api(http.MethodGet, "/api/clusters", nil), http.StatusOK); !strings.Contains(string(b), `"id":"laptop"`) {
			t.Fatalf("after the restart the portal lists %s", b)
		}
	})
}

// serve listens on loopback only, unless told otherwise.
func TestPortalServeRefusesRemoteListen(t *testing.T) {
	cmd := cli.NewCommand()
	cmd.SetArgs([]string{"serve", "--state-dir", t.TempDir(), "--listen", "0.0.0.0:0"})
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	err := cmd.Execute()
	if err == nil || !strings.Contains(err.Error(), "--allow-remote") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("serve --listen 0.0.0.0:0: %v; want a one-line refusal naming --allow-remote", err)
	}
	if out.Len() != 0 {
		t.Fatalf("a refused serve printed %q", out.String())
	}
}
