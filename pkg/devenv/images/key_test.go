package images

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// fakeRepo makes the files the keys read.
func fakeRepo(t *testing.T) string {
	t.Helper()
	repo := t.TempDir()
	for rel, content := range map[string]string{
		"cmd/guildnet-pause/main.go":         "package main\n",
		"hack/code-server/install.sh":        "#!/bin/sh\n",
		"hack/code-server/package.json":      `{"dependencies":{"code-server":"4.139.1"}}`,
		"hack/code-server/package-lock.json": `{}`,
	} {
		p := filepath.Join(repo, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return repo
}

func TestPauseKey(t *testing.T) {
	repo := fakeRepo(t)
	k1, err := pauseKey(repo, "go1.26.8")
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := pauseKey(repo, "go1.26.8"); again != k1 {
		t.Fatal("same inputs, different keys")
	}
	if k, _ := pauseKey(repo, "go1.27.0"); k == k1 {
		t.Error("a different Go version kept the key")
	}
	main := filepath.Join(repo, "cmd/guildnet-pause/main.go")
	if err := os.WriteFile(main, []byte("package main // changed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	k2, _ := pauseKey(repo, "go1.26.8")
	if k2 == k1 {
		t.Error("a changed source kept the key")
	}
	// A test file is not an input; a new source file is.
	os.WriteFile(filepath.Join(repo, "cmd/guildnet-pause/main_test.go"), []byte("package main\n"), 0o644)
	if k, _ := pauseKey(repo, "go1.26.8"); k != k2 {
		t.Error("a test file changed the key")
	}
	os.WriteFile(filepath.Join(repo, "cmd/guildnet-pause/extra.go"), []byte("package main\n"), 0o644)
	if k, _ := pauseKey(repo, "go1.26.8"); k == k2 {
		t.Error("a new source file kept the key")
	}
}

func TestWorkspaceKey(t *testing.T) {
	repo := fakeRepo(t)
	base := rootfsKey("http://deb.debian.org/debian")
	if rootfsKey("http://mirror.example/debian") == base {
		t.Error("a different mirror kept the base key")
	}
	k1, err := workspaceKey(repo, base)
	if err != nil {
		t.Fatal(err)
	}
	if k, _ := workspaceKey(repo, base); k != k1 {
		t.Fatal("same inputs, different keys")
	}
	if k, _ := workspaceKey(repo, rootfsKey("http://mirror.example/debian")); k == k1 {
		t.Error("a different base kept the workspace key")
	}
	for _, f := range codeServerInputs {
		p := filepath.Join(repo, "hack/code-server", f)
		orig, _ := os.ReadFile(p)
		os.WriteFile(p, append(orig, ' '), 0o644)
		if k, _ := workspaceKey(repo, base); k == k1 {
			t.Errorf("a changed %s kept the key", f)
		}
		os.WriteFile(p, orig, 0o644)
	}
	os.Remove(filepath.Join(repo, "hack/code-server/package-lock.json"))
	if _, err := workspaceKey(repo, base); err == nil || !strings.Contains(err.Error(), "package-lock.json") {
		t.Errorf("missing input: err %v, want one naming package-lock.json", err)
	}
}

func TestAptMirror(t *testing.T) {
	etc := t.TempDir()
	os.MkdirAll(filepath.Join(etc, "apt/sources.list.d"), 0o755)
	if m := aptMirror(etc); m != defaultMirror {
		t.Errorf("no sources: %q, want %q", m, defaultMirror)
	}
	os.WriteFile(filepath.Join(etc, "apt/sources.list"),
		[]byte("# c\ndeb-src http://src.example/debian bookworm main\ndeb [arch=amd64 signed-by=/k.gpg] http://list.example/debian/ bookworm main\n"), 0o644)
	if m := aptMirror(etc); m != "http://list.example/debian" {
		t.Errorf("sources.list: %q", m)
	}
	os.WriteFile(filepath.Join(etc, "apt/sources.list.d/debian.sources"), []byte(`Types: deb
URIs: http://deb.example/debian-security
Suites: bookworm-security
Components: main

Types: deb
# a comment
URIs: http://deb.example/debian
Suites: bookworm bookworm-updates
Components: main
`), 0o644)
	if m := aptMirror(etc); m != "http://deb.example/debian" {
		t.Errorf("debian.sources: %q", m)
	}
}

// TestPause builds the real pause image into a temporary cache (a few
// seconds: one small go build), checks the archive, and that a second call
// reuses it.
func TestPause(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a Go binary")
	}
	repo, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	var progress strings.Builder
	o := Options{RepoRoot: repo, CacheDir: t.TempDir(), Progress: &progress}
	img, err := Pause(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(img.Name, "guildnet.local/pause:") || !strings.HasSuffix(img.Name, ":"+img.Key) {
		t.Errorf("name %q key %q", img.Name, img.Key)
	}
	im, err := tarball.ImageFromPath(img.Archive, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := im.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Config.User != "65535:65535" || len(cfg.Config.Entrypoint) != 1 || cfg.Config.Entrypoint[0] != "/pause" || cfg.OS != "linux" {
		t.Errorf("config %+v", cfg.Config)
	}
	layers, _ := im.Layers()
	if len(layers) != 1 {
		t.Fatalf("%d layers", len(layers))
	}
	first, _ := layers[0].Digest()

	// Cached: same archive, says so.
	again, err := Pause(context.Background(), o)
	if err != nil || again != img || !strings.Contains(progress.String(), "cached") {
		t.Errorf("second call: %+v %v; progress:\n%s", again, err, progress.String())
	}
	// Rebuilt from scratch: the same layer bytes (reproducible binary).
	os.Remove(img.Archive)
	rebuilt, err := Pause(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	im2, err := tarball.ImageFromPath(rebuilt.Archive, nil)
	if err != nil {
		t.Fatal(err)
	}
	layers2, _ := im2.Layers()
	if second, _ := layers2[0].Digest(); second != first {
		t.Errorf("rebuilt pause layer %s differs from %s", second, first)
	}
}
