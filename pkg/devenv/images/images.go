// Package images builds the local cluster's container images without a
// registry or docker: docker-archive tarballs made with go-containerregistry
// from layers this package writes itself, cached by a key of their inputs,
// and loaded into containerd with `ctr images import`.
//
//   - Pause: guildnet.local/pause:<key>, the pod sandbox image (containerd's
//     sandbox_image), one static Go binary (cmd/guildnet-pause).
//   - Workspace: guildnet.local/code-server-workspace:<key>, a Debian
//     bookworm root filesystem from debootstrap plus code-server on its own
//     Node 24 (hack/code-server/install.sh) in /opt/code-server, run as the
//     user coder (1000:1000).
//
// Layers are deterministic (sorted entries, clamped mtimes, numeric owners),
// so the same inputs give the same layer digests. An image's key is a hash of
// its inputs (recipe version, sources, package list, mirror, install files),
// never of the build's output: a cache hit is decided without building.
package images

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// recipeVersion is part of the image keys: bump it when the way an image is
// assembled changes in a way its hashed inputs do not show (this package's
// code). baseRecipeVersion is the same for the debootstrapped base layer
// alone, so changing the assembly does not redo debootstrap.
const (
	recipeVersion     = "2"
	baseRecipeVersion = "2"
)

// Registry is the (never contacted) registry host of the image names;
// pods using them need imagePullPolicy: Never.
const Registry = "guildnet.local"

// Image is one built image.
type Image struct {
	// Name is the image reference, e.g. guildnet.local/pause:0123456789ab.
	Name string
	// Archive is the docker-archive tarball (what `ctr images import` loads).
	Archive string
	// Key is the 12 hex digits of the input hash that tag the image and
	// name the archive.
	Key string
}

// Options say where the sources and the cache are.
type Options struct {
	// RepoRoot is the checkout (holding cmd/guildnet-pause and
	// hack/code-server). Empty: found upwards from the working directory.
	RepoRoot string
	// CacheDir holds the archives and cached layers. Empty:
	// ${GUILDNET_CACHE:-$HOME/.cache/guildnet}/images.
	CacheDir string
	// Progress receives progress lines; nil discards them.
	Progress io.Writer
}

func (o Options) logf(format string, args ...any) {
	if o.Progress != nil {
		fmt.Fprintf(o.Progress, "images: "+format+"\n", args...)
	}
}

// cacheDir returns the (created) cache directory.
func (o Options) cacheDir() (string, error) {
	dir := o.CacheDir
	if dir == "" {
		root := os.Getenv("GUILDNET_CACHE")
		if root == "" {
			home, err := os.UserHomeDir()
			if err != nil {
				return "", fmt.Errorf("no cache directory: set GUILDNET_CACHE or HOME (%v)", err)
			}
			root = filepath.Join(home, ".cache", "guildnet")
		}
		dir = filepath.Join(root, "images")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("creating the image cache %s: %w", dir, err)
	}
	return dir, nil
}

const modulePath = "github.com/guildnet/guildnet"

// repoRoot returns RepoRoot, or the nearest directory upwards from the
// working directory whose go.mod declares this module.
func (o Options) repoRoot() (string, error) {
	if o.RepoRoot != "" {
		return o.RepoRoot, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		if b, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil &&
			strings.Contains(string(b), "module "+modulePath+"\n") {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no checkout of %s above %s: run from the repository or set Options.RepoRoot", modulePath, wd)
		}
	}
}

// hasher builds a key from labelled inputs; labels and lengths are hashed
// too, so inputs cannot run into each other.
type hasher struct{ h []byte }

func newHasher(kind, recipe string) *hasher {
	k := &hasher{}
	k.add("kind", []byte(kind))
	k.add("recipe", []byte(recipe))
	return k
}

func (k *hasher) add(label string, data []byte) {
	k.h = fmt.Appendf(k.h, "%s %d\n", label, len(data))
	k.h = append(k.h, data...)
	k.h = append(k.h, '\n')
}

func (k *hasher) addFile(label, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("reading an input of the image key: %w", err)
	}
	k.add(label, b)
	return nil
}

// sum returns the full hex sha256.
func (k *hasher) sum() string {
	s := sha256.Sum256(k.h)
	return hex.EncodeToString(s[:])
}

// short is the part of a key used in tags and file names.
func short(key string) string { return key[:12] }

// cached returns the image short:key from the cache, or builds it with
// build (which writes a docker-archive to the path it is given) under a
// lock, then renames the result into place and removes archives of the same
// image with other keys.
func (o Options) cached(ctx context.Context, shortName, key string, build func(ctx context.Context, dir, archive string, tag name.Tag) error) (Image, error) {
	dir, err := o.cacheDir()
	if err != nil {
		return Image{}, err
	}
	img := Image{
		Name:    Registry + "/" + shortName + ":" + short(key),
		Archive: filepath.Join(dir, shortName+"-"+short(key)+".tar"),
		Key:     short(key),
	}
	tag, err := name.NewTag(img.Name, name.StrictValidation)
	if err != nil {
		return Image{}, fmt.Errorf("image name %q: %w", img.Name, err)
	}
	if fileExists(img.Archive) {
		o.logf("%s cached (%s)", img.Name, img.Archive)
		return img, nil
	}
	unlock, err := o.lock(ctx, filepath.Join(dir, "."+shortName+".lock"))
	if err != nil {
		return Image{}, err
	}
	defer unlock()
	if fileExists(img.Archive) { // built by whoever held the lock
		o.logf("%s cached (%s)", img.Name, img.Archive)
		return img, nil
	}
	start := time.Now()
	o.logf("building %s ...", img.Name)
	tmp := filepath.Join(dir, fmt.Sprintf(".%s-%s.tar.tmp-%d", shortName, short(key), os.Getpid()))
	defer os.Remove(tmp)
	if err := build(ctx, dir, tmp, tag); err != nil {
		return Image{}, err
	}
	if err := os.Rename(tmp, img.Archive); err != nil {
		return Image{}, fmt.Errorf("moving the built archive into the cache: %w", err)
	}
	o.logf("built %s in %s: %s (%s)", img.Name, since(start), img.Archive, fileSize(img.Archive))
	o.prune(dir, shortName+"-", ".tar", img.Archive)
	return img, nil
}

