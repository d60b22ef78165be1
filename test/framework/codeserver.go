package framework

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/guildnet/guildnet/pkg/controller/workspace"
	"github.com/guildnet/guildnet/pkg/devenv"
)

// CodeServerOptions configures StartCodeServer. The zero value starts a
// code-server on a free loopback port with a random password.
type CodeServerOptions struct {
	// Addr is host:port to bind. The default is 127.0.0.1:0. Port 0 picks a
	// free port first (code-server itself needs a concrete one); with a
	// Wrapper that enters a network namespace the port is picked on the
	// host, which is good enough for a fresh namespace.
	Addr string
	// Wrapper is a command prefix, e.g. {"ip", "netns", "exec", "ns1"} to
	// run code-server inside a network namespace. The test process must
	// still reach Addr to poll /healthz (e.g. through a veth pair).
	Wrapper []string
	// Password for --auth password; random when empty.
	Password string
	// ExtraArgs are appended to code-server's flags, e.g.
	// {"--trusted-origins", "127.0.0.1:8080"}.
	ExtraArgs []string
	// FileName is the known file in the opened folder ("guildnet-hello.txt"
	// by default). A browser sees it in the explorer only once the
	// workbench is connected over its WebSocket.
	FileName string
	// StartTimeout bounds the wait for /healthz (default 60 s).
	StartTimeout time.Duration
}

// CodeServer is a running code-server, stopped by the test's cleanup.
type CodeServer struct {
	URL      string // http://host:port/
	Addr     string // host:port
	Password string
	Folder   string // the workspace folder code-server opened
	File     string // name of the known file inside Folder
	LogPath  string // code-server's stdout and stderr
	PID      int

	cmd      *exec.Cmd
	done     chan struct{}
	waitErr  error
	stopOnce sync.Once
}

// StartCodeServer installs code-server if needed (hack/code-server/install.sh,
// cached across runs), starts one instance with its own HOME, TMPDIR, config,
// user data and extensions folders, and waits until /healthz answers. The
// test's cleanup stops its whole process group.
//
// GUILDNET_CODE_SERVER, when set, is the code-server launcher to use instead
// of installing.
func StartCodeServer(t testing.TB, opts CodeServerOptions) *CodeServer {
	t.Helper()
	launcher := codeServerLauncher(t)

	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	if opts.Password == "" {
		opts.Password = randomHex(t, 12)
	}
	if opts.FileName == "" {
		opts.FileName = "guildnet-hello.txt"
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = 60 * time.Second
	}
	addr := concreteAddr(t, opts.Addr)

	// Not t.TempDir(): code-server puts Unix sockets in TMPDIR and a socket
	// path must stay under 108 bytes, which long test names break.
	base, err := os.MkdirTemp("", "guildnet-cs-")
	if err != nil {
		t.Fatalf("code-server: %v", err)
	}
	dirs := map[string]string{}
	for _, d := range []string{"home", "tmp", "data", "extensions", "workspace"} {
		dirs[d] = filepath.Join(base, d)
		if err := os.MkdirAll(dirs[d], 0o755); err != nil {
			t.Fatalf("code-server: %v", err)
		}
	}
	if err := os.WriteFile(filepath.Join(dirs["workspace"], opts.FileName),
		[]byte("Written by framework.StartCodeServer: a browser sees this file only once the workbench is connected.\n"), 0o644); err != nil {
		t.Fatalf("code-server: %v", err)
	}
	// Our own config: without --config code-server writes one (with a
	// random password) to ~/.config/code-server.
	config := filepath.Join(base, "config.yaml")
	if err := os.WriteFile(config, []byte("auth: password\ncert: false\n"), 0o644); err != nil {
		t.Fatalf("code-server: %v", err)
	}

	args := []string{
		"--bind-addr", addr,
		"--auth", "password",
		"--config", config,
		"--user-data-dir", dirs["data"],
		"--extensions-dir", dirs["extensions"],
		"--disable-telemetry",
		"--disable-update-check",
		// Closed browser windows otherwise keep an extension host and a
		// file watcher alive for 3 hours.
		"--reconnection-grace-time", "10",
	}
	args = append(args, opts.ExtraArgs...)
	args = append(args, dirs["workspace"])
	argv := append(append([]string{}, opts.Wrapper...), launcher)
	argv = append(argv, args...)

	logPath := filepath.Join(ArtifactsDir(t), "code-server-"+strings.NewReplacer(":", "_", "[", "", "]", "").Replace(addr)+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatalf("code-server: %v", err)
	}

	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dirs["workspace"]
	cmd.Env = codeServerEnv(dirs["home"], dirs["tmp"], opts.Password)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Own process group so cleanup can stop the extension hosts and
	// watchers too; Pdeathsig so a killed test binary does not leave it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		logFile.Close()
		os.RemoveAll(base)
		t.Fatalf("code-server: starting %s: %v", strings.Join(argv, " "), err)
	}
	cs := &CodeServer{
		URL:      "http://" + addr + "/",
		Addr:     addr,
		Password: opts.Password,
		Folder:   dirs["workspace"],
		File:     opts.FileName,
		LogPath:  logPath,
		PID:      cmd.Process.Pid,
		cmd:      cmd,
		done:     make(chan struct{}),
	}
	go func() {
		cs.waitErr = cmd.Wait()
		logFile.Close()
		close(cs.done)
	}()
	t.Cleanup(func() {
		cs.Stop()
		os.RemoveAll(base)
	})

	if err := cs.waitHealthy(opts.StartTimeout); err != nil {
		cs.Stop()
		t.Fatalf("code-server on %s did not become healthy: %v\n%s", addr, err, tailFile(logPath, 30))
	}
	t.Logf("code-server %s healthy after %s (pid %d, log %s)", cs.URL, time.Since(start).Round(time.Millisecond), cs.PID, logPath)
	return cs
}

