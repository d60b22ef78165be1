package framework

import (
	"bufio"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// StartKubectlProxy runs `kubectl proxy --port 0` with kubeconfig and
// returns its URL; the process is stopped when the test ends.
func StartKubectlProxy(t testing.TB, kubeconfig string) string {
	t.Helper()
	url, stop, err := KubectlProxy(Kubectl(t), kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return url
}

// KubectlProxy runs `kubectl proxy --port 0` and returns its URL and how
// to stop it (for programs that are not tests, like the benchmarks).
func KubectlProxy(kubectl, kubeconfig string) (url string, stop func(), err error) {
	cmd := exec.Command(kubectl, "--kubeconfig", kubeconfig, "proxy", "--port", "0")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", nil, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	stop = func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	}
	found := make(chan string, 1)
	go func() {
		re := regexp.MustCompile(`Starting to serve on (\S+)`)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				found <- "http://" + m[1]
			}
		}
	}()
	select {
	case u := <-found:
		return u, stop, nil
	case <-time.After(30 * time.Second):
		stop()
		return "", nil, errors.New("kubectl proxy did not say where it serves within 30s")
	}
}

// CodeServerLogin is the JSON line hack/browser/codeserver-login.js prints.
type CodeServerLogin struct {
	OK                                bool
	LoginMs, WorkbenchMs, ConnectedMs int
	TerminalMs                        int
	// TerminalAttempts is how many times the terminal command was typed
	// (more than once when the starting shell dropped it).
	TerminalAttempts int
	// StartEpochMs is the wall-clock time of the script's first request.
	StartEpochMs int64
	Websockets   []struct {
		URL    string
		Status int
		Opened bool
	}
}

// OpenedThrough counts the WebSockets that opened (101) on a URL containing path.
func (r CodeServerLogin) OpenedThrough(path string) int {
	n := 0
	for _, ws := range r.Websockets {
		if ws.Opened && ws.Status == 101 && strings.Contains(ws.URL, path) {
			n++
		}
	}
	return n
}

// ParseCodeServerLogin reads codeserver-login.js's output and fails the
// test unless the workbench connected, a WebSocket opened through
// wsPath, and the screenshot was written.
func ParseCodeServerLogin(t testing.TB, out, wsPath, screenshot string) CodeServerLogin {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var res CodeServerLogin
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
		t.Fatalf("codeserver-login.js output %q: %v", out, err)
	}
	if !res.OK || res.ConnectedMs == 0 {
		t.Fatalf("workbench did not connect: %s", out)
	}
	if res.OpenedThrough(wsPath) == 0 {
		t.Fatalf("no WebSocket opened through %s: %s", wsPath, out)
	}
	if st, err := os.Stat(screenshot); err != nil || st.Size() < 10<<10 {
		t.Fatalf("screenshot %s missing or tiny: %v", screenshot, err)
	}
	return res
}
