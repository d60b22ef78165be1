package server

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestTokenFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", TokenFileName)
	tok, err := LoadOrCreateToken(path)
	if err != nil {
		t.Fatal(err)
	}
	if !tokenPattern.MatchString(tok) || len(tok) < 43 {
		t.Fatalf("token %q is not 256 bits of base64url", tok)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v, mode %v; want 0600", err, fi.Mode().Perm())
	}
	again, err := LoadOrCreateToken(path)
	if err != nil || again != tok {
		t.Fatalf("second load = %q, %v; want the same token", again, err)
	}
	leftovers, _ := filepath.Glob(path + ".new-*")
	if len(leftovers) != 0 {
		t.Fatalf("temporary files left: %v", leftovers)
	}

	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateToken(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable token: %v; want a refusal saying chmod 600", err)
	}
	if err := os.WriteFile(path, []byte("short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateToken(path); err == nil || !strings.Contains(err.Error(), "delete it") {
		t.Fatalf("garbage token: %v; want a refusal saying to delete the file", err)
	}
}

func TestSession(t *testing.T) {
	p := newPortal(t)

	// No session: a page for browsers, a Status for the API.
	resp := p.do(req{path: "/"})
	if b := expect(t, resp, http.StatusUnauthorized); !strings.Contains(b, "guildnet-portal serve printed") {
		t.Fatalf("401 page does not say what to do: %s", b)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Fatalf("401 page Content-Type %q", ct)
	}
	expectStatus(t, p.do(req{path: "/api/clusters"}), http.StatusUnauthorized, metav1.StatusReasonUnauthorized)
	expectStatus(t, p.do(req{path: "/clusters/x/k8s/api"}), http.StatusUnauthorized, metav1.StatusReasonUnauthorized)

	// A wrong token sets nothing.
	resp = p.do(req{path: "/?token=" + strings.Repeat("x", len(testToken))})
	expect(t, resp, http.StatusUnauthorized)
	if len(resp.Cookies()) != 0 {
		t.Fatalf("wrong token set cookies: %v", resp.Cookies())
	}

	// The printed URL: a cookie and a redirect to / without the token.
	resp = p.do(req{path: "/?token=" + testToken, header: map[string]string{"Sec-Fetch-Site": "none", "Sec-Fetch-Mode": "navigate"}})
	expect(t, resp, http.StatusSeeOther)
	if loc := resp.Header.Get("Location"); loc != "/" {
		t.Fatalf("redirect to %q, want /", loc)
	}
	cookie := findCookie(t, resp, SessionCookie)
	if !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode || cookie.Path != "/" || cookie.Domain != "" || cookie.Secure {
		t.Fatalf("session cookie %s: want HttpOnly, SameSite=Strict, Path=/, host-only, not Secure (plain http)", cookie.Raw)
	}
	expect(t, p.do(req{path: "/api/clusters", cookies: []*http.Cookie{cookie}}), http.StatusOK)
	expect(t, p.do(req{path: "/", cookies: []*http.Cookie{cookie}}), http.StatusOK)

	// Clicked in another site's page: the Strict cookie would not travel
	// along a redirect, so the page moves on by itself.
	resp = p.do(req{path: "/?token=" + testToken, header: map[string]string{"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"}})
	b := expect(t, resp, http.StatusOK)
	if !strings.Contains(b, `http-equiv="refresh" content="0;url=/"`) {
		t.Fatalf("cross-site token exchange page does not move on to /: %s", b)
	}
	findCookie(t, resp, SessionCookie)

	// Any cookie value other than the right one is no session.
	expect(t, p.do(req{path: "/api/clusters", cookies: []*http.Cookie{{Name: SessionCookie, Value: "guess"}}}), http.StatusUnauthorized)
}