// waitHealthy polls /healthz until it answers 200, failing early when the
// process exits (e.g. the port was taken).
func (cs *CodeServer) waitHealthy(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, cs.URL+"healthz", nil)
		resp, err := client.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("/healthz: %s", resp.Status)
		}
		last = err
		select {
		case <-cs.done:
			return fmt.Errorf("code-server exited: %v", cs.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("not healthy after %s: %v", timeout, last)
		case <-tick.C:
		}
	}
}

// Stop ends code-server and everything it started. SIGTERM to the main
// process alone leaves extension hosts running, so signal the process group,
// and also every descendant found in /proc: terminals run in sessions of
// their own and leave the group.
func (cs *CodeServer) Stop() {
	cs.stopOnce.Do(func() {
		pids, _ := devenv.Descendants(cs.PID)
		signalAll := func(sig syscall.Signal) {
			syscall.Kill(-cs.PID, sig)
			for _, p := range pids {
				syscall.Kill(p, sig)
			}
		}
		signalAll(syscall.SIGTERM)
		select {
		case <-cs.done:
		case <-time.After(5 * time.Second):
		}
		// Whatever is left of the group or the descendants gets SIGKILL.
		below, _ := devenv.Descendants(cs.PID)
		pids = append(pids, below...)
		signalAll(syscall.SIGKILL)
		<-cs.done
	})
}

// codeServerEnv is the environment of one instance: everything that decides
// where code-server writes points into its own folders, and variables of an
// enclosing code-server or VS Code (a test run from its terminal) are dropped.
// The password comes as a workspace's pod gets it: PASSWORD and the
// reconciler's hash of it as HASHED_PASSWORD, which code-server checks logins
// against.
func codeServerEnv(home, tmp, password string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case k == "HOME", k == "TMPDIR", k == "PASSWORD", k == "HASHED_PASSWORD",
			strings.HasPrefix(k, "XDG_"), strings.HasPrefix(k, "CODE_SERVER_"), strings.HasPrefix(k, "VSCODE_"):
			continue
		}
		env = append(env, kv)
	}
	return append(env,
		"HOME="+home,
		"TMPDIR="+tmp,
		"XDG_CONFIG_HOME="+filepath.Join(home, ".config"),
		"XDG_DATA_HOME="+filepath.Join(home, ".local", "share"),
		"XDG_CACHE_HOME="+filepath.Join(home, ".cache"),
		"PASSWORD="+password,
		"HASHED_PASSWORD="+workspace.HashPassword(password),
	)
}

var (
	launcherOnce sync.Once
	launcherPath string
	launcherErr  error
)

// codeServerLauncher runs hack/code-server/install.sh once per test binary
// (instant when cached; minutes the first time on a machine) and returns
// the launcher it prints.
func codeServerLauncher(t testing.TB) string {
	t.Helper()
	launcherOnce.Do(func() {
		if p := os.Getenv("GUILDNET_CODE_SERVER"); p != "" {
			launcherPath = p
			return
		}
		root, err := repoRoot()
		if err != nil {
			launcherErr = err
			return
		}
		var out bytes.Buffer
		cmd := exec.Command(filepath.Join(root, "hack", "code-server", "install.sh"))
		cmd.Stdout = &out
		cmd.Stderr = os.Stderr // progress lines; a cold install takes minutes
		if err := cmd.Run(); err != nil {
			launcherErr = fmt.Errorf("hack/code-server/install.sh: %v", err)
			return
		}
		launcherPath = strings.TrimSpace(out.String())
	})
	if launcherErr != nil {
		t.Fatalf("code-server install: %v", launcherErr)
	}
	if _, err := os.Stat(launcherPath); err != nil {
		t.Fatalf("code-server launcher: %v", err)
	}
	return launcherPath
}

// concreteAddr turns port 0 into a free port. The host may be an address
// that exists only inside a network namespace, so fall back to loopback for
// picking the port.
func concreteAddr(t testing.TB, addr string) string {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("code-server: bad Addr %q: %v", addr, err)
	}
	if port != "0" {
		return addr
	}
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		l, err = net.Listen("tcp", "127.0.0.1:0")
	}
	if err != nil {
		t.Fatalf("code-server: picking a free port: %v", err)
	}
	p := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return net.JoinHostPort(host, strconv.Itoa(p))
}

// repoRoot walks up from the working directory (a test's package folder) to
// the go.mod of this module; hack/tools has a go.mod of its own.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil {
			for _, line := range strings.Split(string(b), "\n") {
				if strings.TrimSpace(line) == "module github.com/guildnet/guildnet" {
					return dir, nil
				}
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("repository root (go.mod of github.com/guildnet/guildnet) not found above the working directory")
		}
		dir = parent
	}
}

func randomHex(t testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("random: %v", err)
	}
	return hex.EncodeToString(b)
}

// tailFile returns the last n lines of a file, for failure messages.
func tailFile(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}
