package server

import (
	"bufio"
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/guildnet/guildnet/portal/store"
)

const (
	deviceToken = "device-token"
	testToken   = "0123456789abcdefghijklmnopqrstuvwxyzABCDEF"
	wsPrefix    = "/apis/guildnet.io/v1alpha1/namespaces/team/workspaces/code/proxy"
)

// seen is what the fake cluster received.
type seen struct {
	Method, Path, RawPath, Query, Proto string
	Header                              http.Header
}

// fakeCluster is a kube-apiserver stand-in over HTTPS (HTTP/2 enabled, as
// the real one) that demands the device's bearer token.
type fakeCluster struct {
	*httptest.Server
	mu   sync.Mutex
	seen []seen
	// release lets /stream send its second line.
	release chan struct{}
}

func newFakeCluster(t *testing.T) *fakeCluster {
	t.Helper()
	fc := &fakeCluster{release: make(chan struct{})}
	fc.Server = httptest.NewUnstartedServer(http.HandlerFunc(fc.serve))
	fc.EnableHTTP2 = true
	fc.Config.ErrorLog = log.New(io.Discard, "", 0)
	fc.StartTLS()
	t.Cleanup(fc.Close)
	return fc
}

func (fc *fakeCluster) last() seen {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	if len(fc.seen) == 0 {
		return seen{}
	}
	return fc.seen[len(fc.seen)-1]
}

func (fc *fakeCluster) serve(w http.ResponseWriter, r *http.Request) {
	fc.mu.Lock()
	fc.seen = append(fc.seen, seen{Method: r.Method, Proto: r.Proto, Path: r.URL.Path, RawPath: r.URL.RawPath, Query: r.URL.RawQuery, Header: r.Header.Clone()})
	fc.mu.Unlock()
	if r.Header.Get("Authorization") != "Bearer "+deviceToken {
		writeStatus(w, http.StatusUnauthorized, metav1.StatusReasonUnauthorized, "Unauthorized")
		return
	}
	// Headers the portal must drop on its own host.
	w.Header().Set("Set-Cookie", "cluster=1; Path=/; SameSite=Lax")
	w.Header().Set("Access-Control-Allow-Origin", "*")
	switch {
	case r.URL.Path == "/apis/guildnet.io/v1alpha1":
		writeJSON(w, http.StatusOK, metav1.APIResourceList{
			TypeMeta: metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"}, GroupVersion: "guildnet.io/v1alpha1",
			APIResources: []metav1.APIResource{{Name: "workspaces"}, {Name: "workspaces/proxy"}},
		})
	case r.URL.Path == "/stream":
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintln(w, `{"type":"ADDED"}`)
		w.(http.Flusher).Flush()
		select {
		case <-fc.release:
			fmt.Fprintln(w, `{"type":"MODIFIED"}`)
		case <-r.Context().Done():
		}
	case r.URL.Path == "/ws" || r.URL.Path == wsPrefix+"/ws":
		if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			http.Error(w, "want a WebSocket upgrade", http.StatusBadRequest)
			return
		}
		conn, brw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		fmt.Fprintf(brw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Protocol: %s\r\n\r\n", r.Header.Get("Sec-WebSocket-Protocol"))
		brw.Flush()
		// An echo: good enough to show both directions are joined.
		for {
			line, err := brw.ReadString('\n')
			if err != nil {
				return
			}
			brw.WriteString("echo " + line)
			brw.Flush()
		}
	case strings.HasPrefix(r.URL.Path, wsPrefix+"/"):
		w.Header().Del("Set-Cookie")
		w.Header().Add("Set-Cookie", "app=1; Path="+wsPrefix+"/; SameSite=Lax; HttpOnly")
		w.Header().Add("Set-Cookie", WorkspaceCookie+"=forged; Path=/")
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, "<p>workspace page</p>")
	default:
		writeJSON(w, http.StatusOK, map[string]string{"path": r.URL.Path})
	}
}

func (fc *fakeCluster) caPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: fc.Certificate().Raw})
}