func findCookie(t *testing.T, resp *http.Response, name string) *http.Cookie {
	t.Helper()
	for _, c := range resp.Cookies() {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("%s: no %s cookie set (Set-Cookie %q)", resp.Request.URL, name, resp.Header.Values("Set-Cookie"))
	return nil
}

func TestHostAllowList(t *testing.T) {
	p := newPortal(t, func(c *Config) { c.ExtraHosts = []string{"portal.lan"} })
	port := fmt.Sprint(p.port)
	for _, host := range []string{
		"evil.example:" + port,         // DNS rebinding
		"127.0.0.1:1",                  // another port
		"127.0.0.1",                    // no port (means 80)
		"sub.localhost:" + port,        // not a workspace label
		"a.b--c--d.localhost:" + port,  // two labels
		"a--b--c--d.localhost:" + port, // four parts: ambiguous
		"localhost.:" + port,
	} {
		resp := p.do(req{host: host, path: "/api/clusters", browser: true})
		if b := expect(t, resp, http.StatusMisdirectedRequest); !strings.Contains(b, "answers only to") {
			t.Fatalf("Host %s: message %q does not say which hosts are served", host, b)
		}
	}
	for _, host := range []string{"127.0.0.1", "localhost", "[::1]", "LOCALHOST", "portal.lan"} {
		expect(t, p.do(req{host: fmt.Sprintf("%s:%d", host, p.port), path: "/api/clusters", browser: true}), http.StatusOK)
	}
}

// TestAllowHostHook: Config.AllowHost admits the Hosts of another listener
// (the tailnet one), with their own port, and only those; the Origin check
// then holds the request to that host's own origin.
func TestAllowHostHook(t *testing.T) {
	var (
		mu    sync.Mutex
		asked []string
	)
	taken := func() []string {
		mu.Lock()
		defer mu.Unlock()
		out := asked
		asked = nil
		return out
	}
	p := newPortal(t, func(c *Config) {
		c.AllowHost = func(host string, port int) bool {
			mu.Lock()
			asked = append(asked, fmt.Sprintf("%s %d", host, port))
			mu.Unlock()
			return port == 80 && (host == "portal.tail-scale.ts.net" || host == "100.64.0.1" || host == "fd7a:115c:a1e0::1")
		}
	})
	for _, host := range []string{"portal.tail-scale.ts.net", "Portal.Tail-Scale.TS.net:80", "100.64.0.1", "[fd7a:115c:a1e0::1]"} {
		expect(t, p.do(req{host: host, path: "/api/clusters", browser: true}), http.StatusOK)
	}
	// A state-changing request on that host must come from its origin, not
	// the loopback one (nor the other way round).
	expectStatus(t, p.do(req{method: http.MethodPost, host: "portal.tail-scale.ts.net", path: "/api/clusters", browser: true,
		header: map[string]string{"Origin": p.origin()}}), http.StatusForbidden, metav1.StatusReasonForbidden)
	expectStatus(t, p.do(req{method: http.MethodPost, path: "/api/clusters", browser: true,
		header: map[string]string{"Origin": "http://portal.tail-scale.ts.net"}}), http.StatusForbidden, metav1.StatusReasonForbidden)
	expectStatus(t, p.do(req{method: http.MethodPost, host: "portal.tail-scale.ts.net", path: "/api/clusters", browser: true}),
		http.StatusBadRequest, metav1.StatusReasonBadRequest)

	taken()
	for _, host := range []string{"portal.tail-scale.ts.net:8080", "evil.example", "100.64.0.2"} {
		expect(t, p.do(req{host: host, path: "/api/clusters", browser: true}), http.StatusMisdirectedRequest)
	}
	if got, want := taken(), []string{"portal.tail-scale.ts.net 8080", "evil.example 80", "100.64.0.2 80"}; !slices.Equal(got, want) {
		t.Fatalf("AllowHost asked about %q, want %q", got, want)
	}
	// The portal's own names never reach the hook.
	expect(t, p.do(req{path: "/api/clusters", browser: true}), http.StatusOK)
	if got := taken(); len(got) != 0 {
		t.Fatalf("AllowHost asked about the portal's own host: %q", got)
	}
}

func TestCrossSiteRequestsRefused(t *testing.T) {
	p := newPortal(t)
	id := p.addCluster(newFakeCluster(t), "prod")
	wsOrigin := "http://" + p.workspaceHost(id)
	for _, tc := range []struct {
		name   string
		r      req
		reason string
	}{
		{"POST from another origin", req{method: http.MethodPost, path: "/api/clusters", header: map[string]string{"Origin": "http://evil.example"}}, "origin http://evil.example"},
		{"POST from a workspace origin", req{method: http.MethodPost, path: "/api/clusters", header: map[string]string{"Origin": wsOrigin}}, "origin " + wsOrigin},
		{"POST from localhost to 127.0.0.1", req{method: http.MethodPost, path: "/api/clusters", header: map[string]string{"Origin": fmt.Sprintf("http://localhost:%d", p.port)}}, "only pages of"},
		{"POST without Origin", req{method: http.MethodPost, path: "/api/clusters"}, "without an Origin"},
		{"DELETE without Origin", req{method: http.MethodDelete, path: "/api/clusters/" + id}, "without an Origin"},
		{"GET from another origin", req{path: "/api/clusters", header: map[string]string{"Origin": "http://evil.example"}}, "origin"},
		{"cross-site GET", req{path: "/api/clusters", header: map[string]string{"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "cors"}}, "Sec-Fetch-Site: cross-site"},
		{"same-site GET (a workspace or another port)", req{path: "/clusters/" + id + "/k8s/api", header: map[string]string{"Sec-Fetch-Site": "same-site", "Sec-Fetch-Mode": "no-cors"}}, "Sec-Fetch-Site: same-site"},
		{"cross-site navigation to the API", req{path: "/clusters/" + id + "/k8s/api", header: map[string]string{"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"}}, "Sec-Fetch-Site: cross-site"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.r.cookies = []*http.Cookie{p.sessionCookie()}
			resp := p.do(tc.r)
			var msg string
			if strings.HasPrefix(tc.r.path, "/api") || strings.HasPrefix(tc.r.path, "/clusters") {
				msg = expectStatus(t, resp, http.StatusForbidden, metav1.StatusReasonForbidden).Message
			} else {
				msg = expect(t, resp, http.StatusForbidden)
			}
			if !strings.Contains(msg, tc.reason) {
				t.Fatalf("message %q does not contain %q", msg, tc.reason)
			}
		})
	}
	if cs, _ := p.st.List(); len(cs) != 1 {
		t.Fatalf("a refused request changed the store: %v", cs)
	}

	// A cross-site page load of the UI is allowed (it just shows the UI,
	// or the sign-in page when the Strict cookie stays behind).
	expect(t, p.do(req{path: "/", cookies: []*http.Cookie{p.sessionCookie()}, header: map[string]string{"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"}}), http.StatusOK)

	// WebSocket upgrades need an Origin, and the right one.
	_, _, resp := p.upgrade(p.mainHost(), "/clusters/"+id+"/k8s/ws", map[string]string{"Cookie": SessionCookie + "=" + p.srv.sessionValue})
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("upgrade without Origin: %d, want 403", resp.StatusCode)
	}
	_, _, resp = p.upgrade(p.mainHost(), "/clusters/"+id+"/k8s/ws", map[string]string{"Cookie": SessionCookie + "=" + p.srv.sessionValue, "Origin": wsOrigin})
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("upgrade from a workspace origin: %d, want 403", resp.StatusCode)
	}
}

func TestSecurityHeaders(t *testing.T) {
	p := newPortal(t)
	id := p.addCluster(newFakeCluster(t), "prod")
	check := func(resp *http.Response, want map[string]string) {
		t.Helper()
		body(t, resp)
		for k, v := range want {
			got := strings.Join(resp.Header.Values(k), " | ")
			if !strings.Contains(got, v) {
				t.Errorf("%s %s: %s = %q, want it to contain %q", resp.Request.Host, resp.Request.URL.Path, k, got, v)
			}
		}
	}
	common := map[string]string{"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY"}
	with := func(m map[string]string) map[string]string {
		out := map[string]string{}
		for k, v := range common {
			out[k] = v
		}
		for k, v := range m {
			out[k] = v
		}
		return out
	}
	check(p.do(req{path: "/", browser: true}), with(map[string]string{
		"Content-Security-Policy": fmt.Sprintf("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; connect-src 'self' ws://127.0.0.1:%d; frame-src http://*.localhost:%d; frame-ancestors 'none'", p.port, p.port),
	}))
	check(p.do(req{path: "/api/clusters", browser: true}), with(map[string]string{
		"Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'; sandbox", "Cache-Control": "no-store",
		"Cross-Origin-Resource-Policy": "same-origin",
	}))
	check(p.do(req{path: "/api/clusters"}), with(map[string]string{"Cache-Control": "no-store"})) // the 401 too
	resp := p.do(req{path: "/clusters/" + id + "/k8s/api/v1/namespaces", browser: true})
	check(resp, with(map[string]string{"Content-Security-Policy": "sandbox", "Cache-Control": "no-store"}))
	if v := resp.Header.Values("Cache-Control"); len(v) != 1 {
		t.Errorf("forwarded answer has Cache-Control %q; want the portal's only", v)
	}

	// A workspace host may be framed by the portal's origins only.
	resp = p.do(req{host: p.workspaceHost(id), path: wsPrefix + "/"})
	body(t, resp)
	csp := resp.Header.Get("Content-Security-Policy")
	for _, want := range []string{"frame-ancestors 'self'", fmt.Sprintf("http://127.0.0.1:%d", p.port), fmt.Sprintf("http://localhost:%d", p.port)} {
		if !strings.Contains(csp, want) {
			t.Errorf("workspace host CSP %q lacks %q", csp, want)
		}
	}
	if resp.Header.Get("X-Frame-Options") != "" {
		t.Errorf("workspace host sends X-Frame-Options %q; the portal must be able to frame it", resp.Header.Get("X-Frame-Options"))
	}
	if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("workspace host lacks nosniff")
	}
}

