package store

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The tests in this file kill a real process in the middle of a write and
// then open the state dir again, as the next start after a crash would: no
// deferred cleanup runs, so whatever the write had put on disk is there.

const (
	envCrashScenario = "GUILDNET_STORE_TEST_CRASH"
	envCrashDir      = "GUILDNET_STORE_TEST_DIR"
	crashExitCode    = 77
)

func TestMain(m *testing.M) {
	if scenario := os.Getenv(envCrashScenario); scenario != "" {
		runCrashScenario(scenario, os.Getenv(envCrashDir))
		// Reaching here means the write finished without crashing.
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runCrashScenario runs in the child process: it arms a hook that exits
// the process at one step of a write, then starts that write.
func runCrashScenario(scenario, dir string) {
	s, err := Open(dir)
	if err != nil {
		os.Exit(2)
	}
	crashMidWrite := func(file string) {
		orig := writeData
		writeData = func(w io.Writer, data []byte) error {
			if f, ok := w.(*os.File); ok && strings.HasPrefix(filepath.Base(f.Name()), "."+file+tmpInfix) {
				_, _ = w.Write(data[:len(data)/2])
				_ = f.Sync() // make the half-written file as real as it gets
				os.Exit(crashExitCode)
			}
			return orig(w, data)
		}
	}
	switch scenario {
	case "add-kubeconfig":
		crashMidWrite(kubeconfigFile)
		_, _ = s.Add(NewCluster{Name: "prod", Server: "https://new", Kubeconfig: []byte("new-credentials")})
	case "add-before-publish":
		rename = func(from, to string) error {
			if strings.HasPrefix(filepath.Base(from), stagingPrefix) {
				os.Exit(crashExitCode)
			}
			return os.Rename(from, to)
		}
		_, _ = s.Add(NewCluster{Name: "prod", Server: "https://new", Kubeconfig: []byte("new-credentials")})
	case "settings":
		crashMidWrite(settingsFileName)
		_ = s.SetSettings("prod", Settings{DefaultNamespace: "new-namespace", ImagePullSecret: "new-secret"})
	case "settings-before-rename":
		rename = func(from, to string) error {
			if filepath.Base(to) == settingsFileName {
				os.Exit(crashExitCode)
			}
			return os.Rename(from, to)
		}
		_ = s.SetSettings("prod", Settings{DefaultNamespace: "new-namespace"})
	case "remove-after-rename":
		rename = func(from, to string) error {
			if err := os.Rename(from, to); err != nil {
				return err
			}
			os.Exit(crashExitCode) // before the trash is deleted
			return nil
		}
		_ = s.Remove("prod")
	case "add-many":
		// Not a crash: one of several processes adding at once.
		for i := range 5 {
			kc := fmt.Sprintf("credentials-%d-%d", os.Getpid(), i)
			if _, err := s.Add(NewCluster{Name: "shared", Server: "https://x", Kubeconfig: []byte(kc)}); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(4)
			}
		}
	default:
		os.Exit(3)
	}
}

// crashChild runs a scenario in a child process and checks that it died
// where the scenario says, not before and not after.
func crashChild(t *testing.T, dir, scenario string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envCrashScenario+"="+scenario, envCrashDir+"="+dir)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != crashExitCode {
		t.Fatalf("child for %s: %v (want exit %d); output:\n%s", scenario, err, crashExitCode, out)
	}
}

