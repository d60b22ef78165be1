// Package framework is the integration tests' harness: one local control
// plane (pkg/devenv) per test binary, started in TestMain and stopped after
// the last test, plus helpers to run kubectl against it and wait for
// conditions.
package framework

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/guildnet/guildnet/pkg/devenv"
)

var env *devenv.Env

// Main starts the shared environment, runs the tests and stops it. Use it
// as the body of TestMain.
func Main(m *testing.M, opts devenv.Options) {
	os.Exit(run(m, opts))
}

func run(m *testing.M, opts devenv.Options) int {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if opts.Progress == nil {
		opts.Progress = os.Stderr
	}
	e, err := devenv.Start(ctx, opts)
	if err != nil {
		fmt.Fprintf(os.Stderr, "framework: starting the local control plane: %v\n", err)
		return 1
	}
	env = e
	code := m.Run()
	if err := e.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "framework: stopping the local control plane: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// Env returns the shared environment.
func Env(t testing.TB) *devenv.Env {
	t.Helper()
	if env == nil {
		t.Fatal("no environment: call framework.Main from TestMain")
	}
	return env
}

// Kubectl returns the path of kubectl v1.37 from the tools folder, falling
// back to PATH.
func Kubectl(t testing.TB) string {
	t.Helper()
	if dir := os.Getenv("GUILDNET_TOOLS_DIR"); dir != "" {
		return filepath.Join(dir, "kubectl")
	}
	p, err := exec.LookPath("kubectl")
	if err != nil {
		t.Fatalf("kubectl not found: run `make tools` and put _output/tools/bin on PATH: %v", err)
	}
	return p
}

// KubectlResult is what a kubectl run printed.
type KubectlResult struct {
	Stdout, Stderr string
	Err            error
}

// RunKubectl runs kubectl with the given kubeconfig and returns its output.
func RunKubectl(t testing.TB, kubeconfig string, args ...string) KubectlResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, Kubectl(t), append([]string{"--kubeconfig", kubeconfig}, args...)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	return KubectlResult{Stdout: out.String(), Stderr: errOut.String(), Err: err}
}

// MustKubectl runs kubectl and fails the test when it exits non-zero.
func MustKubectl(t testing.TB, kubeconfig string, args ...string) string {
	t.Helper()
	r := RunKubectl(t, kubeconfig, args...)
	if r.Err != nil {
		t.Fatalf("kubectl %s: %v\n%s%s", strings.Join(args, " "), r.Err, r.Stdout, r.Stderr)
	}
	return r.Stdout
}

// Eventually polls cond every 100 ms until it returns nil or timeout passes,
// then fails the test with the last error.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func(ctx context.Context) error) {
	t.Helper()
	var last error
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		last = cond(ctx)
		return last == nil, nil
	})
	if err != nil {
		t.Fatalf("%s: not true after %s: %v", what, timeout, last)
	}
}