func TestForwarding(t *testing.T) {
	fc := newFakeCluster(t)
	p := newPortal(t)
	id := p.addCluster(fc, "prod")

	// The browser's own credentials and the portal's cookie never reach
	// the cluster; the stored token does.
	resp := p.do(req{path: "/clusters/" + id + "/k8s/api/v1/namespaces/team/configmaps/a%2Fb?limit=5", browser: true, header: map[string]string{
		"Authorization":    "Bearer stolen",
		"Impersonate-User": "system:admin",
		"X-Remote-User":    "admin",
	}, cookies: []*http.Cookie{{Name: "other", Value: "x"}}})
	if b := expect(t, resp, http.StatusOK); !strings.Contains(b, `"path":"/api/v1/namespaces/team/configmaps/a/b"`) {
		t.Fatalf("unexpected answer %s", b)
	}
	got := fc.last()
	if got.Proto != "HTTP/2.0" {
		t.Fatalf("plain request reached the cluster over %s, want HTTP/2.0 (client-go's transport)", got.Proto)
	}
	if got.RawPath != "/api/v1/namespaces/team/configmaps/a%2Fb" || got.Query != "limit=5" {
		t.Fatalf("cluster got path %q (raw %q) query %q; want the escaped path and the query unchanged", got.Path, got.RawPath, got.Query)
	}
	if a := got.Header.Get("Authorization"); a != "Bearer "+deviceToken {
		t.Fatalf("cluster got Authorization %q, want the stored token", a)
	}
	for _, h := range []string{"Cookie", "Impersonate-User", "X-Remote-User"} {
		if v := got.Header.Get(h); v != "" {
			t.Fatalf("cluster got %s: %q", h, v)
		}
	}
	if resp.Header.Get("Set-Cookie") != "" || resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("cluster's Set-Cookie/CORS reached the portal's host: %v", resp.Header)
	}

	// Errors of the cluster come through as they are.
	expectStatus(t, p.do(req{path: "/clusters/nope/k8s/api", browser: true}), http.StatusNotFound, metav1.StatusReasonNotFound)
	expectStatus(t, p.do(req{path: "/clusters/" + id + "/other", browser: true}), http.StatusNotFound, metav1.StatusReasonNotFound)

	// The bare /k8s is the API root.
	expect(t, p.do(req{path: "/clusters/" + id + "/k8s", browser: true}), http.StatusOK)
	if got := fc.last(); got.Path != "/" {
		t.Fatalf("/clusters/%s/k8s went to %q, want /", id, got.Path)
	}
}

