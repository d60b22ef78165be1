package images

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// pauseDir is the pause program's package, relative to the repository.
const pauseDir = "cmd/guildnet-pause"

// pauseKey hashes the recipe, the pause program's sources and the Go
// toolchain version (which decides the binary).
func pauseKey(repo, goVersion string) (string, error) {
	k := newHasher("pause", recipeVersion)
	k.add("go", []byte(goVersion))
	dir := filepath.Join(repo, pauseDir)
	files, err := goFiles(dir)
	if err != nil {
		return "", fmt.Errorf("pause image: %w (is RepoRoot %s the guildnet checkout?)", err, repo)
	}
	for _, f := range files {
		if err := k.addFile("src "+f, filepath.Join(dir, f)); err != nil {
			return "", err
		}
	}
	return k.sum(), nil
}

// Pause returns the pod sandbox image guildnet.local/pause:<key> (a static
// binary /pause that waits for a signal and reaps zombies), building it when
// it is not cached. Needs the go command on PATH.
func Pause(ctx context.Context, o Options) (Image, error) {
	repo, err := o.repoRoot()
	if err != nil {
		return Image{}, err
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		return Image{}, fmt.Errorf("pause image: the go command is not on PATH (it builds %s): %v", pauseDir, err)
	}
	ver, err := exec.CommandContext(ctx, goBin, "env", "GOVERSION").Output()
	if err != nil {
		return Image{}, fmt.Errorf("pause image: go env GOVERSION failed: %v", err)
	}
	key, err := pauseKey(repo, strings.TrimSpace(string(ver)))
	if err != nil {
		return Image{}, err
	}
	return o.cached(ctx, "pause", key, func(ctx context.Context, dir, archive string, tag name.Tag) error {
		tmp, err := os.MkdirTemp(dir, ".pause-build-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		bin := filepath.Join(tmp, "pause")
		// Static, stripped, and without paths, build ID or VCS stamp: the
		// same sources and toolchain give the same bytes.
		cmd := exec.CommandContext(ctx, goBin, "build", "-trimpath", "-buildvcs=false",
			"-ldflags=-s -w -buildid=", "-o", bin, "./"+pauseDir)
		cmd.Dir = repo
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("pause image: go build ./%s failed (%v):\n%s", pauseDir, err, out)
		}
		data, err := os.ReadFile(bin)
		if err != nil {
			return err
		}
		layerPath := filepath.Join(tmp, "layer.tar")
		if err := writeLayerFile(layerPath, func(lw *layerWriter) error {
			return lw.File("/pause", 0o755, owner{}, data)
		}); err != nil {
			return fmt.Errorf("pause image: writing its layer: %w", err)
		}
		layer, err := layerFromFile(layerPath)
		if err != nil {
			return err
		}
		return writeArchive(archive, tag, pauseConfig(), []v1.Layer{layer},
			[]string{"guildnet-images: /pause from " + pauseDir})
	})
}

func pauseConfig() v1.Config {
	return v1.Config{
		Entrypoint: []string{"/pause"},
		User:       "65535:65535",
		WorkingDir: "/",
	}
}
