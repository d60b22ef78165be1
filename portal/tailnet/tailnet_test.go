package tailnet_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/guildnet/guildnet/portal/server"
	"github.com/guildnet/guildnet/portal/store"
	"github.com/guildnet/guildnet/portal/tailnet"
	"github.com/guildnet/guildnet/portal/tailnet/tailnettest"
)

const token = "0123456789abcdefghijklmnopqrstuvwxyzABCDEF"

// TestListener runs the portal's tailnet listener on an in-process tailnet
// (test control server, DERP and STUN on 127.0.0.1) with three client
// nodes: alice (allowed by login name), ci (allowed by tag) and mallory
// (not allowed). Allowed nodes still need the token for a session; mallory
// gets 403 naming who she is and the flag.
func TestListener(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	start := time.Now()
	control := tailnettest.StartControl(t, "tag:portal-users")
	alice := control.StartNode(t, ctx, "alice")
	ci := control.StartNode(t, ctx, "ci", "tag:portal-users")
	mallory := control.StartNode(t, ctx, "mallory")
	t.Logf("control server and 3 client nodes up in %v", time.Since(start).Round(time.Millisecond))
	if alice.LoginName == "" || alice.LoginName == mallory.LoginName {
		t.Fatalf("login names: alice %q, mallory %q", alice.LoginName, mallory.LoginName)
	}

	allow, err := tailnet.ParseAllowList([]string{alice.LoginName, "tag:portal-users"})
	if err != nil {
		t.Fatal(err)
	}
	l, err := tailnet.New(tailnet.Config{
		Dir:        filepath.Join(t.TempDir(), tailnet.DirName),
		Hostname:   "portal",
		ControlURL: control.URL,
		Allow:      allow,
		UserLogf:   t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(filepath.Join(t.TempDir(), "state"))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Config{Store: st, Token: token, Port: 7455, AllowHost: l.AllowHost})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()

	ready := make(chan string, 1)
	done := make(chan error, 1)
	runCtx, stop := context.WithCancel(ctx)
	go func() { done <- l.Run(runCtx, srv, func(u string) { ready <- u }) }()
	var url string
	select {
	case url = <-ready:
	case err := <-done:
		t.Fatalf("the listener ended before it served: %v", err)
	case <-ctx.Done():
		t.Fatal("the listener did not come up")
	}
	t.Logf("listener up at %s after %v", url, time.Since(start).Round(time.Millisecond))
	if want := "http://portal." + tailnettest.MagicDNSDomain + "/"; url != want {
		t.Fatalf("listener URL %q, want %q", url, want)
	}
	defer func() {
		stop()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("Run did not return after its context ended")
		}
	}()

	get := func(n *tailnettest.Node, rawURL, host string, cookies ...*http.Cookie) (*http.Response, string) {
		t.Helper()
		c := n.HTTPClient()
		c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		c.Timeout = 20 * time.Second
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
		if err != nil {
			t.Fatal(err)
		}
		if host != "" {
			req.Host = host
		}
		for _, ck := range cookies {
			req.AddCookie(ck)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", rawURL, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	session := func(n *tailnettest.Node) *http.Cookie {
		t.Helper()
		resp, b := get(n, url+"?token="+token, "")
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("token URL: %d %s", resp.StatusCode, b)
		}
		for _, c := range resp.Cookies() {
			if c.Name == server.SessionCookie {
				return c
			}
		}
		t.Fatalf("token URL set no session cookie: %q", resp.Header.Values("Set-Cookie"))
		return nil
	}

	t.Run("allowed user needs the token", func(t *testing.T) {
		resp, b := get(alice, url+"api/clusters", "")
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("without a session: %d %s", resp.StatusCode, b)
		}
		cookie := session(alice)
		resp, b = get(alice, url+"api/clusters", "", cookie)
		if resp.StatusCode != http.StatusOK || !strings.Contains(b, `"items":[]`) {
			t.Fatalf("with a session: %d %s", resp.StatusCode, b)
		}
		resp, b = get(alice, url, "", cookie)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("UI with a session: %d %s", resp.StatusCode, b)
		}
	})

	t.Run("allowed tag", func(t *testing.T) {
		cookie := session(ci)
		if resp, b := get(ci, url+"api/clusters", "", cookie); resp.StatusCode != http.StatusOK {
			t.Fatalf("with a session: %d %s", resp.StatusCode, b)
		}
	})

	t.Run("not allowed", func(t *testing.T) {
		// The token does not help: WhoIs refuses before the portal sees it.
		resp, b := get(mallory, url+"?token="+token, "")
		if resp.StatusCode != http.StatusForbidden || len(resp.Cookies()) != 0 {
			t.Fatalf("token URL from a node not allowed: %d %q %s", resp.StatusCode, resp.Header.Values("Set-Cookie"), b)
		}
		for _, want := range []string{"user " + mallory.LoginName + " on node " + mallory.DNSName, "--tailnet-allow including " + mallory.LoginName} {
			if !strings.Contains(b, want) {
				t.Fatalf("403 message %q does not say %q", b, want)
			}
		}
		resp, b = get(mallory, url+"api/clusters", "")
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(b, `"reason":"Forbidden"`) {
			t.Fatalf("API from a node not allowed: %d %s", resp.StatusCode, b)
		}
	})

	t.Run("hosts", func(t *testing.T) {
		cookie := session(alice)
		ip := control.NodeIPv4("portal")
		if !ip.IsValid() {
			t.Fatal("the control server has no portal node")
		}
		if resp, b := get(alice, fmt.Sprintf("http://%s/api/clusters", ip), "", cookie); resp.StatusCode != http.StatusOK {
			t.Fatalf("on the 100.x address %s: %d %s", ip, resp.StatusCode, b)
		}
		if resp, b := get(alice, url+"api/clusters", "portal", cookie); resp.StatusCode != http.StatusOK {
			t.Fatalf("Host portal (MagicDNS short name): %d %s", resp.StatusCode, b)
		}
		// DNS rebinding: another name pointing at the node.
		if resp, b := get(alice, url+"api/clusters", "evil.example", cookie); resp.StatusCode != http.StatusMisdirectedRequest {
			t.Fatalf("Host evil.example: %d %s", resp.StatusCode, b)
		}
		if resp, b := get(alice, url+"api/clusters", "portal."+tailnettest.MagicDNSDomain+":7455", cookie); resp.StatusCode != http.StatusMisdirectedRequest {
			t.Fatalf("the MagicDNS name with the loopback port: %d %s", resp.StatusCode, b)
		}
	})
}