func TestForwardingStreams(t *testing.T) {
	fc := newFakeCluster(t)
	p := newPortal(t)
	id := p.addCluster(fc, "prod")

	resp := p.do(req{path: "/clusters/" + id + "/k8s/stream", browser: true})
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	lines := make(chan string)
	go func() {
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				close(lines)
				return
			}
			lines <- l
		}
	}()
	select {
	case l := <-lines:
		if !strings.Contains(l, "ADDED") {
			t.Fatalf("first line %q", l)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the first event of a stream did not arrive before the stream ended: the portal buffers")
	}
	close(fc.release)
	if l := <-lines; !strings.Contains(l, "MODIFIED") {
		t.Fatalf("second line %q", l)
	}
}

func TestForwardingWebSocket(t *testing.T) {
	fc := newFakeCluster(t)
	p := newPortal(t)
	id := p.addCluster(fc, "prod")

	conn, br, resp := p.upgrade(p.mainHost(), "/clusters/"+id+"/k8s/ws", map[string]string{
		"Cookie":                 SessionCookie + "=" + p.srv.sessionValue,
		"Origin":                 p.origin(),
		"Sec-WebSocket-Protocol": "base64url.bearer.authorization.k8s.io.c3RvbGVu, v4.channel.k8s.io",
	})
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %d", resp.StatusCode)
	}
	if proto := resp.Header.Get("Sec-WebSocket-Protocol"); proto != "v4.channel.k8s.io" {
		t.Fatalf("cluster saw subprotocols %q; want the bearer one stripped", proto)
	}
	if got := fc.last(); got.Header.Get("Authorization") != "Bearer "+deviceToken || got.Header.Get("Cookie") != "" {
		t.Fatalf("upgrade reached the cluster with Authorization %q, Cookie %q", got.Header.Get("Authorization"), got.Header.Get("Cookie"))
	}
	// The cluster speaks HTTP/2, and the upgrade still went over HTTP/1.1.
	if got := fc.last(); got.Proto != "HTTP/1.1" {
		t.Fatalf("upgrade reached the cluster over %s", got.Proto)
	}
	fmt.Fprintf(conn, "hello\n")
	line, err := br.ReadString('\n')
	if err != nil || line != "echo hello\n" {
		t.Fatalf("through the upgraded connection: %q, %v", line, err)
	}

	// Removing the cluster cuts the open connection and stops forwarding.
	expectStatus(t, p.do(req{method: http.MethodDelete, path: "/api/clusters/" + id, browser: true}), http.StatusOK, "")
	if _, err := br.ReadString('\n'); err == nil {
		t.Fatal("the WebSocket of a removed cluster is still open")
	}
	expectStatus(t, p.do(req{path: "/clusters/" + id + "/k8s/api", browser: true}), http.StatusNotFound, metav1.StatusReasonNotFound)
}

