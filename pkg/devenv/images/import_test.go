package images

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestImport loads the cached images into a running containerd. It needs
// one, so it runs only when GUILDNET_IMAGES_CONTAINERD is its socket, e.g.
//
//	GUILDNET_IMAGES_CONTAINERD=/tmp/x/containerd.sock go test -run TestImport -v ./pkg/devenv/images
//
// and builds the workspace image first if it is not cached (minutes, root).
func TestImport(t *testing.T) {
	sock := os.Getenv("GUILDNET_IMAGES_CONTAINERD")
	if sock == "" {
		t.Skip("GUILDNET_IMAGES_CONTAINERD (a containerd socket) not set")
	}
	repo, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	o := Options{RepoRoot: repo, Progress: testWriter{t}}
	for _, build := range []func(context.Context, Options) (Image, error){Pause, Workspace} {
		img, err := build(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if err := Import(ctx, "", sock, img); err != nil {
			t.Fatal(err)
		}
		t.Logf("imported %s (%s) in %s", img.Name, fileSize(img.Archive), since(start))
	}
	// A missing archive is reported as such.
	err = Import(ctx, "", sock, Image{Name: "guildnet.local/none:0", Archive: filepath.Join(t.TempDir(), "none.tar")})
	if err == nil {
		t.Fatal("importing a missing archive succeeded")
	}
	t.Log(err)
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }
