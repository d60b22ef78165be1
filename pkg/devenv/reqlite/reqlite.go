// Package reqlite starts and stops reqlite, the JavaScript server that speaks
// RethinkDB's driver protocol and stands in for RethinkDB in GuildNet's dev
// environment and tests (see RETHINKDB-STANDIN.md; production uses RethinkDB).
//
// The server is hack/reqlite/server.js run by node. Start waits until it prints
// its ready line and returns its address; Stop ends it. The process runs in its
// own process group, so Stop ends it and anything it started, and nothing is
// left behind.
package reqlite

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ModulePath is the Go module whose checkout holds hack/reqlite.
const ModulePath = "github.com/guildnet/guildnet"

// readyPrefix starts the one stdout line server.js prints once it accepts connections.
const readyPrefix = "reqlite listening on "

const (
	// DefaultReadyTimeout bounds the wait for the ready line when Options.ReadyTimeout is 0.
	DefaultReadyTimeout = 30 * time.Second
	// DefaultStopGrace is how long Stop waits after SIGTERM before it sends SIGKILL.
	DefaultStopGrace = 5 * time.Second
)

// Options says where and how to run reqlite.
type Options struct {
	// Dir is the hack/reqlite folder (server.js, node_modules). Empty: FindDir().
	Dir string
	// Host is the address to listen on. Empty: 127.0.0.1.
	Host string
	// Port to listen on. 0 lets the kernel pick a free one (so parallel tests
	// never collide); a fixed port lets a test restart a server on the same address.
	Port int
	// Log receives the process's output besides the ready line. Nil discards it.
	Log io.Writer
	// ReadyTimeout bounds the wait for the ready line. 0: DefaultReadyTimeout.
	ReadyTimeout time.Duration
	// StopGrace is the time between SIGTERM and SIGKILL in Stop. 0: DefaultStopGrace.
	StopGrace time.Duration
}

// Server is a running reqlite process.
type Server struct {
	// Addr is host:port where the server accepts driver connections.
	Addr string

	cmd      *exec.Cmd
	grace    time.Duration
	done     chan struct{} // closed when the process has exited
	waitErr  error         // the process's exit status; set before done closes
	stopOnce sync.Once
	stopErr  error
}

// FindDir returns the hack/reqlite folder of this module's checkout. It walks up
// from the working directory to the folder whose go.mod declares ModulePath, so it
// works from any package directory (where `go test` runs).
func FindDir() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find hack/reqlite: %w", err)
	}
	for dir := wd; ; {
		if isModuleRoot(filepath.Join(dir, "go.mod")) {
			return filepath.Join(dir, "hack", "reqlite"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("find hack/reqlite: no go.mod of module %s in %s or its parents; run from the GuildNet checkout or set Options.Dir", ModulePath, wd)
		}
		dir = parent
	}
}

func isModuleRoot(goMod string) bool {
	b, err := os.ReadFile(goMod)
	if err != nil {
		return false
	}
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) == 2 && f[0] == "module" && strings.Trim(f[1], `"`) == ModulePath {
			return true
		}
	}
	return false
}

