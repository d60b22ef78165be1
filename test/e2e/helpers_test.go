package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/guildnet/guildnet/portal/cli"
	"github.com/guildnet/guildnet/test/framework"
)

// portal is `guildnet-portal serve` running in this process, as
// test/integration's portal tests run it: the same command a person runs,
// so the printed URL is the one under test.
type portal struct {
	URL  string // the printed line's URL, with ?token=
	stop func()
}

var portalLine = regexp.MustCompile(`^Portal: (http://127\.0\.0\.1:\d+/\?token=[A-Za-z0-9_-]{43})\n$`)

// startPortal runs serve on a free loopback port with stateDir and waits (at
// most 30 s) for the line it prints once it listens. It stops with the test.
func startPortal(t *testing.T, stateDir string) *portal {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	cmd := cli.NewCommand()
	cmd.SetArgs([]string{"serve", "--state-dir", stateDir, "--listen", "127.0.0.1:0"})
	cmd.SetOut(pw)
	cmd.SetErr(os.Stderr)
	done := make(chan error, 1)
	go func() {
		err := cmd.ExecuteContext(ctx)
		pw.Close()
		done <- err
	}()
	lineCh := make(chan string, 1)
	go func() {
		br := bufio.NewReader(pr)
		line, _ := br.ReadString('\n')
		lineCh <- line
		_, _ = io.Copy(io.Discard, br) // serve prints nothing else; never block it
	}()
	var line string
	select {
	case line = <-lineCh:
	case err := <-done:
		cancel()
		t.Fatalf("guildnet-portal serve ended before printing its URL: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("guildnet-portal serve printed no URL within 30 s")
	}
	m := portalLine.FindStringSubmatch(line)
	if m == nil {
		cancel()
		t.Fatalf("guildnet-portal serve printed %q; want one line Portal: http://127.0.0.1:PORT/?token=TOKEN", line)
	}
	p := &portal{URL: m[1]}
	var once sync.Once
	p.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("guildnet-portal serve ended with %v", err)
				}
			case <-time.After(20 * time.Second):
				t.Error("guildnet-portal serve did not stop within 20 s of its context ending")
			}
		})
	}
	t.Cleanup(p.stop)
	return p
}

// event is one JSON line of a hack/browser/portal-*.js script.
type event struct {
	Step          string         `json:"step"`
	Status        string         `json:"status"`
	MS            int64          `json:"ms"`
	Error         string         `json:"error"`
	VisibleErrors []string       `json:"visibleErrors"`
	Screenshot    string         `json:"screenshot"`
	URL           string         `json:"url"`
	Timings       map[string]int `json:"timings"`
	Screenshots   []string       `json:"screenshots"`
	JSErrors      []string       `json:"jsErrors"`
	ConsoleErrors []string       `json:"consoleErrors"`
	// Fields holds the whole line, for the facts a step reports.
	Fields map[string]any `json:"-"`
	Line   string         `json:"-"`
}

func (e event) str(key string) string {
	s, _ := e.Fields[key].(string)
	return s
}

// browserScript is a running `node hack/browser/SCRIPT`, whose stdout is
// read line by line while it runs (framework.RunBrowserScript returns it
// only at the end, and this test must act while the browser waits).
type browserScript struct {
	t      *testing.T
	name   string
	cmd    *exec.Cmd
	events chan event
	done   chan error
	stderr framework.LockedBuffer
	cancel context.CancelFunc
}

// browserDir is hack/browser. `go test` runs in the package's folder,
// test/e2e.
func browserDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "..", "hack", "browser"))
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// startBrowserScript starts `node hack/browser/script args...` and returns
// at once. The script is killed, with Chromium and everything else in its
// process group, after timeout or when the test ends. Call
// framework.RunBrowserScript(t, script, "--preflight") first: it installs
// hack/browser's npm packages and checks that Chromium is there.
func startBrowserScript(t *testing.T, timeout time.Duration, script string, args ...string) *browserScript {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	cmd := exec.CommandContext(ctx, "node", append([]string{script}, args...)...)
	cmd.Dir = browserDir(t)
	cmd.Env = append(os.Environ(), "PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	s := &browserScript{t: t, name: script, cmd: cmd, events: make(chan event, 100), done: make(chan error, 1), cancel: cancel}
	cmd.Stderr = &s.stderr
	// An io.Pipe rather than StdoutPipe: Wait may then run while lines are
	// still being read (it waits for the copy into the pipe instead of
	// closing the pipe under the reader).
	stdout, stdoutW := io.Pipe()
	cmd.Stdout = stdoutW
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("starting node %s: %v (is node on PATH?)", script, err)
	}
	go func() {
		defer close(s.events)
		defer stdout.Close()
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64*1024), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			var ev event
			if err := json.Unmarshal([]byte(line), &ev.Fields); err != nil || ev.str("step") == "" {
				// Not t.Logf: this goroutine may outlive the test.
				fmt.Fprintf(os.Stderr, "%s: %s\n", script, line)
				continue
			}
			// A field of another type than expected stays empty; the line
			// is still an event.
			_ = json.Unmarshal([]byte(line), &ev)
			ev.Line = line
			s.events <- ev
		}
	}()
	go func() {
		err := cmd.Wait()
		stdoutW.Close()
		if ctx.Err() == context.DeadlineExceeded {
			err = fmt.Errorf("killed after %s: %v", timeout, err)
		}
		s.done <- err
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
		}
	})
	return s
}

// next returns the next event, or ok=false when the script's stdout ended.
// It fails the test when none arrives within wait.
func (s *browserScript) next(wait time.Duration, after string) (event, bool) {
	s.t.Helper()
	select {
	case ev, ok := <-s.events:
		return ev, ok
	case <-time.After(wait):
		s.cancel()
		s.t.Fatalf("%s: no progress within %s after step %q; stderr:\n%s", s.name, wait, after, s.stderr.String())
		return event{}, false
	}
}

// wait returns the script's exit error, bounded.
func (s *browserScript) wait(within time.Duration) error {
	select {
	case err := <-s.done:
		s.done <- err
		return err
	case <-time.After(within):
		s.cancel()
		return fmt.Errorf("%s did not exit within %s after its output ended", s.name, within)
	}
}

// lastLine is the script's last stderr line: its one-line reason.
func (s *browserScript) lastLine() string {
	lines := strings.Split(strings.TrimSpace(s.stderr.String()), "\n")
	return lines[len(lines)-1]
}

// preflight installs hack/browser's npm packages (npm ci when needed) and
// checks Chromium, through the framework's runner.
func preflight(t *testing.T, script string) {
	t.Helper()
	if _, err := framework.RunBrowserScript(t, script, "--preflight"); err != nil {
		t.Fatalf("browser preflight: %v", err)
	}
}