func TestRemovedByAnotherProcess(t *testing.T) {
	fc := newFakeCluster(t)
	p := newPortal(t)
	id := p.addCluster(fc, "prod")
	resp := p.do(req{path: "/clusters/" + id + "/k8s/stream", browser: true})
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	if _, err := br.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	// The CLI removes it: the portal notices within its sweep interval.
	if err := p.st.Remove(id); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := br.ReadString('\n'); done <- err }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("stream went on after the cluster was removed")
		}
	case <-time.After(3 * sweepInterval):
		t.Fatal("stream of a cluster removed by another process still open")
	}
}

func TestClusterAPI(t *testing.T) {
	fc := newFakeCluster(t)
	p := newPortal(t, func(c *Config) { c.JoinTimeout = 3 * time.Second })

	assertEmpty := func() {
		t.Helper()
		b := expect(t, p.do(req{path: "/api/clusters", browser: true}), http.StatusOK)
		if strings.TrimSpace(b) != `{"items":[]}` {
			t.Fatalf("list = %s, want no clusters", b)
		}
	}
	assertEmpty()

	post := func(query, file string) *http.Response {
		return p.do(req{method: http.MethodPost, path: "/api/clusters" + query, body: file, browser: true})
	}
	// Failed joins store nothing and say why.
	st := expectStatus(t, post("", "not: [a kubeconfig"), http.StatusBadRequest, metav1.StatusReasonBadRequest)
	t.Logf("garbage: %s", st.Message)
	plugin := strings.Replace(string(fc.kubeconfig(t)), "token: device-token", "exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: get-token\n      interactiveMode: Never", 1)
	st = expectStatus(t, post("", plugin), http.StatusUnprocessableEntity, ReasonPluginRefused)
	if strings.Contains(st.Message, "--allow") || !strings.Contains(st.Message, "get-token") {
		t.Fatalf("plugin refusal message %q should name the command and not a CLI flag", st.Message)
	}
	unreachable := strings.Replace(string(fc.kubeconfig(t)), fc.URL, "https://127.0.0.1:1", 1)
	st = expectStatus(t, post("", unreachable), http.StatusBadGateway, "Unreachable")
	t.Logf("unreachable: %s", st.Message)
	wrongToken := strings.Replace(string(fc.kubeconfig(t)), deviceToken, "wrong", 1)
	expectStatus(t, post("", wrongToken), http.StatusBadGateway, "Unauthorized")
	expectStatus(t, post("?allowPlugins=maybe", string(fc.kubeconfig(t))), http.StatusBadRequest, metav1.StatusReasonBadRequest)
	expectStatus(t, post("", strings.Repeat("x", maxJoinFile+1)), http.StatusRequestEntityTooLarge, metav1.StatusReasonRequestEntityTooLarge)
	assertEmpty()

	// A good join.
	b := expect(t, post("?name=Production", string(fc.kubeconfig(t))), http.StatusCreated)
	want := fmt.Sprintf(`{"id":"production","name":"Production","server":%q,"settings":{"defaultNamespace":"team","imagePullSecret":"","defaultExposure":"ClusterIP"}}`, fc.URL)
	if strings.TrimSpace(b) != want {
		t.Fatalf("join answered\n%s\nwant\n%s", b, want)
	}
	b = expect(t, p.do(req{path: "/api/clusters", browser: true}), http.StatusOK)
	if strings.TrimSpace(b) != `{"items":[`+want+`]}` {
		t.Fatalf("list = %s", b)
	}

	// Settings.
	put := func(body string) *http.Response {
		return p.do(req{method: http.MethodPut, path: "/api/clusters/production/settings", body: body, browser: true})
	}
	b = expect(t, put(`{"defaultNamespace":"dev","imagePullSecret":"regcred","defaultExposure":"LoadBalancer"}`), http.StatusOK)
	if strings.TrimSpace(b) != `{"defaultNamespace":"dev","imagePullSecret":"regcred","defaultExposure":"LoadBalancer"}` {
		t.Fatalf("settings = %s", b)
	}
	expectStatus(t, put(`{"defaultNamespace":"Not Valid"}`), http.StatusUnprocessableEntity, metav1.StatusReasonInvalid)
	expectStatus(t, put(`{"defaultNamspace":"dev"}`), http.StatusBadRequest, metav1.StatusReasonBadRequest)
	expectStatus(t, p.do(req{method: http.MethodPut, path: "/api/clusters/nope/settings", body: `{}`, browser: true}), http.StatusNotFound, metav1.StatusReasonNotFound)

	// Export.
	resp := p.do(req{path: "/api/clusters/production/export", browser: true})
	b = expect(t, resp, http.StatusOK)
	if !strings.Contains(b, "kind: JoinConfig") || !strings.Contains(resp.Header.Get("Content-Disposition"), `attachment; filename="production.guildnet.config"`) {
		t.Fatalf("export: %v\n%s", resp.Header, b)
	}

	// Methods and unknown paths are Status errors too.
	expectStatus(t, p.do(req{method: http.MethodPatch, path: "/api/clusters", browser: true}), http.StatusMethodNotAllowed, metav1.StatusReasonMethodNotAllowed)
	expectStatus(t, p.do(req{path: "/api/nothing", browser: true}), http.StatusNotFound, metav1.StatusReasonNotFound)

	// Remove.
	expectStatus(t, p.do(req{method: http.MethodDelete, path: "/api/clusters/production", browser: true}), http.StatusOK, "")
	expectStatus(t, p.do(req{method: http.MethodDelete, path: "/api/clusters/production", browser: true}), http.StatusNotFound, metav1.StatusReasonNotFound)
	assertEmpty()
}