// makeStale backdates every hidden leftover so that the next Open treats it
// as abandoned.
func makeStale(t *testing.T, s *Store) {
	t.Helper()
	old := time.Now().Add(-2 * staleAfter)
	for _, p := range hiddenLeftovers(t, s) {
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
}

func TestCrashLeavesOldState(t *testing.T) {
	oldSettings := Settings{DefaultNamespace: "old-namespace", ImagePullSecret: "old-secret", DefaultExposure: ExposureLoadBalancer}
	for _, tc := range []struct {
		scenario string
		wantIDs  string
	}{
		{scenario: "add-kubeconfig", wantIDs: "other,prod"},
		{scenario: "add-before-publish", wantIDs: "other,prod"},
		{scenario: "settings", wantIDs: "other,prod"},
		{scenario: "settings-before-rename", wantIDs: "other,prod"},
		{scenario: "remove-after-rename", wantIDs: "other"},
	} {
		t.Run(tc.scenario, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "state")
			s, err := Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			mustAdd(t, s, "prod", "old-credentials")
			mustAdd(t, s, "other", "other-credentials")
			if err := s.SetSettings("prod", oldSettings); err != nil {
				t.Fatal(err)
			}

			crashChild(t, dir, tc.scenario)

			// The next start.
			s, err = Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(ids(t, s), ","); got != tc.wantIDs {
				t.Fatalf("after the crash List = %s, want %s", got, tc.wantIDs)
			}
			// Every listed cluster has its complete credentials.
			for id, want := range map[string]string{"prod": "old-credentials", "other": "other-credentials"} {
				if !strings.Contains(tc.wantIDs, id) {
					continue
				}
				if kc, err := s.Kubeconfig(id); err != nil || string(kc) != want {
					t.Fatalf("%s kubeconfig = %q, %v; want %q", id, kc, err, want)
				}
			}
			if strings.Contains(tc.wantIDs, "prod") {
				if st, err := s.Settings("prod"); err != nil || st != oldSettings {
					t.Fatalf("prod settings = %+v, %v; want the old %+v", st, err, oldSettings)
				}
			}
			// Trash is swept at once; staging and temp files only when
			// stale, since a fresh one may be another process at work.
			left := hiddenLeftovers(t, s)
			if tc.scenario != "remove-after-rename" && len(left) == 0 {
				t.Fatalf("expected the crash to leave a hidden leftover")
			}
			makeStale(t, s)
			if s, err = Open(dir); err != nil {
				t.Fatal(err)
			}
			if left := hiddenLeftovers(t, s); len(left) != 0 {
				t.Fatalf("Open did not sweep stale leftovers: %v", left)
			}
			if got := strings.Join(ids(t, s), ","); got != tc.wantIDs {
				t.Fatalf("after sweeping List = %s, want %s", got, tc.wantIDs)
			}
			// The store is fully usable afterwards.
			if c := mustAdd(t, s, "prod", "fresh"); !ValidID(c.ID) {
				t.Fatalf("Add after recovery: %+v", c)
			}
		})
	}
}

func TestFreshLeftoversAreNotSwept(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	mustAdd(t, s, "prod", "old-credentials")
	crashChild(t, dir, "add-kubeconfig")
	before := hiddenLeftovers(t, s)
	if len(before) == 0 {
		t.Fatal("crash left nothing")
	}
	// Another process's Add may be in progress: a fresh staging folder
	// must survive Open.
	if _, err := Open(dir); err != nil {
		t.Fatal(err)
	}
	if after := hiddenLeftovers(t, s); len(after) != len(before) {
		t.Fatalf("fresh leftovers swept: before %v, after %v", before, after)
	}
}

func TestConcurrentAddsFromProcesses(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	const procs = 4
	cmds := make([]*exec.Cmd, procs)
	for i := range cmds {
		cmds[i] = exec.Command(os.Args[0], "-test.run=^$")
		cmds[i].Env = append(os.Environ(), envCrashScenario+"=add-many", envCrashDir+"="+dir)
		cmds[i].Stderr = os.Stderr
		if err := cmds[i].Start(); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range cmds {
		if err := c.Wait(); err != nil {
			t.Fatalf("child: %v", err)
		}
	}
	cs, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != procs*5 {
		t.Fatalf("%d clusters, want %d", len(cs), procs*5)
	}
	seen := map[string]bool{}
	for _, c := range cs {
		kc, err := s.Kubeconfig(c.ID)
		if err != nil || !strings.HasPrefix(string(kc), "credentials-") || seen[string(kc)] {
			t.Fatalf("cluster %s: kubeconfig %q, %v (duplicate: %v)", c.ID, kc, err, seen[string(kc)])
		}
		seen[string(kc)] = true
	}
}
