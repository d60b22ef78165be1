package images

import (
	"archive/tar"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"syscall"
	"testing"
	"time"
)

// makeTree creates a small tree exercising the writer's cases and returns it.
func makeTree(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	write := func(rel, content string, mode os.FileMode) {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
	}
	// Created out of order on purpose.
	write("zeta", "z", 0o644)
	write("b/y", "y", 0o600)
	write("a.x", "ax", 0o644)
	write("a/x", "x", 0o755)
	write("old", "old", 0o644)
	if err := os.Symlink("a/x", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(dir, "a/x"), filepath.Join(dir, "b/hard")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	old := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	if err := os.Chtimes(filepath.Join(dir, "old"), old, old); err != nil {
		t.Fatal(err)
	}
	return dir
}

func writeTreeLayer(t *testing.T, dir, imagePath string, force *owner) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "layer.tar")
	if err := writeLayerFile(out, func(lw *layerWriter) error { return lw.Tree(dir, imagePath, force) }); err != nil {
		t.Fatal(err)
	}
	return out
}

func readLayer(t *testing.T, p string) []*tar.Header {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var hdrs []*tar.Header
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return hdrs
		}
		if err != nil {
			t.Fatal(err)
		}
		hdrs = append(hdrs, h)
	}
}

func digestOf(t *testing.T, p string) string {
	t.Helper()
	l, err := layerFromFile(p)
	if err != nil {
		t.Fatal(err)
	}
	d, _ := l.Digest()
	return d.String()
}

func TestLayerIsDeterministic(t *testing.T) {
	dir := makeTree(t)
	first := digestOf(t, writeTreeLayer(t, dir, "/", nil))

	// Touching files (all newer than layerEpoch) must not change the layer.
	later := time.Now().Add(time.Hour)
	for _, rel := range []string{"zeta", "a/x", "b", "."} {
		if err := os.Chtimes(filepath.Join(dir, rel), later, later); err != nil {
			t.Fatal(err)
		}
	}
	if second := digestOf(t, writeTreeLayer(t, dir, "/", nil)); second != first {
		t.Fatalf("same tree gave two digests: %s then %s", first, second)
	}

	// A content change must.
	if err := os.WriteFile(filepath.Join(dir, "zeta"), []byte("Z"), 0o644); err != nil {
		t.Fatal(err)
	}
	if third := digestOf(t, writeTreeLayer(t, dir, "/", nil)); third == first {
		t.Fatal("changed content kept the digest")
	}
}

func TestLayerEntries(t *testing.T) {
	dir := makeTree(t)
	hdrs := readLayer(t, writeTreeLayer(t, dir, "/", nil))

	var names []string
	byName := map[string]*tar.Header{}
	for _, h := range hdrs {
		names = append(names, h.Name)
		byName[h.Name] = h
	}
	// Each directory before its children, siblings sorted; the FIFO left out.
	want := []string{"a/", "a/x", "a.x", "b/", "b/hard", "b/y", "link", "old", "zeta"}
	if !reflect.DeepEqual(names, want) {
		t.Fatalf("entries %q, want %q", names, want)
	}

	for _, h := range hdrs {
		if h.Name == "old" {
			if want := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC); !h.ModTime.Equal(want) {
				t.Errorf("old: mtime %v, want it kept (%v)", h.ModTime, want)
			}
		} else if !h.ModTime.Equal(layerEpoch) {
			t.Errorf("%s: mtime %v, want clamped to %v", h.Name, h.ModTime, layerEpoch)
		}
		if h.Uname != "" || h.Gname != "" {
			t.Errorf("%s: has user/group names %q/%q", h.Name, h.Uname, h.Gname)
		}
		if !h.AccessTime.IsZero() || !h.ChangeTime.IsZero() {
			t.Errorf("%s: has atime/ctime", h.Name)
		}
	}
	if h := byName["b/hard"]; h.Typeflag != tar.TypeLink || h.Linkname != "a/x" {
		t.Errorf("b/hard: type %q link %q, want a hardlink to a/x", h.Typeflag, h.Linkname)
	}
	if h := byName["link"]; h.Typeflag != tar.TypeSymlink || h.Linkname != "a/x" {
		t.Errorf("link: type %q link %q, want a symlink to a/x", h.Typeflag, h.Linkname)
	}
	if h := byName["a/x"]; h.Mode != 0o755 || h.Size != 1 {
		t.Errorf("a/x: mode %o size %d", h.Mode, h.Size)
	}
	if h := byName["b/y"]; h.Mode != 0o600 {
		t.Errorf("b/y: mode %o, want 600", h.Mode)
	}
}

func TestLayerUnderPathWithOwner(t *testing.T) {
	dir := makeTree(t)
	out := filepath.Join(t.TempDir(), "layer.tar")
	err := writeLayerFile(out, func(lw *layerWriter) error {
		if err := lw.Tree(dir, "/opt/app", &owner{UID: 7, GID: 8}); err != nil {
			return err
		}
		return lw.File("/usr/bin/app", 0o755, owner{}, []byte("#!/bin/sh\n"))
	})
	if err != nil {
		t.Fatal(err)
	}
	hdrs := readLayer(t, out)
	want := []string{"opt/", "opt/app/", "opt/app/a/", "opt/app/a/x"}
	for i, w := range want {
		if hdrs[i].Name != w {
			t.Fatalf("entry %d is %q, want %q (all: %v)", i, hdrs[i].Name, w, hdrs)
		}
	}
	if hdrs[0].Uid != 0 || hdrs[1].Uid != 7 || hdrs[1].Gid != 8 {
		t.Errorf("owners: opt/ %d, opt/app/ %d:%d; want 0 and 7:8", hdrs[0].Uid, hdrs[1].Uid, hdrs[1].Gid)
	}
	last := hdrs[len(hdrs)-3:]
	if last[0].Name != "usr/" || last[1].Name != "usr/bin/" || last[2].Name != "usr/bin/app" || last[2].Mode != 0o755 {
		t.Errorf("file with parents: %v %v %v", last[0].Name, last[1].Name, last[2].Name)
	}
}