func TestWorkspaceOrigin(t *testing.T) {
	fc := newFakeCluster(t)
	p := newPortal(t)
	id := p.addCluster(fc, "prod")
	host := p.workspaceHost(id)

	u := p.openWorkspace(id, "team", "code")
	if u.Host != host || u.Path != OpenPath || u.Query().Get("ticket") == "" {
		t.Fatalf("open URL %s; want http://%s%s?ticket=…", u, host, OpenPath)
	}
	ticketPath := u.RequestURI()

	// Redeem: a cookie for this host only, and on to the proxy path.
	resp := p.do(req{host: host, path: ticketPath, header: map[string]string{"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "iframe"}})
	expect(t, resp, http.StatusSeeOther)
	if loc := resp.Header.Get("Location"); loc != wsPrefix+"/" {
		t.Fatalf("redirect to %q, want %s/", loc, wsPrefix)
	}
	wc := findCookie(t, resp, WorkspaceCookie)
	if !wc.HttpOnly || !wc.Secure || wc.SameSite != http.SameSiteNoneMode || !wc.Partitioned || wc.Domain != "" {
		t.Fatalf("workspace cookie %s: want HttpOnly; Secure; SameSite=None; Partitioned; host-only", wc.Raw)
	}
	// Once only.
	if b := expect(t, p.do(req{host: host, path: ticketPath}), http.StatusForbidden); !strings.Contains(b, "Open the workspace again from the portal") {
		t.Fatalf("second use of a ticket: %s", b)
	}

	ws := func(path string, extra ...*http.Cookie) *http.Response {
		return p.do(req{host: host, path: path, cookies: append([]*http.Cookie{wc}, extra...), header: map[string]string{"Sec-Fetch-Site": "same-origin"}})
	}
	// The workspace, forwarded unchanged; the app's cookies kept (made
	// partitioned), the portal's not.
	resp = ws(wsPrefix+"/index.html", &http.Cookie{Name: "app", Value: "1"})
	if b := expect(t, resp, http.StatusOK); !strings.Contains(b, "workspace page") {
		t.Fatalf("workspace answered %s", b)
	}
	got := fc.last()
	if got.Path != wsPrefix+"/index.html" || got.Header.Get("Cookie") != "app=1" || got.Header.Get("Authorization") != "Bearer "+deviceToken {
		t.Fatalf("cluster got %s with Cookie %q, Authorization %q", got.Path, got.Header.Get("Cookie"), got.Header.Get("Authorization"))
	}
	setCookies := resp.Header.Values("Set-Cookie")
	if len(setCookies) != 1 || !strings.Contains(setCookies[0], "app=1") || !strings.Contains(setCookies[0], "Partitioned") ||
		!strings.Contains(setCookies[0], "SameSite=None") || !strings.Contains(setCookies[0], "Secure") || !strings.Contains(setCookies[0], "Path="+wsPrefix+"/") {
		t.Fatalf("workspace Set-Cookie %q: want only app=1, partitioned, its path kept (the forged portal cookie dropped)", setCookies)
	}
	// The bare proxy path is the API server's to redirect.
	expect(t, ws(wsPrefix), http.StatusOK)

	// Nothing else on that host.
	for _, path := range []string{
		"/", "/api/clusters", "/clusters/" + id + "/k8s/api/v1/namespaces",
		"/apis/guildnet.io/v1alpha1/namespaces/team/workspaces/code",         // the object, not its proxy
		"/apis/guildnet.io/v1alpha1/namespaces/team/workspaces/other/proxy/", // another workspace
		"/api/v1/namespaces/team/secrets",                                    // same namespace, not a proxy
		"/apis/guildnet.io/v1alpha1/namespaces/team/workspaces/code/proxyx",  // a longer name
		wsPrefix + "/../../other/proxy/",                                     // climbing out
		wsPrefix + "/%2e%2e/%2e%2e/other/proxy/",                             // climbing out, escaped
	} {
		resp := p.do(req{host: host, path: path, cookies: []*http.Cookie{wc}})
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("workspace host %s: %d, want 403", path, resp.StatusCode)
		}
		body(t, resp)
	}
	if got := fc.last(); got.Path != wsPrefix {
		t.Errorf("a refused path reached the cluster: %s", got.Path)
	}

	// The main session is not a workspace session, and the other way round.
	expect(t, p.do(req{host: host, path: wsPrefix + "/", cookies: []*http.Cookie{p.sessionCookie(), {Name: WorkspaceCookie, Value: p.srv.sessionValue}}}), http.StatusUnauthorized)
	expect(t, p.do(req{path: "/api/clusters", cookies: []*http.Cookie{{Name: SessionCookie, Value: wc.Value}, wc}}), http.StatusUnauthorized)
	// Another workspace's host does not take this workspace's cookie.
	other := fmt.Sprintf("other--team--%s.localhost:%d", id, p.port)
	expect(t, p.do(req{host: other, path: "/apis/guildnet.io/v1alpha1/namespaces/team/workspaces/other/proxy/", cookies: []*http.Cookie{wc}}), http.StatusUnauthorized)
	// A ticket works only on the host it was made for.
	u = p.openWorkspace(id, "team", "code")
	expect(t, p.do(req{host: other, path: u.RequestURI()}), http.StatusForbidden)
	expect(t, p.do(req{host: host, path: u.RequestURI()}), http.StatusForbidden) // and is spent

	// Requests from other origins are refused on the workspace host too:
	// another workspace's JavaScript would carry this host's cookie.
	for _, h := range []map[string]string{
		{"Origin": "http://" + other},
		{"Sec-Fetch-Site": "same-site", "Sec-Fetch-Mode": "cors"},
		{"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors"},
	} {
		expect(t, p.do(req{host: host, path: wsPrefix + "/", cookies: []*http.Cookie{wc}, header: h}), http.StatusForbidden)
	}
	expect(t, p.do(req{method: http.MethodPost, host: host, path: wsPrefix + "/x", cookies: []*http.Cookie{wc}}), http.StatusForbidden)
	expect(t, p.do(req{method: http.MethodPost, host: host, path: wsPrefix + "/x", cookies: []*http.Cookie{wc}, header: map[string]string{"Origin": "http://" + host}}), http.StatusOK)

	// WebSockets of the workspace, from its own origin.
	conn, br, resp := p.upgrade(host, wsPrefix+"/ws", map[string]string{"Cookie": WorkspaceCookie + "=" + wc.Value, "Origin": "http://" + host})
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("workspace WebSocket: %d", resp.StatusCode)
	}
	fmt.Fprintf(conn, "hi\n")
	if line, err := br.ReadString('\n'); err != nil || line != "echo hi\n" {
		t.Fatalf("workspace WebSocket echo %q, %v", line, err)
	}
	if got := fc.last(); got.Header.Get("Origin") != "http://"+host {
		t.Fatalf("the workspace's Origin did not reach the cluster (code-server checks it): %q", got.Header.Get("Origin"))
	}
	_, _, resp = p.upgrade(host, wsPrefix+"/ws", map[string]string{"Cookie": WorkspaceCookie + "=" + wc.Value, "Origin": "http://" + other})
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("workspace WebSocket from another workspace's origin: %d, want 403", resp.StatusCode)
	}
}

