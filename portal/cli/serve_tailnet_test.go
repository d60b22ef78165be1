package cli

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/guildnet/guildnet/portal/server"
	"github.com/guildnet/guildnet/portal/tailnet"
	"github.com/guildnet/guildnet/portal/tailnet/tailnettest"
)

// TestServeTailnetFlags: wrong --tailnet flags stop serve before it
// listens or touches the tailnet.
func TestServeTailnetFlags(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	openKey := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(openKey, []byte("tskey-auth-x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(openKey, 0o644); err != nil {
		t.Fatal(err)
	}
	allow := []string{"--tailnet", "--tailnet-allow", "you@example.com"}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--tailnet"}, "--tailnet needs --tailnet-allow: the tailnet listener admits nobody by default"},
		{[]string{"--tailnet", "--tailnet-allow", ","}, "--tailnet-allow: the tailnet allow list is empty"},
		{[]string{"--tailnet-allow", "you@example.com"}, "--tailnet-allow is given without --tailnet"},
		{[]string{"--tailnet-control-url", "http://127.0.0.1:1"}, "--tailnet-control-url is given without --tailnet"},
		{[]string{"--tailnet", "--tailnet-allow", "laptop"}, "--tailnet-allow: \"laptop\" is neither a login name"},
		{append(allow, "--tailnet-port", "0"), "--tailnet-port 0 is not a TCP port"},
		{append(allow, "--tailnet-control-url", "ftp://example.com"), "is not an http(s) URL"},
		{append(allow, "--tailnet-auth-key-file", openKey), "is readable by other users"},
		{append(allow, "--tailnet-auth-key-file", filepath.Join(t.TempDir(), "missing")), "reading the tailnet auth key"},
		{append(allow, "--tailnet-hostname", "Bad_Name"), "is not a host name for the tailnet"},
	} {
		args := append([]string{"--state-dir", state, "serve", "--listen", "127.0.0.1:0"}, tc.args...)
		_, _, err := run(t, "", args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("guildnet-portal %s = %v, want an error containing %q", strings.Join(tc.args, " "), err, tc.want)
		}
	}
	if _, err := os.Stat(filepath.Join(state, tailnet.DirName)); err == nil {
		t.Error("a refused serve created the tailnet state folder")
	}
}

var tailnetLine = regexp.MustCompile(`^Tailnet: (http://[^/]+/)\?token=([A-Za-z0-9_-]{43})\n$`)

// TestServeTailnet runs serve --tailnet against an in-process tailnet
// (tailnettest: no internet) and opens a session from an allowed node.
func TestServeTailnet(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	control := tailnettest.StartControl(t)
	alice := control.StartNode(t, ctx, "alice")
	state := filepath.Join(t.TempDir(), "state")

	serveCtx, stop := context.WithCancel(ctx)
	defer stop()
	pr, pw := io.Pipe()
	cmd := NewCommand()
	cmd.SetArgs([]string{"--state-dir", state, "serve", "--listen", "127.0.0.1:0",
		"--tailnet", "--tailnet-hostname", "portal", "--tailnet-allow", alice.LoginName,
		"--tailnet-control-url", control.URL})
	cmd.SetOut(pw)
	cmd.SetErr(io.Discard)
	done := make(chan error, 1)
	go func() {
		err := cmd.ExecuteContext(serveCtx)
		pw.Close()
		done <- err
	}()
	lines := make(chan string, 2)
	go func() {
		br := bufio.NewReader(pr)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				close(lines)
				return
			}
			lines <- line
		}
	}()
	next := func(what string) string {
		t.Helper()
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("serve ended before printing %s: %v", what, <-done)
			}
			return l
		case <-ctx.Done():
			t.Fatalf("serve printed no %s", what)
		}
		return ""
	}
	if l := next("the Portal line"); !strings.HasPrefix(l, "Portal: http://127.0.0.1:") {
		t.Fatalf("first line %q", l)
	}
	l := next("the Tailnet line")
	m := tailnetLine.FindStringSubmatch(l)
	if m == nil || m[1] != "http://portal."+tailnettest.MagicDNSDomain+"/" {
		t.Fatalf("second line %q; want Tailnet: http://portal.%s/?token=TOKEN", l, tailnettest.MagicDNSDomain)
	}

	c := alice.HTTPClient()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	c.Timeout = 20 * time.Second
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(l, "\n")[len("Tailnet: "):], nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || len(resp.Cookies()) == 0 || resp.Cookies()[0].Name != server.SessionCookie {
		t.Fatalf("the printed tailnet URL: %d, cookies %q", resp.StatusCode, resp.Header.Values("Set-Cookie"))
	}

	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve ended with %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not stop within 20 s")
	}
	// The node's state stays for the next start.
	if _, err := os.Stat(filepath.Join(state, tailnet.DirName, "tailscaled.state")); err != nil {
		t.Fatalf("no tailnet state kept: %v", err)
	}
}
