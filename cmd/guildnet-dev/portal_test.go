package main

import (
	"strings"
	"testing"
)

// The dev portal acts with the cluster credentials of whoever reaches it, so
// --portal-listen takes loopback addresses only, and says what to pass
// otherwise.
func TestListenPortal(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:0", "localhost:0", "[::1]:0"} {
		ln, err := listenPortal(addr)
		if err != nil {
			if addr == "[::1]:0" && strings.Contains(err.Error(), "cannot assign") {
				continue // no IPv6 loopback on this machine
			}
			t.Errorf("listenPortal(%q): %v", addr, err)
			continue
		}
		ln.Close()
	}
	for addr, want := range map[string]string{
		"0.0.0.0:7456":  "loopback address only",
		"10.1.2.3:7456": "loopback address only",
		":7456":         "loopback address only",
		"example:7456":  "loopback address only",
		"7456":          "is not IP:PORT",
	} {
		if ln, err := listenPortal(addr); err == nil {
			ln.Close()
			t.Errorf("listenPortal(%q) listened; want a refusal", addr)
		} else if !strings.Contains(err.Error(), want) {
			t.Errorf("listenPortal(%q): %v; want it to say %q", addr, err, want)
		}
	}
	// A port in use fails at once, naming the flag.
	ln, err := listenPortal("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if ln2, err := listenPortal(ln.Addr().String()); err == nil {
		ln2.Close()
		t.Error("listening twice on one port worked")
	} else if !strings.Contains(err.Error(), "--portal-listen") {
		t.Errorf("port in use: %v; want it to name --portal-listen", err)
	}
}