// prune removes files dir/prefix*suffix other than keep: archives or layers
// of older keys (each is hundreds of MB).
func (o Options) prune(dir, prefix, suffix, keep string) {
	matches, _ := filepath.Glob(filepath.Join(dir, prefix+"*"+suffix))
	for _, m := range matches {
		rest := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(m), prefix), suffix)
		if m == keep || len(rest) != 12 || strings.Trim(rest, "0123456789abcdef") != "" {
			continue
		}
		if os.Remove(m) == nil {
			o.logf("removed the outdated %s", m)
		}
	}
}

// lock takes an exclusive flock on path, waiting (and saying so) while
// another process holds it.
func (o Options) lock(ctx context.Context, path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening the lock file: %w", err)
	}
	said := false
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil // closing releases the lock
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("locking %s: %w", path, err)
		}
		if !said {
			o.logf("another process is building this image (lock %s); waiting ...", path)
			said = true
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// writeArchive assembles the image (a config over the layers, in order) and
// writes it as a docker-archive.
func writeArchive(archive string, tag name.Tag, cfg v1.Config, layers []v1.Layer, createdBy []string) error {
	img, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{
		Architecture: runtime.GOARCH,
		OS:           "linux",
		Created:      v1.Time{Time: layerEpoch},
		Config:       cfg,
		RootFS:       v1.RootFS{Type: "layers"},
	})
	if err != nil {
		return err
	}
	adds := make([]mutate.Addendum, len(layers))
	for i, l := range layers {
		adds[i] = mutate.Addendum{Layer: l, History: v1.History{Created: v1.Time{Time: layerEpoch}, CreatedBy: createdBy[i]}}
	}
	if img, err = mutate.Append(img, adds...); err != nil {
		return err
	}
	if err := tarball.WriteToFile(archive, tag, img); err != nil {
		return fmt.Errorf("writing the docker-archive %s: %w", archive, err)
	}
	return nil
}

// Import loads an archive into containerd's k8s.io namespace (the one the
// CRI plugin, hence the kubelet, uses) and unpacks it into the default
// snapshotter, so a pod with imagePullPolicy: Never starts from it.
func Import(ctx context.Context, ctrBinary, containerdSocket string, img Image) error {
	if ctrBinary == "" {
		ctrBinary = "ctr"
	}
	if _, err := exec.LookPath(ctrBinary); err != nil {
		return fmt.Errorf("importing %s: ctr not found (%v): apt-get install containerd", img.Name, err)
	}
	if !fileExists(img.Archive) {
		return fmt.Errorf("importing %s: archive %s does not exist: build it with images.Pause/Workspace (or make images)", img.Name, img.Archive)
	}
	base := []string{"--address", containerdSocket, "--namespace", "k8s.io"}
	args := append(append([]string{}, base...), "images", "import", "--no-unpack=false", img.Archive)
	out, err := exec.CommandContext(ctx, ctrBinary, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("importing %s: %s %s failed (%v); is containerd serving %s? output:\n%s",
			img.Name, ctrBinary, strings.Join(args, " "), err, containerdSocket, strings.TrimSpace(string(out)))
	}
	args = append(append([]string{}, base...), "images", "ls", "--quiet")
	list, err := exec.CommandContext(ctx, ctrBinary, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("listing images after importing %s: %s %s failed (%v):\n%s",
			img.Name, ctrBinary, strings.Join(args, " "), err, strings.TrimSpace(string(list)))
	}
	for _, l := range strings.Split(string(list), "\n") {
		if strings.TrimSpace(l) == img.Name {
			return nil
		}
	}
	return fmt.Errorf("importing %s: ctr reported success but the image is not listed in namespace k8s.io; import output:\n%s",
		img.Name, strings.TrimSpace(string(out)))
}

func fileExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

func fileSize(p string) string {
	fi, err := os.Stat(p)
	if err != nil {
		return "?"
	}
	return fmt.Sprintf("%.1f MB", float64(fi.Size())/1e6)
}

func since(t time.Time) string { return time.Since(t).Round(100 * time.Millisecond).String() }

// goFiles returns the sorted .go files (tests excluded) of dir.
func goFiles(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var files []string
	for _, e := range entries {
		n := e.Name()
		if e.Type().IsRegular() && strings.HasSuffix(n, ".go") && !strings.HasSuffix(n, "_test.go") {
			files = append(files, n)
		}
	}
	sort.Strings(files)
	if len(files) == 0 {
		return nil, fmt.Errorf("no Go files in %s", dir)
	}
	return files, nil
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
