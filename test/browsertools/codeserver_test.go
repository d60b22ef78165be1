// Package browsertools proves the browser test tooling end to end: a real
// code-server (framework.StartCodeServer) and headless Debian Chromium
// driving hack/browser/codeserver-login.js, directly and through a sub-path
// reverse proxy like the one GuildNet puts in front of workspaces.
//
// These tests run by default (CI runs them); GUILDNET_SKIP_BROWSER=1 skips
// them. The first run on a machine installs code-server (minutes); later runs
// use the cache. Screenshots and code-server logs land in
// framework.ArtifactsDir (_output/artifacts/<TestName> by default).
package browsertools

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/guildnet/guildnet/test/framework"
)

// loginResult is the JSON line codeserver-login.js prints.
type loginResult struct {
	OK          bool   `json:"ok"`
	Reason      string `json:"reason"`
	LoginMs     *int64 `json:"loginMs"`
	WorkbenchMs *int64 `json:"workbenchMs"`
	ConnectedMs *int64 `json:"connectedMs"`
	Screenshot  string `json:"screenshot"`
	Websockets  []struct {
		URL    string `json:"url"`
		Status *int   `json:"status"`
		Opened bool   `json:"opened"`
		Error  string `json:"error"`
	} `json:"websockets"`
}

func skipUnlessBrowser(t *testing.T) {
	t.Helper()
	if os.Getenv("GUILDNET_SKIP_BROWSER") == "1" {
		t.Skip("GUILDNET_SKIP_BROWSER=1")
	}
}

// login runs codeserver-login.js against url and parses its JSON line.
func login(t *testing.T, cs *framework.CodeServer, url, screenshot, timeoutMs string) (loginResult, error) {
	t.Helper()
	out, err := framework.RunBrowserScript(t, "codeserver-login.js",
		"--url", url, "--password", cs.Password, "--screenshot", screenshot,
		"--expect-file", cs.File, "--timeout-ms", timeoutMs)
	t.Logf("codeserver-login.js: %s", strings.TrimSpace(out))
	var r loginResult
	if jerr := json.Unmarshal([]byte(strings.TrimSpace(out)), &r); jerr != nil {
		t.Fatalf("codeserver-login.js printed no JSON line (%v); err=%v; stdout=%q", jerr, err, out)
	}
	return r, err
}

// checkConnected asserts a successful run: all timings, a WebSocket that
// opened (HTTP 101) under wantPathPrefix, and a real PNG screenshot.
func checkConnected(t *testing.T, r loginResult, err error, wantPathPrefix string) {
	t.Helper()
	if err != nil || !r.OK {
		t.Fatalf("login/connect failed: %v (reason: %s)", err, r.Reason)
	}
	if r.LoginMs == nil || *r.LoginMs <= 0 {
		t.Errorf("loginMs = %v, want > 0: password auth is on, so a login page must have been passed", r.LoginMs)
	}
	if r.WorkbenchMs == nil || r.ConnectedMs == nil || *r.ConnectedMs < *r.WorkbenchMs {
		t.Errorf("timings workbenchMs=%v connectedMs=%v, want both with connected >= workbench", r.WorkbenchMs, r.ConnectedMs)
	}
	if len(r.Websockets) == 0 {
		t.Errorf("the page opened no WebSocket")
	}
	for _, ws := range r.Websockets {
		u, perr := url.Parse(ws.URL)
		if perr != nil || !strings.HasPrefix(u.Path, wantPathPrefix) {
			t.Errorf("WebSocket %s: want a path under %s", ws.URL, wantPathPrefix)
		}
		if !ws.Opened || ws.Status == nil || *ws.Status != http.StatusSwitchingProtocols {
			t.Errorf("WebSocket %s: opened=%v status=%v error=%q, want opened with 101", ws.URL, ws.Opened, ws.Status, ws.Error)
		}
	}
	checkPNG(t, r.Screenshot)
}

func checkPNG(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if !bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) {
		t.Fatalf("screenshot %s is not a PNG", path)
	}
	// A blank page compresses to a few KB; a drawn workbench is far larger.
	if len(b) < 20*1024 {
		t.Errorf("screenshot %s is %d bytes, want > 20 KiB (a drawn workbench)", path, len(b))
	}
	t.Logf("screenshot %s (%d KiB)", path, len(b)/1024)
}

func TestCodeServerDirect(t *testing.T) {
	skipUnlessBrowser(t)
	cs := framework.StartCodeServer(t, framework.CodeServerOptions{})
	shot := filepath.Join(framework.ArtifactsDir(t), "workbench.png")
	r, err := login(t, cs, cs.URL, shot, "120000")
	checkConnected(t, r, err, "/")
}

