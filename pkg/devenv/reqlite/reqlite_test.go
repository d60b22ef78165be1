package reqlite

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestFindDir(t *testing.T) {
	dir, err := FindDir()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "server.js")); err != nil {
		t.Fatalf("FindDir() = %s, which has no server.js: %v", dir, err)
	}
}

func TestStartStop(t *testing.T) {
	s, err := Start(t.Context(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialTimeout("tcp", s.Addr, 3*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", s.Addr, err)
	}
	_ = conn.Close()
	pid := s.cmd.Process.Pid

	if err := s.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := s.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	// Nothing of the process group is left.
	if err := syscall.Kill(-pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("process group %d still exists after Stop (kill -0: %v)", pid, err)
	}
	if _, err := net.DialTimeout("tcp", s.Addr, time.Second); err == nil {
		t.Fatalf("%s still accepts connections after Stop", s.Addr)
	}
}

func TestRestartOnSamePort(t *testing.T) {
	s, err := Start(t.Context(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, portStr, _ := net.SplitHostPort(s.Addr)
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := Start(t.Context(), Options{Port: port})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Stop()
	if s2.Addr != s.Addr {
		t.Fatalf("restarted at %s, want %s", s2.Addr, s.Addr)
	}
}

func TestMissingNodeModules(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "server.js"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Start(context.Background(), Options{Dir: dir})
	if err == nil || !strings.Contains(err.Error(), "npm ci --prefix hack/reqlite") {
		t.Fatalf("Start without node_modules: got %v, want an error that says to run npm ci", err)
	}
}

func TestExitBeforeReady(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "node_modules", "reqlite"), 0o755); err != nil {
		t.Fatal(err)
	}
	_ = os.WriteFile(filepath.Join(dir, "node_modules", "reqlite", "package.json"), []byte("{}"), 0o644)
	_ = os.WriteFile(filepath.Join(dir, "server.js"), []byte(`console.error("boom"); process.exit(3)`), 0o644)
	_, err := Start(context.Background(), Options{Dir: dir})
	if err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("got %v, want an error carrying the server's stderr", err)
	}
}