func TestWorkspaceTicketExpires(t *testing.T) {
	p := newPortal(t)
	id := p.addCluster(newFakeCluster(t), "prod")
	now := time.Now()
	p.srv.tickets.now = func() time.Time { return now }
	u := p.openWorkspace(id, "team", "code")
	now = now.Add(DefaultTicketTTL + time.Second)
	expect(t, p.do(req{host: u.Host, path: u.RequestURI()}), http.StatusForbidden)
}

func TestOpenWorkspaceRefusals(t *testing.T) {
	p := newPortal(t)
	id := p.addCluster(newFakeCluster(t), "prod")
	open := func(ns, name string) *http.Response {
		return p.do(req{method: http.MethodPost, path: "/api/clusters/" + id + "/workspaces/" + ns + "/" + name + "/open", browser: true})
	}
	for _, tc := range []struct{ ns, name, msg string }{
		{"team", "a--b", "ambiguous"},
		{"my--team", "code", "ambiguous"},
		{"team", "xn", "xn--"},
		{"team", "Code", "not a workspace name"},
		{"team", strings.Repeat("a", 55), "shorter"},
	} {
		st := expectStatus(t, open(tc.ns, tc.name), http.StatusUnprocessableEntity, metav1.StatusReasonInvalid)
		if !strings.Contains(st.Message, tc.msg) {
			t.Errorf("open %s/%s: %q does not say %q", tc.ns, tc.name, st.Message, tc.msg)
		}
	}
	expectStatus(t, p.do(req{method: http.MethodPost, path: "/api/clusters/nope/workspaces/team/code/open", browser: true}), http.StatusNotFound, metav1.StatusReasonNotFound)
	expectStatus(t, p.do(req{path: "/api/clusters/" + id + "/workspaces/team/code/open", browser: true}), http.StatusMethodNotAllowed, metav1.StatusReasonMethodNotAllowed)
}