// kubeconfig is a device kubeconfig for the fake cluster.
func (fc *fakeCluster) kubeconfig(t *testing.T) []byte {
	t.Helper()
	kc := clientcmdapi.NewConfig()
	kc.Clusters["fake"] = &clientcmdapi.Cluster{Server: fc.URL, CertificateAuthorityData: fc.caPEM()}
	kc.AuthInfos["device"] = &clientcmdapi.AuthInfo{Token: deviceToken}
	kc.Contexts["device@fake"] = &clientcmdapi.Context{Cluster: "fake", AuthInfo: "device", Namespace: "team"}
	kc.CurrentContext = "device@fake"
	data, err := clientcmd.Write(*kc)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// portal is a Server listening on loopback, and a client that reaches it
// under any Host name.
type portal struct {
	t      *testing.T
	srv    *Server
	st     *store.Store
	port   int
	client *http.Client
	addr   string
}

func newPortal(t *testing.T, mutate ...func(*Config)) *portal {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "state"))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	cfg := Config{Store: st, Token: testToken, Port: port}
	for _, m := range mutate {
		m(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(srv)
	ts.Listener.Close()
	ts.Listener = ln
	ts.Start()
	t.Cleanup(func() {
		srv.Close()
		ts.Close()
	})
	addr := ln.Addr().String()
	client := &http.Client{
		Transport: &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       20 * time.Second,
	}
	return &portal{t: t, srv: srv, st: st, port: port, client: client, addr: addr}
}

func (p *portal) mainHost() string { return fmt.Sprintf("127.0.0.1:%d", p.port) }
func (p *portal) origin() string   { return "http://" + p.mainHost() }
func (p *portal) sessionCookie() *http.Cookie {
	return &http.Cookie{Name: SessionCookie, Value: p.srv.sessionValue}
}

// addCluster stores a cluster for fc directly (join is tested on its own).
func (p *portal) addCluster(fc *fakeCluster, name string) string {
	p.t.Helper()
	c, err := p.st.Add(store.NewCluster{Name: name, Server: fc.URL, Kubeconfig: fc.kubeconfig(p.t)})
	if err != nil {
		p.t.Fatal(err)
	}
	return c.ID
}

// req describes one request to the portal.
type req struct {
	method, host, path string
	body               string
	header             map[string]string
	cookies            []*http.Cookie
	// browser adds what a browser adds to a same-origin fetch: the
	// session cookie and, for unsafe methods, Origin.
	browser bool
}

func (p *portal) do(r req) *http.Response {
	p.t.Helper()
	if r.method == "" {
		r.method = http.MethodGet
	}
	if r.host == "" {
		r.host = p.mainHost()
	}
	hr, err := http.NewRequest(r.method, "http://"+r.host+r.path, strings.NewReader(r.body))
	if err != nil {
		p.t.Fatal(err)
	}
	hr.Host = r.host
	if r.browser {
		hr.AddCookie(p.sessionCookie())
		if r.method != http.MethodGet && r.method != http.MethodHead {
			hr.Header.Set("Origin", "http://"+r.host)
		}
		hr.Header.Set("Sec-Fetch-Site", "same-origin")
	}
	for k, v := range r.header {
		hr.Header.Set(k, v)
	}
	for _, c := range r.cookies {
		hr.AddCookie(c)
	}
	resp, err := p.client.Do(hr)
	if err != nil {
		p.t.Fatalf("%s %s%s: %v", r.method, r.host, r.path, err)
	}
	return resp
}

// body reads and closes resp's body.
func body(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// expect checks resp's status code and returns its body.
func expect(t *testing.T, resp *http.Response, code int) string {
	t.Helper()
	b := body(t, resp)
	if resp.StatusCode != code {
		t.Fatalf("%s %s: status %d, want %d; body: %s", resp.Request.Method, resp.Request.URL, resp.StatusCode, code, b)
	}
	return b
}

// expectStatus checks that resp is a Status with code and reason.
func expectStatus(t *testing.T, resp *http.Response, code int, reason metav1.StatusReason) metav1.Status {
	t.Helper()
	b := expect(t, resp, code)
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("%s: Content-Type %q, want application/json; body %s", resp.Request.URL, ct, b)
	}
	var st metav1.Status
	if err := json.Unmarshal([]byte(b), &st); err != nil || st.Kind != "Status" {
		t.Fatalf("%s: not a Status: %v: %s", resp.Request.URL, err, b)
	}
	if reason != "" && st.Reason != reason {
		t.Fatalf("%s: reason %q, want %q; message %q", resp.Request.URL, st.Reason, reason, st.Message)
	}
	if st.Message == "" {
		t.Fatalf("%s: Status without a message: %s", resp.Request.URL, b)
	}
	return st
}

// upgrade sends a WebSocket-style upgrade over a raw connection and
// returns the connection and the status line and headers it got.
func (p *portal) upgrade(host, path string, header map[string]string) (net.Conn, *bufio.Reader, *http.Response) {
	p.t.Helper()
	conn, err := net.Dial("tcp", p.addr)
	if err != nil {
		p.t.Fatal(err)
	}
	p.t.Cleanup(func() { conn.Close() })
	hr, _ := http.NewRequest(http.MethodGet, "http://"+host+path, nil)
	hr.Host = host
	hr.Header.Set("Connection", "Upgrade")
	hr.Header.Set("Upgrade", "websocket")
	hr.Header.Set("Sec-WebSocket-Version", "13")
	hr.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	for k, v := range header {
		hr.Header.Set(k, v)
	}
	if err := hr.Write(conn); err != nil {
		p.t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, hr)
	if err != nil {
		p.t.Fatalf("upgrade %s%s: %v", host, path, err)
	}
	return conn, br, resp
}

// workspaceHost is the host of workspace team/code of cluster id.
func (p *portal) workspaceHost(id string) string {
	return fmt.Sprintf("code--team--%s.localhost:%d", id, p.port)
}

// openWorkspace asks for a one-time URL and returns it parsed.
func (p *portal) openWorkspace(id, ns, name string) *url.URL {
	p.t.Helper()
	resp := p.do(req{method: http.MethodPost, path: "/api/clusters/" + id + "/workspaces/" + ns + "/" + name + "/open", browser: true})
	b := expect(p.t, resp, http.StatusOK)
	var out struct{ URL string }
	if err := json.Unmarshal([]byte(b), &out); err != nil {
		p.t.Fatal(err)
	}
	u, err := url.Parse(out.URL)
	if err != nil {
		p.t.Fatal(err)
	}
	return u
}