// Start runs reqlite and waits until it accepts connections (bounded by
// Options.ReadyTimeout and ctx). ctx only bounds the start: cancelling it later
// does not stop the server; Stop does.
func Start(ctx context.Context, o Options) (*Server, error) {
	if o.Dir == "" {
		d, err := FindDir()
		if err != nil {
			return nil, err
		}
		o.Dir = d
	}
	if o.Host == "" {
		o.Host = "127.0.0.1"
	}
	if o.Port < 0 || o.Port > 65535 {
		return nil, fmt.Errorf("start reqlite: port %d is out of range 0-65535", o.Port)
	}
	if o.ReadyTimeout <= 0 {
		o.ReadyTimeout = DefaultReadyTimeout
	}
	if o.StopGrace <= 0 {
		o.StopGrace = DefaultStopGrace
	}
	node, err := exec.LookPath("node")
	if err != nil {
		return nil, fmt.Errorf("start reqlite: node (Node.js) is not on PATH; install Node.js 18 or newer: %w", err)
	}
	script := filepath.Join(o.Dir, "server.js")
	if _, err := os.Stat(script); err != nil {
		return nil, fmt.Errorf("start reqlite: %s not found; is %s the hack/reqlite folder? (%w)", script, o.Dir, err)
	}
	if _, err := os.Stat(filepath.Join(o.Dir, "node_modules", "reqlite", "package.json")); err != nil {
		return nil, fmt.Errorf("start reqlite: the reqlite npm package is not installed in %s; run npm ci --prefix hack/reqlite", o.Dir)
	}

	out := &safeWriter{w: o.Log}
	if out.w == nil {
		out.w = io.Discard
	}
	ready := make(chan string, 1)
	stderrTail := &tailBuffer{max: 4096}

	cmd := exec.Command(node, script, "--host", o.Host, "--port", strconv.Itoa(o.Port))
	cmd.Dir = o.Dir
	cmd.Stdout = &lineWriter{onLine: func(line string) {
		if addr, ok := strings.CutPrefix(line, readyPrefix); ok {
			select {
			case ready <- strings.TrimSpace(addr):
				return
			default: // a second ready line is just output
			}
		}
		_, _ = io.WriteString(out, line+"\n")
	}}
	cmd.Stderr = io.MultiWriter(out, stderrTail)
	cmd.SysProcAttr = sysProcAttr()
	// If something the server started keeps its output pipes open, Wait must
	// not block forever on them.
	cmd.WaitDelay = o.StopGrace
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start reqlite: %w", err)
	}

	s := &Server{cmd: cmd, grace: o.StopGrace, done: make(chan struct{})}
	go func() {
		s.waitErr = cmd.Wait()
		close(s.done)
	}()

	timer := time.NewTimer(o.ReadyTimeout)
	defer timer.Stop()
	select {
	case addr := <-ready:
		if _, _, err := net.SplitHostPort(addr); err != nil {
			_ = s.Stop()
			return nil, fmt.Errorf("start reqlite: unexpected ready line %q: %w", readyPrefix+addr, err)
		}
		s.Addr = addr
		return s, nil
	case <-s.done:
		return nil, fmt.Errorf("start reqlite: %s exited before it was ready (%v)%s", script, s.waitErr, stderrTail.describe())
	case <-timer.C:
		_ = s.Stop()
		return nil, fmt.Errorf("start reqlite: not ready after %s%s", o.ReadyTimeout, stderrTail.describe())
	case <-ctx.Done():
		_ = s.Stop()
		return nil, fmt.Errorf("start reqlite: %w", ctx.Err())
	}
}

// Done is closed when the process has exited, whether Stop ended it or not.
func (s *Server) Done() <-chan struct{} { return s.done }

// Stop ends the server: SIGTERM to its process group, then SIGKILL if it has not
// exited after the grace period. It waits for the exit. Calling it again returns
// the first result. An exit caused by Stop is not an error; an earlier crash is.
func (s *Server) Stop() error {
	s.stopOnce.Do(func() { s.stopErr = s.stop() })
	return s.stopErr
}

func (s *Server) stop() error {
	pgid := s.cmd.Process.Pid // Setpgid: the group id is the leader's pid
	select {
	case <-s.done:
		// It had already exited; still clear the group of any stragglers.
		_ = signalGroup(pgid, syscall.SIGKILL)
		return s.exitError(false)
	default:
	}
	_ = signalGroup(pgid, syscall.SIGTERM)
	timer := time.NewTimer(s.grace)
	defer timer.Stop()
	select {
	case <-s.done:
	case <-timer.C:
		_ = signalGroup(pgid, syscall.SIGKILL)
		<-s.done
	}
	_ = signalGroup(pgid, syscall.SIGKILL)
	return s.exitError(true)
}

// exitError reports how the process ended; signalled says whether Stop ended it.
func (s *Server) exitError(signalled bool) error {
	if s.waitErr == nil {
		return nil
	}
	var ee *exec.ExitError
	if signalled && errors.As(s.waitErr, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return nil // ended by our SIGTERM/SIGKILL
		}
	}
	return fmt.Errorf("reqlite at %s exited: %w", s.Addr, s.waitErr)
}

func signalGroup(pgid int, sig syscall.Signal) error {
	err := syscall.Kill(-pgid, sig)
	if errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return err
}

// lineWriter calls onLine for every complete line written to it.
type lineWriter struct {
	buf    bytes.Buffer
	onLine func(string)
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.buf.Write(p)
	for {
		i := bytes.IndexByte(w.buf.Bytes(), '\n')
		if i < 0 {
			return len(p), nil
		}
		line := string(w.buf.Next(i + 1))
		w.onLine(strings.TrimRight(line, "\r\n"))
	}
}

// safeWriter serializes writes from the stdout and stderr copiers.
type safeWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (w *safeWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}

// tailBuffer keeps the last max bytes written, for error messages.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = t.b[len(t.b)-t.max:]
	}
	return len(p), nil
}

func (t *tailBuffer) describe() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := strings.TrimSpace(string(t.b))
	if s == "" {
		return ""
	}
	return "; stderr: " + s
}
