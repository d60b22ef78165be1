package tailnet

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"tailscale.com/client/tailscale/apitype"
	"tailscale.com/tailcfg"
)

func TestParseAllowList(t *testing.T) {
	a, err := ParseAllowList([]string{" Alice@Example.com", "tag:portal-users", "", "laptop.tail-scale.ts.net."})
	if err != nil {
		t.Fatal(err)
	}
	if !a.logins["alice@example.com"] || !a.tags["tag:portal-users"] || !a.nodes["laptop.tail-scale.ts.net"] {
		t.Fatalf("parsed %+v", a)
	}
	for _, tc := range []struct {
		entries []string
		want    string
	}{
		{nil, "admits nobody by default"},
		{[]string{"", " "}, "admits nobody by default"},
		{[]string{"laptop"}, "full MagicDNS node name"},
		{[]string{"tagged-devices"}, "full MagicDNS node name"},
		{[]string{"tag:"}, "not a tag"},
		{[]string{"tag:1x"}, "not a tag"},
		{[]string{"@example.com"}, "not a login name"},
		{[]string{"bad_name.example.com"}, "not a node name"},
	} {
		_, err := ParseAllowList(tc.entries)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseAllowList(%q) = %v, want an error saying %q", tc.entries, err, tc.want)
		}
	}
}

func TestAdmits(t *testing.T) {
	a, err := ParseAllowList([]string{"alice@example.com", "tag:portal-users", "kiosk.tail-scale.ts.net"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		id   Identity
		want bool
	}{
		{Identity{LoginName: "alice@example.com", Node: "laptop.tail-scale.ts.net"}, true},
		{Identity{LoginName: "ALICE@example.com", Node: "laptop.tail-scale.ts.net"}, true},
		{Identity{LoginName: "bob@example.com", Node: "laptop.tail-scale.ts.net"}, false},
		// A tagged node is its tags, whatever user profile it shows.
		{Identity{LoginName: "alice@example.com", Tags: []string{"tag:ci"}, Node: "ci.tail-scale.ts.net"}, false},
		{Identity{LoginName: "tagged-devices", Tags: []string{"tag:ci", "tag:portal-users"}, Node: "ci.tail-scale.ts.net"}, true},
		// A node named in the list, whoever owns it.
		{Identity{LoginName: "bob@example.com", Node: "kiosk.tail-scale.ts.net"}, true},
		{Identity{Tags: []string{"tag:x"}, Node: "kiosk.tail-scale.ts.net"}, true},
		{Identity{}, false},
	} {
		if got := a.Admits(tc.id); got != tc.want {
			t.Errorf("Admits(%+v) = %v, want %v", tc.id, got, tc.want)
		}
	}
	if (*AllowList)(nil).Admits(Identity{LoginName: "alice@example.com"}) {
		t.Error("a nil list admits")
	}
}

// TestGate checks the WhoIs gate with a stand-in for WhoIs.
func TestGate(t *testing.T) {
	allow, err := ParseAllowList([]string{"alice@example.com", "tag:portal-users"})
	if err != nil {
		t.Fatal(err)
	}
	who := map[string]*apitype.WhoIsResponse{
		"100.64.0.2:1000": {Node: &tailcfg.Node{Name: "laptop.tail-scale.ts.net."}, UserProfile: &tailcfg.UserProfile{LoginName: "alice@example.com"}},
		"100.64.0.3:1000": {Node: &tailcfg.Node{Name: "phone.tail-scale.ts.net."}, UserProfile: &tailcfg.UserProfile{LoginName: "mallory@example.com"}},
		"100.64.0.4:1000": {Node: &tailcfg.Node{Name: "ci.tail-scale.ts.net.", Tags: []string{"tag:ci"}}, UserProfile: &tailcfg.UserProfile{LoginName: "tagged-devices"}},
	}
	whoIs := func(_ context.Context, addr string) (*apitype.WhoIsResponse, error) {
		if w, ok := who[addr]; ok {
			return w, nil
		}
		return nil, errors.New("peer not found")
	}
	h := gate(whoIs, allow, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "portal") }))
	do := func(addr, path string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodGet, "http://portal.tail-scale.ts.net"+path, nil)
		r.RemoteAddr = addr
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}

	if w := do("100.64.0.2:1000", "/"); w.Code != http.StatusOK || w.Body.String() != "portal" {
		t.Fatalf("allowed user: %d %q", w.Code, w.Body)
	}
	w := do("100.64.0.3:1000", "/")
	if w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), "user mallory@example.com on node phone.tail-scale.ts.net") ||
		!strings.Contains(w.Body.String(), "--tailnet-allow including mallory@example.com") {
		t.Fatalf("other user: %d %q", w.Code, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("403 page Content-Type %q", ct)
	}
	w = do("100.64.0.4:1000", "/api/clusters")
	var st metav1.Status
	if err := json.Unmarshal(w.Body.Bytes(), &st); err != nil || w.Code != http.StatusForbidden || st.Reason != metav1.StatusReasonForbidden || st.Code != 403 ||
		!strings.Contains(st.Message, "node ci.tail-scale.ts.net tagged tag:ci") || !strings.Contains(st.Message, "--tailnet-allow including tag:ci") {
		t.Fatalf("tagged node on the API: %d %q (%v)", w.Code, w.Body, err)
	}
	if w := do("100.64.0.9:1000", "/"); w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), "could not tell which tailnet node") {
		t.Fatalf("unknown peer: %d %q", w.Code, w.Body)
	}
}

func TestReadAuthKeyFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if k, err := ReadAuthKeyFile(write("ok", "tskey-auth-abc\n", 0o600)); err != nil || k != "tskey-auth-abc" {
		t.Fatalf("ReadAuthKeyFile = %q, %v", k, err)
	}
	if _, err := ReadAuthKeyFile(write("open", "tskey-auth-abc\n", 0o644)); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("a world-readable key file: %v", err)
	}
	if _, err := ReadAuthKeyFile(write("empty", "\n", 0o600)); err == nil {
		t.Fatal("an empty key file was taken")
	}
	if _, err := ReadAuthKeyFile(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("a missing key file was taken")
	}
}
