package framework

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Chromium is the browser the hack/browser scripts drive: Debian's package
// (hack/browser/ensure-chromium.sh installs it), never a downloaded build.
// GUILDNET_CHROMIUM overrides it.
const Chromium = "/usr/bin/chromium"

// BrowserScriptTimeout bounds one RunBrowserScript; scripts take their own,
// shorter timeouts as arguments.
var BrowserScriptTimeout = 5 * time.Minute

// RunBrowserScript runs `node hack/browser/<script> args...` with the npm
// packages of hack/browser installed (npm ci once per test binary when
// node_modules is missing or older than the lockfile). It returns the
// script's stdout, also when it fails; err carries the exit status and the
// script's last stderr line (its one-line reason). Stderr is logged.
//
// A missing /usr/bin/chromium fails the test with the install hint: browser
// tests never skip silently (set GUILDNET_SKIP_BROWSER=1 to skip them on
// purpose).
func RunBrowserScript(t testing.TB, script string, args ...string) (string, error) {
	t.Helper()
	dir := browserDir(t)
	chromium := Chromium
	if v := os.Getenv("GUILDNET_CHROMIUM"); v != "" { // chromium.js honours it too
		chromium = v
	}
	if _, err := os.Stat(chromium); err != nil {
		t.Fatalf("%s is missing: run hack/browser/ensure-chromium.sh (as root it runs apt-get install chromium; `make chromium` and `make test-integration` do it too)", chromium)
	}
	if !filepath.IsAbs(script) {
		script = filepath.Join(dir, script)
	}
	ctx, cancel := context.WithTimeout(context.Background(), BrowserScriptTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", append([]string{script}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1")
	// Chromium runs below node: on timeout, kill the whole group.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	if s := strings.TrimSpace(stderr.String()); s != "" {
		t.Logf("%s stderr:\n%s", filepath.Base(script), s)
	}
	if err != nil {
		lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
		if ctx.Err() != nil {
			err = fmt.Errorf("%s: killed after %s", filepath.Base(script), BrowserScriptTimeout)
		}
		return stdout.String(), fmt.Errorf("%s: %v: %s", filepath.Base(script), err, lines[len(lines)-1])
	}
	t.Logf("%s ran in %s", filepath.Base(script), time.Since(start).Round(time.Millisecond))
	return stdout.String(), nil
}

var (
	browserOnce sync.Once
	browserPath string
	browserErr  error
)

// browserDir returns hack/browser with its node_modules installed.
func browserDir(t testing.TB) string {
	t.Helper()
	browserOnce.Do(func() {
		root, err := repoRoot()
		if err != nil {
			browserErr = err
			return
		}
		browserPath = filepath.Join(root, "hack", "browser")
		browserErr = npmCI(browserPath)
	})
	if browserErr != nil {
		t.Fatalf("hack/browser npm packages: %v", browserErr)
	}
	return browserPath
}

// npmCI installs dir's lockfile when node_modules is missing or older than
// it, the rule `make deps` uses. A file lock keeps two test binaries from
// running npm ci into the same folder at once.
func npmCI(dir string) error {
	stale := func() bool {
		lock, err1 := os.Stat(filepath.Join(dir, "package-lock.json"))
		installed, err2 := os.Stat(filepath.Join(dir, "node_modules", ".package-lock.json"))
		return err1 != nil || err2 != nil || installed.ModTime().Before(lock.ModTime())
	}
	if !stale() {
		return nil
	}
	f, err := os.OpenFile(filepath.Join(os.TempDir(), "guildnet-browser-npm-ci.lock"), os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return err
	}
	defer syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	if !stale() {
		return nil
	}
	cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund", "--prefix", dir)
	// playwright-core downloads nothing itself; this also covers packages
	// that would (e.g. `playwright`), since no browser build can be fetched here.
	cmd.Env = append(os.Environ(), "PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("npm ci --prefix %s: %v\n%s", dir, err, out)
	}
	return nil
}

var (
	artifactsMu    sync.Mutex
	artifactsFresh = map[string]bool{}
	unsafeInName   = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)
)

// ArtifactsDir returns a folder for files a person may want to look at after
// the test (screenshots, server logs), created on first use and emptied of an
// earlier run's files (not of subtests' folders):
//
//	$GUILDNET_ARTIFACTS/<TestName>        when GUILDNET_ARTIFACTS is set
//	<repo>/_output/artifacts/<TestName>   otherwise
//
// Subtests' slashes become folders; other unusual characters become '_'.
// Unlike t.TempDir, the files stay after the test.
func ArtifactsDir(t testing.TB) string {
	t.Helper()
	base := os.Getenv("GUILDNET_ARTIFACTS")
	if base == "" {
		root, err := repoRoot()
		if err != nil {
			t.Fatalf("artifacts: %v", err)
		}
		base = filepath.Join(root, "_output", "artifacts")
	}
	parts := strings.Split(t.Name(), "/")
	for i, p := range parts {
		parts[i] = unsafeInName.ReplaceAllString(p, "_")
	}
	dir := filepath.Join(append([]string{base}, parts...)...)
	artifactsMu.Lock()
	defer artifactsMu.Unlock()
	if !artifactsFresh[dir] {
		// Remove an earlier run's files, not folders: those belong to subtests.
		artifactsFresh[dir] = true
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if !e.IsDir() {
				os.Remove(filepath.Join(dir, e.Name()))
			}
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("artifacts: %v", err)
	}
	return dir
}
