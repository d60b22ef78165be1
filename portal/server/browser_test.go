package server

import (
	"bufio"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/fstest"
	"time"

	"github.com/guildnet/guildnet/portal/store"
)

// chromium is the browser the browser test drives (Debian's package, as in
// hack/browser); GUILDNET_CHROMIUM overrides it.
func chromium() string {
	if v := os.Getenv("GUILDNET_CHROMIUM"); v != "" {
		return v
	}
	return "/usr/bin/chromium"
}

// TestChromiumWorkspaceFrame runs the cookie and host scheme in a real
// browser, because what decides it (is a *.localhost frame inside the UI a
// third party, which cookies does it get) is browser behaviour: the printed
// URL opens a session, the UI asks for a workspace's one-time URL and
// frames it, and the workspace page inside the frame then uses its cookie,
// its app's own cookie, fetch and a WebSocket, while its attempts on the
// portal's API fail.
func TestChromiumWorkspaceFrame(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a browser")
	}
	if _, err := os.Stat(chromium()); err != nil {
		t.Skipf("%s is missing (hack/browser/ensure-chromium.sh installs it); skipping the browser check of the workspace cookies", chromium())
	}

	var (
		mu     sync.Mutex
		events []string
		have   = map[string]bool{}
		done   = make(chan struct{})
	)
	// The test is over once every one of these was seen.
	want := []string{
		"cluster: app.js with the app's cookie",
		"cluster: POST from the workspace's origin",
		"cluster: WebSocket message",
		"portal: workspace host refused /api/clusters",
		"portal: main host refused the workspace's fetch",
		"portal: main host refused the workspace's WebSocket",
	}
	note := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		events = append(events, fmt.Sprintf(format, args...))
	}
	saw := func(what string) {
		mu.Lock()
		defer mu.Unlock()
		if have[what] {
			return
		}
		have[what] = true
		for _, w := range want {
			if !have[w] {
				return
			}
		}
		close(done)
	}

	// The workspace: a page that sets its own (SameSite=Lax) cookie and
	// loads a script, which fetches, opens a WebSocket and tries the
	// portal's API on both hosts.
	fc := &fakeCluster{release: make(chan struct{})}
	fc.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cookie := r.Header.Get("Cookie")
		note("cluster %s %s Cookie=%q Origin=%q", r.Method, r.URL.Path, cookie, r.Header.Get("Origin"))
		if r.Header.Get("Authorization") != "Bearer "+deviceToken || strings.Contains(cookie, "guildnet_") {
			http.Error(w, "bad credentials", http.StatusUnauthorized)
			return
		}
		switch strings.TrimPrefix(r.URL.Path, wsPrefix) {
		case "/":
			w.Header().Add("Set-Cookie", "app=1; Path="+wsPrefix+"/; SameSite=Lax; HttpOnly")
			w.Header().Set("Content-Type", "text/html")
			fmt.Fprint(w, `<!doctype html><p>workspace</p><script src="app.js"></script>`)
		case "/app.js":
			if cookie == "app=1" {
				saw("cluster: app.js with the app's cookie")
			}
			w.Header().Set("Content-Type", "text/javascript")
			fmt.Fprint(w, `
const main = 'http://127.0.0.1:' + location.port;
fetch('data', {method: 'POST', body: 'x'});
const s = new WebSocket('ws://' + location.host + location.pathname.replace(/[^/]*$/, '') + 'sock');
s.onopen = () => s.send('hi');
fetch('/api/clusters');
fetch(main + '/api/clusters', {credentials: 'include', mode: 'no-cors'}).catch(() => {});
new WebSocket('ws://127.0.0.1:' + location.port + '/clusters/prod/k8s/api');
`)
		case "/data":
			if r.Method == http.MethodPost && cookie == "app=1" {
				saw("cluster: POST from the workspace's origin")
			}
		case "/sock":
			key := sha1.Sum([]byte(r.Header.Get("Sec-WebSocket-Key") + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
			conn, brw, err := w.(http.Hijacker).Hijack()
			if err != nil {
				return
			}
			defer conn.Close()
			fmt.Fprintf(brw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", base64.StdEncoding.EncodeToString(key[:]))
			brw.Flush()
			buf := make([]byte, 64)
			if n, _ := brw.Read(buf); n > 0 {
				saw("cluster: WebSocket message")
			}
		}
	}))
	fc.EnableHTTP2 = true
	fc.Config.ErrorLog = log.New(io.Discard, "", 0)
	fc.StartTLS()
	t.Cleanup(fc.Close)

	// The UI: ask for the workspace's URL and frame it, as portal/ui does.
	ui := fstest.MapFS{
		"index.html":  {Data: []byte(`<!doctype html><iframe id="f"></iframe><script src="/assets/t.js"></script>`)},
		"assets/t.js": {Data: []byte(`fetch('/api/clusters/prod/workspaces/team/code/open', {method: 'POST'}).then(r => r.json()).then(j => { document.getElementById('f').src = j.url; });`)},
	}
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Add(store.NewCluster{Name: "prod", Server: fc.URL, Kubeconfig: fc.kubeconfig(t)}); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	srv, err := New(Config{Store: st, Token: testToken, Port: port, UI: ui})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w}
		srv.ServeHTTP(rec, r)
		note("portal %s %s%s -> %d Sec-Fetch-Site=%q Cookie=%q", r.Method, r.Host, r.URL.Path, rec.code, r.Header.Get("Sec-Fetch-Site"), r.Header.Get("Cookie"))
		main := strings.HasPrefix(r.Host, "127.0.0.1:")
		switch {
		case !main && r.URL.Path == "/api/clusters" && rec.code == http.StatusForbidden:
			saw("portal: workspace host refused /api/clusters")
		case main && r.URL.Path == "/api/clusters" && strings.HasPrefix(r.Header.Get("Origin"), "http://code--") && rec.code == http.StatusForbidden:
			saw("portal: main host refused the workspace's fetch")
		case main && r.URL.Path == "/clusters/prod/k8s/api" && rec.code == http.StatusForbidden:
			saw("portal: main host refused the workspace's WebSocket")
		}
	})}
	go func() { _ = hs.Serve(ln) }()
	t.Cleanup(func() { hs.Close() })

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
		"--user-data-dir="+t.TempDir(), "--remote-debugging-port=0",
		fmt.Sprintf("http://127.0.0.1:%d/?token=%s", port, testToken))
	// Chromium starts helpers; end the whole group this test started.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cancel()
		_ = cmd.Wait()
	}()

	select {
	case <-done:
	case <-time.After(45 * time.Second):
		mu.Lock()
		defer mu.Unlock()
		var missing []string
		for _, w := range want {
			if !have[w] {
				missing = append(missing, w)
			}
		}
		t.Fatalf("in Chromium, not seen: %s\nrequests:\n%s", strings.Join(missing, "; "), strings.Join(events, "\n"))
	}
}

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.code == 0 {
		s.code = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusRecorder) Flush() { s.ResponseWriter.(http.Flusher).Flush() }

func (s *statusRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	s.code = http.StatusSwitchingProtocols
	return s.ResponseWriter.(http.Hijacker).Hijack()
}