func TestWorkspaceLabels(t *testing.T) {
	for _, w := range []workspaceRef{{"c", "ns", "ws"}, {"prod-2", "team-a", "code-server"}} {
		got, ok := parseWorkspaceLabel(w.label())
		if !ok || got != w {
			t.Errorf("round trip of %+v: %+v, %v", w, got, ok)
		}
	}
	for _, label := range []string{"a--b", "a--b--c--d", "--b--c", "a----c", "A--b--c", "a--b--c-", "xn--b--c"} {
		if w, ok := parseWorkspaceLabel(label); ok {
			t.Errorf("label %q parsed as %+v", label, w)
		}
	}
}

func TestUI(t *testing.T) {
	ui := fstest.MapFS{
		"index.html":    {Data: []byte("<html>app</html>")},
		"assets/app.js": {Data: []byte("console.log(1)")},
	}
	p := newPortal(t, func(c *Config) { c.UI = ui })
	for path, want := range map[string]string{"/": "<html>app</html>", "/clusters-view/prod": "<html>app</html>", "/assets/app.js": "console.log(1)"} {
		resp := p.do(req{path: path, browser: true})
		if b := expect(t, resp, http.StatusOK); b != want {
			t.Errorf("%s = %q, want %q", path, b, want)
		}
	}
	expect(t, p.do(req{path: "/assets/missing.js", browser: true}), http.StatusNotFound)
	expect(t, p.do(req{method: http.MethodPost, path: "/", browser: true}), http.StatusMethodNotAllowed)

	// Without a UI, a built-in page.
	p = newPortal(t)
	if b := expect(t, p.do(req{path: "/", browser: true}), http.StatusOK); !strings.Contains(b, "carries no web UI") {
		t.Fatalf("built-in page: %s", b)
	}
}
