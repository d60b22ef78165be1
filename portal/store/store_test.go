package store

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func openTemp(t *testing.T) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "state"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustAdd(t *testing.T, s *Store, name string, kubeconfig string) Cluster {
	t.Helper()
	c, err := s.Add(NewCluster{Name: name, Server: "https://" + name + ".example:6443", Kubeconfig: []byte(kubeconfig)})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func ids(t *testing.T, s *Store) []string {
	t.Helper()
	cs, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, c := range cs {
		out = append(out, c.ID)
	}
	return out
}

func assertMode(t *testing.T, path string, want fs.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != want {
		t.Errorf("%s: mode %v, want %v", path, got, want)
	}
}

func TestAddGetListRemove(t *testing.T) {
	s := openTemp(t)
	if got := ids(t, s); len(got) != 0 {
		t.Fatalf("new store lists %v", got)
	}
	c, err := s.Add(NewCluster{
		Name:             "Prod EU",
		Server:           "https://prod.example:6443",
		Kubeconfig:       []byte("kubeconfig-prod"),
		AllowExecPlugins: true,
		Settings:         Settings{DefaultNamespace: "team-a"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.ID != "prod-eu" || c.Name != "Prod EU" || c.Server != "https://prod.example:6443" || !c.AllowExecPlugins || c.AddedAt.IsZero() {
		t.Fatalf("Add returned %+v", c)
	}
	got, err := s.Get(c.ID)
	if err != nil || got != c {
		t.Fatalf("Get = %+v, %v; want %+v", got, err, c)
	}
	kc, err := s.Kubeconfig(c.ID)
	if err != nil || string(kc) != "kubeconfig-prod" {
		t.Fatalf("Kubeconfig = %q, %v", kc, err)
	}
	st, err := s.Settings(c.ID)
	if err != nil || st != (Settings{DefaultNamespace: "team-a", DefaultExposure: ExposureClusterIP}) {
		t.Fatalf("Settings = %+v, %v", st, err)
	}
	list, err := s.List()
	if err != nil || len(list) != 1 || list[0] != c {
		t.Fatalf("List = %+v, %v", list, err)
	}

	// Credentials are secrets: nothing in the cluster's folder is readable
	// by others.
	assertMode(t, filepath.Join(s.Dir(), "clusters"), 0o700)
	assertMode(t, filepath.Join(s.Dir(), "clusters", c.ID), 0o700)
	for _, f := range []string{"kubeconfig", "cluster.json", "settings.json"} {
		assertMode(t, filepath.Join(s.Dir(), "clusters", c.ID, f), 0o600)
	}

	if err := s.Remove(c.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(c.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after Remove: %v, want ErrNotFound", err)
	}
	if err := s.Remove(c.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second Remove: %v, want ErrNotFound", err)
	}
	if got := ids(t, s); len(got) != 0 {
		t.Fatalf("List after Remove: %v", got)
	}
	entries, _ := os.ReadDir(filepath.Join(s.Dir(), "clusters"))
	if len(entries) != 0 {
		t.Fatalf("Remove left %v behind", entries)
	}
}

func TestNotFoundAndHostileIDs(t *testing.T) {
	s := openTemp(t)
	mustAdd(t, s, "a", "kc")
	// A file outside the store that a path-traversing id would reach.
	if err := os.WriteFile(filepath.Join(s.Dir(), "cluster.json"), []byte(`{"version":1}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"", "nope", "..", "../clusters/a", "A", "a--b", ".staging-x", "a/b"} {
		if _, err := s.Get(id); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get(%q) = %v, want ErrNotFound", id, err)
		}
		if _, err := s.Kubeconfig(id); !errors.Is(err, ErrNotFound) {
			t.Errorf("Kubeconfig(%q) = %v, want ErrNotFound", id, err)
		}
		if _, err := s.Settings(id); !errors.Is(err, ErrNotFound) {
			t.Errorf("Settings(%q) = %v, want ErrNotFound", id, err)
		}
		if err := s.SetSettings(id, Settings{}); !errors.Is(err, ErrNotFound) {
			t.Errorf("SetSettings(%q) = %v, want ErrNotFound", id, err)
		}
		if err := s.Remove(id); !errors.Is(err, ErrNotFound) {
			t.Errorf("Remove(%q) = %v, want ErrNotFound", id, err)
		}
	}
	if got := ids(t, s); strings.Join(got, ",") != "a" {
		t.Fatalf("hostile ids changed the store: %v", got)
	}
	if err := s.Remove("nope"); err == nil || err.Error() != `no joined cluster has id "nope"` {
		t.Errorf("message: %v", err)
	}
}

func TestIDs(t *testing.T) {
	for name, want := range map[string]string{
		"prod":                          "prod",
		"Prod EU":                       "prod-eu",
		"  --Dev__Cluster--  ":          "dev-cluster",
		"a--b":                          "a-b",
		"kind-kind":                     "kind-kind",
		"arn:aws:eks:eu-west-1:1:x":     "arn-aws-eks-eu-west",
		"":                              "cluster",
		"日本":                            "cluster",
		"https://10.0.0.1:6443":         "https-10-0-0-1-6443",
		"a-very-long-cluster-name-here": "a-very-long-cluster",
	} {
		got := idBase(name)
		if got != want {
			t.Errorf("idBase(%q) = %q, want %q", name, got, want)
		}
		if !ValidID(got) || !ValidID(idCandidate(got, maxIDSuffix)) {
			t.Errorf("idBase(%q) = %q is not a valid id", name, got)
		}
	}

	s := openTemp(t)
	a := mustAdd(t, s, "Prod", "1")
	b := mustAdd(t, s, "prod", "2")
	c := mustAdd(t, s, "PROD!", "3")
	if a.ID != "prod" || b.ID != "prod-2" || c.ID != "prod-3" {
		t.Fatalf("ids %q %q %q, want prod, prod-2, prod-3", a.ID, b.ID, c.ID)
	}
	// Ids are stable: removing one does not renumber the others.
	if err := s.Remove("prod-2"); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(ids(t, s), ","); got != "prod,prod-3" {
		t.Fatalf("after remove: %s", got)
	}
	if kc, _ := s.Kubeconfig("prod-3"); string(kc) != "3" {
		t.Fatalf("prod-3 kubeconfig %q", kc)
	}
	// The freed id is the first free one again.
	if d := mustAdd(t, s, "prod", "4"); d.ID != "prod-2" {
		t.Fatalf("re-add got %q, want prod-2", d.ID)
	}
}

func TestAddValidates(t *testing.T) {
	s := openTemp(t)
	for _, nc := range []NewCluster{
		{Name: "", Kubeconfig: []byte("x")},
		{Name: "x"},
		{Name: "x", Kubeconfig: []byte("x"), Settings: Settings{DefaultExposure: "NodePort"}},
	} {
		if _, err := s.Add(nc); err == nil {
			t.Errorf("Add(%+v) succeeded", nc)
		}
	}
	if got := ids(t, s); len(got) != 0 {
		t.Fatalf("invalid adds stored %v", got)
	}
}

func TestSettings(t *testing.T) {
	s := openTemp(t)
	c := mustAdd(t, s, "c", "kc")
	st, err := s.Settings(c.ID)
	if err != nil || st != (Settings{DefaultNamespace: "default", DefaultExposure: ExposureClusterIP}) {
		t.Fatalf("defaults: %+v, %v", st, err)
	}
	want := Settings{DefaultNamespace: "team-b", ImagePullSecret: "regcred", DefaultExposure: ExposureLoadBalancer}
	if err := s.SetSettings(c.ID, want); err != nil {
		t.Fatal(err)
	}
	if st, err := s.Settings(c.ID); err != nil || st != want {
		t.Fatalf("after set: %+v, %v", st, err)
	}
	assertMode(t, filepath.Join(s.Dir(), "clusters", c.ID, "settings.json"), 0o600)

	bad := []Settings{
		{DefaultNamespace: "Team_B"},
		{ImagePullSecret: "Not A Secret"},
		{DefaultExposure: "NodePort"},
	}
	for _, b := range bad {
		err := s.SetSettings(c.ID, b)
		if err == nil {
			t.Errorf("SetSettings(%+v) succeeded", b)
			continue
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("error is not one line: %q", err)
		}
	}
	if st, _ := s.Settings(c.ID); st != want {
		t.Fatalf("invalid settings changed the stored ones: %+v", st)
	}
	err = Settings{DefaultNamespace: "A", DefaultExposure: "x"}.Validate()
	if err == nil || !strings.Contains(err.Error(), "namespace") || !strings.Contains(err.Error(), "exposure") {
		t.Fatalf("Validate reports every bad field: %v", err)
	}
}

// failingWrite makes the next atomic writes of files named target write
// half their data and then fail, as a full disk or I/O error would.
func failingWrite(t *testing.T, target string) {
	t.Helper()
	orig := writeData
	t.Cleanup(func() { writeData = orig })
	writeData = func(w io.Writer, data []byte) error {
		if f, ok := w.(*os.File); ok && strings.HasPrefix(filepath.Base(f.Name()), "."+target+tmpInfix) {
			if _, err := w.Write(data[:len(data)/2]); err != nil {
				return err
			}
			return errors.New("injected: no space left on device")
		}
		return orig(w, data)
	}
}

// hiddenLeftovers lists hidden names anywhere in the clusters folder.
func hiddenLeftovers(t *testing.T, s *Store) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(filepath.Join(s.Dir(), "clusters"), func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), ".") {
			out = append(out, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestInterruptedSettingsWriteKeepsOldSettings(t *testing.T) {
	s := openTemp(t)
	c := mustAdd(t, s, "c", "kc")
	old := Settings{DefaultNamespace: "old", DefaultExposure: ExposureClusterIP}
	if err := s.SetSettings(c.ID, old); err != nil {
		t.Fatal(err)
	}
	failingWrite(t, "settings.json")
	err := s.SetSettings(c.ID, Settings{DefaultNamespace: "new-namespace-with-a-longer-name"})
	if err == nil || !strings.Contains(err.Error(), "injected") {
		t.Fatalf("SetSettings = %v, want the injected failure", err)
	}
	if st, err := s.Settings(c.ID); err != nil || st != old {
		t.Fatalf("after the failed write: %+v, %v; want the old %+v", st, err, old)
	}
	if left := hiddenLeftovers(t, s); len(left) != 0 {
		t.Fatalf("failed write left %v", left)
	}
}

func TestInterruptedAddKeepsOldState(t *testing.T) {
	for _, target := range []string{"kubeconfig", "settings.json", "cluster.json"} {
		t.Run(target, func(t *testing.T) {
			s := openTemp(t)
			old := mustAdd(t, s, "prod", "old-credentials")
			failingWrite(t, target)
			_, err := s.Add(NewCluster{Name: "prod", Server: "https://new", Kubeconfig: []byte("new-credentials")})
			if err == nil || !strings.Contains(err.Error(), "injected") {
				t.Fatalf("Add = %v, want the injected failure", err)
			}
			if got := strings.Join(ids(t, s), ","); got != "prod" {
				t.Fatalf("List = %s, want only the old cluster", got)
			}
			if kc, err := s.Kubeconfig(old.ID); err != nil || string(kc) != "old-credentials" {
				t.Fatalf("old kubeconfig = %q, %v", kc, err)
			}
			if left := hiddenLeftovers(t, s); len(left) != 0 {
				t.Fatalf("failed Add left %v", left)
			}
		})
	}
}

func TestFailedPublishStoresNothing(t *testing.T) {
	s := openTemp(t)
	orig := rename
	t.Cleanup(func() { rename = orig })
	rename = func(from, to string) error {
		if strings.HasPrefix(filepath.Base(from), stagingPrefix) {
			return &os.LinkError{Op: "rename", Old: from, New: to, Err: errors.New("injected: input/output error")}
		}
		return orig(from, to)
	}
	if _, err := s.Add(NewCluster{Name: "x", Kubeconfig: []byte("kc")}); err == nil || !strings.Contains(err.Error(), "injected") {
		t.Fatalf("Add = %v, want the injected failure", err)
	}
	if got := ids(t, s); len(got) != 0 {
		t.Fatalf("List = %v after a failed publish", got)
	}
	if left := hiddenLeftovers(t, s); len(left) != 0 {
		t.Fatalf("failed Add left %v", left)
	}
}

func TestConcurrentAdds(t *testing.T) {
	s := openTemp(t)
	const n = 16
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		added   = map[string]string{} // id → kubeconfig
		errs    []error
		listErr = make(chan error, 1)
		done    = make(chan struct{})
	)
	// A reader running alongside must only ever see complete clusters.
	go func() {
		defer close(listErr)
		for {
			select {
			case <-done:
				return
			default:
			}
			cs, err := s.List()
			if err != nil {
				listErr <- err
				return
			}
			for _, c := range cs {
				kc, err := s.Kubeconfig(c.ID)
				if err != nil || !bytes.HasPrefix(kc, []byte("credentials-")) {
					listErr <- fmt.Errorf("listed cluster %s has kubeconfig %q, %v", c.ID, kc, err)
					return
				}
			}
		}
	}()
	for i := range n {
		wg.Go(func() {
			kc := fmt.Sprintf("credentials-%d", i)
			c, err := s.Add(NewCluster{Name: "shared name", Server: "https://x", Kubeconfig: []byte(kc)})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			if prev, dup := added[c.ID]; dup {
				errs = append(errs, fmt.Errorf("id %s handed out twice (%s and %s)", c.ID, prev, kc))
			}
			added[c.ID] = kc
		})
	}
	wg.Wait()
	close(done)
	if err := <-listErr; err != nil {
		t.Fatal(err)
	}
	for _, err := range errs {
		t.Error(err)
	}
	if got := ids(t, s); len(got) != n {
		t.Fatalf("List has %d clusters, want %d: %v", len(got), n, got)
	}
	for id, want := range added {
		if kc, err := s.Kubeconfig(id); err != nil || string(kc) != want {
			t.Errorf("cluster %s: kubeconfig %q, %v; want %q", id, kc, err, want)
		}
	}
}

func TestOpenSecuresAndDefaults(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	if err := os.MkdirAll(filepath.Join(dir, "clusters"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir); err != nil {
		t.Fatal(err)
	}
	assertMode(t, filepath.Join(dir, "clusters"), 0o700)

	t.Setenv(EnvStateDir, "/somewhere/else")
	if got, err := DefaultDir(); err != nil || got != "/somewhere/else" {
		t.Fatalf("DefaultDir with %s = %q, %v", EnvStateDir, got, err)
	}
	t.Setenv(EnvStateDir, "")
	t.Setenv("HOME", "/home/someone")
	if got, err := DefaultDir(); err != nil || got != "/home/someone/.guildnet" {
		t.Fatalf("DefaultDir = %q, %v", got, err)
	}
	if _, err := Open(""); err == nil {
		t.Fatal("Open(\"\") succeeded")
	}
}

func TestDamagedClusterFileIsReported(t *testing.T) {
	s := openTemp(t)
	c := mustAdd(t, s, "c", "kc")
	if err := os.WriteFile(filepath.Join(s.Dir(), "clusters", c.ID, "cluster.json"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.List(); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("List = %v, want a damaged-file error", err)
	}
	// A damaged cluster can still be removed.
	if err := s.Remove(c.ID); err != nil {
		t.Fatal(err)
	}
}

func TestWriteFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.config")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(path, []byte("new")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "new" {
		t.Fatalf("content %q", b)
	}
	assertMode(t, path, 0o600)
	failingWrite(t, "out.config")
	if err := WriteFile(path, []byte("newer")); err == nil {
		t.Fatal("injected failure not reported")
	}
	if b, _ := os.ReadFile(path); string(b) != "new" {
		t.Fatalf("after failed write: %q", b)
	}
}