const prefix = "/x/proxy"

// subPathProxy serves code-server under prefix the way a workspace proxy
// does: it strips the prefix, forwards to code-server with code-server's own
// Host (as kubectl proxy and the aggregator do, so the browser's host is
// lost), and redirects the bare prefix to prefix/ with a relative Location.
//
// trustLoopbackOrigins is the fix from shared/CODE-SERVER.md: code-server
// refuses a WebSocket whose Origin host differs from the forwarded host, so
// for allow-listed (here: loopback) origins the proxy sets X-Forwarded-Host
// from the Origin. Never for any origin: that check stops other web sites
// from opening a WebSocket to the workspace.
func subPathProxy(t *testing.T, upstream string, trustLoopbackOrigins bool) *httptest.Server {
	t.Helper()
	target, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.Out.URL.Path = strings.TrimPrefix(pr.In.URL.Path, prefix)
		pr.Out.URL.RawPath = strings.TrimPrefix(pr.In.URL.RawPath, prefix)
		pr.SetURL(target) // also sets Host to code-server's
		if trustLoopbackOrigins {
			if host, ok := loopbackOrigin(pr.In.Header.Get("Origin")); ok {
				pr.Out.Header.Set("X-Forwarded-Host", host)
			}
		}
	}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == prefix:
			// Relative, so it survives any further proxies in front;
			// http.Redirect would make it absolute.
			w.Header().Set("Location", prefix[strings.LastIndex(prefix, "/")+1:]+"/")
			w.WriteHeader(http.StatusFound)
		case strings.HasPrefix(r.URL.Path, prefix+"/"):
			rp.ServeHTTP(w, r)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// loopbackOrigin returns the host:port of an http(s) Origin on a loopback
// address (127.0.0.0/8, ::1, localhost).
func loopbackOrigin(origin string) (string, bool) {
	u, err := url.Parse(origin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", false
	}
	h := u.Hostname()
	if ip := net.ParseIP(h); h != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return "", false
	}
	return u.Host, true
}

func TestCodeServerSubPathProxy(t *testing.T) {
	skipUnlessBrowser(t)
	cs := framework.StartCodeServer(t, framework.CodeServerOptions{})
	proxy := subPathProxy(t, cs.URL, true)
	shot := filepath.Join(framework.ArtifactsDir(t), "workbench.png")
	// The bare prefix: exercises the relative redirect to prefix/ too.
	r, err := login(t, cs, proxy.URL+prefix, shot, "120000")
	checkConnected(t, r, err, prefix+"/")
}

// Without the Origin fix the WebSocket gets 403 and the script must say so:
// this is the failure the tooling exists to explain.
func TestCodeServerSubPathProxyOriginRejected(t *testing.T) {
	skipUnlessBrowser(t)
	cs := framework.StartCodeServer(t, framework.CodeServerOptions{})
	proxy := subPathProxy(t, cs.URL, false)
	shot := filepath.Join(framework.ArtifactsDir(t), "workbench-failed.png")
	r, err := login(t, cs, proxy.URL+prefix+"/", shot, "60000")
	if err == nil || r.OK {
		t.Fatalf("connected although the proxy loses the browser's host; want a 403 on the WebSocket")
	}
	if r.LoginMs == nil || r.WorkbenchMs == nil {
		t.Errorf("login and workbench should still work over plain HTTP: loginMs=%v workbenchMs=%v", r.LoginMs, r.WorkbenchMs)
	}
	if !strings.Contains(r.Reason, "workbench failed to connect") || !strings.Contains(r.Reason, "403") {
		t.Errorf("reason %q: want it to say the workbench failed to connect and name the 403", r.Reason)
	}
	t.Logf("failure reported as: %v", err)
	checkPNG(t, shot)
}

// A wrong password must fail at the login step, with code-server's message.
func TestCodeServerWrongPassword(t *testing.T) {
	skipUnlessBrowser(t)
	cs := framework.StartCodeServer(t, framework.CodeServerOptions{})
	shot := filepath.Join(framework.ArtifactsDir(t), "login-failed.png")
	out, err := framework.RunBrowserScript(t, "codeserver-login.js",
		"--url", cs.URL, "--password", "not-"+cs.Password, "--screenshot", shot,
		"--expect-file", cs.File, "--timeout-ms", "60000")
	if err == nil {
		t.Fatalf("logged in with a wrong password: %s", out)
	}
	if !strings.Contains(err.Error(), "login failed: Incorrect password") {
		t.Errorf("error %q: want code-server's \"Incorrect password\" reported as a login failure", err)
	}
}
