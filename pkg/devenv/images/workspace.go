package images

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// The code-server install (hack/code-server/install.sh) and where it goes in
// the image.
const (
	codeServerDir = "hack/code-server"
	optDir        = "/opt/code-server"
	// Inside the install directory: Node's binary and code-server's entry.
	nodeRel  = "node/bin/node"
	entryRel = "lib/node_modules/code-server/out/node/entry.js"
)

// codeServerInputs are the files whose content decides the install
// (install.sh pins the code-server and Node versions and the Node tarball's
// integrity; the lockfile pins every package).
var codeServerInputs = []string{"install.sh", "package.json", "package-lock.json"}

// launcherScript is /usr/bin/code-server. install.sh's own launcher
// hardcodes host paths, so the image gets this one.
const launcherScript = `#!/bin/sh
# code-server on its own Node (from hack/code-server/install.sh), in ` + optDir + `.
exec ` + optDir + "/" + nodeRel + " " + optDir + "/" + entryRel + ` "$@"
`

func workspaceConfig() v1.Config {
	return v1.Config{
		Entrypoint: []string{"/usr/bin/code-server"},
		Cmd:        []string{"--bind-addr", "0.0.0.0:8080", "--auth", "password", "."},
		User:       fmt.Sprintf("%d:%d", userID, userID),
		WorkingDir: userHome,
		Env: []string{
			"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
			"HOME=" + userHome,
			"USER=" + userName,
			"LANG=C.UTF-8",
			"SHELL=/bin/bash",
		},
		ExposedPorts: map[string]struct{}{"8080/tcp": {}},
	}
}

// workspaceKey hashes the base layer's key, the code-server install's
// inputs, the launcher and the image config.
func workspaceKey(repo, baseKey string) (string, error) {
	k := newHasher("code-server-workspace", recipeVersion)
	k.add("base", []byte(baseKey))
	for _, f := range codeServerInputs {
		if err := k.addFile("code-server "+f, filepath.Join(repo, codeServerDir, f)); err != nil {
			return "", fmt.Errorf("workspace image: %w (is RepoRoot %s the guildnet checkout?)", err, repo)
		}
	}
	k.add("launcher", []byte(launcherScript))
	cfg, err := json.Marshal(workspaceConfig())
	if err != nil {
		return "", err
	}
	k.add("config", cfg)
	return k.sum(), nil
}

// Workspace returns the code-server workspace image
// guildnet.local/code-server-workspace:<key>, building what is not cached:
// the Debian base layer (debootstrap, root, a few minutes, cached on its own
// so a code-server change does not redo it), the code-server install
// (install.sh, cached by the script) and the archive.
func Workspace(ctx context.Context, o Options) (Image, error) {
	repo, err := o.repoRoot()
	if err != nil {
		return Image{}, err
	}
	mirror := aptMirror("/etc")
	baseKey := rootfsKey(mirror)
	key, err := workspaceKey(repo, baseKey)
	if err != nil {
		return Image{}, err
	}
	return o.cached(ctx, "code-server-workspace", key, func(ctx context.Context, dir, archive string, tag name.Tag) error {
		basePath, err := o.rootfsLayer(ctx, dir, mirror, baseKey)
		if err != nil {
			return err
		}
		install, err := o.installCodeServer(ctx, repo)
		if err != nil {
			return err
		}

		start := time.Now()
		csPath := filepath.Join(dir, fmt.Sprintf(".code-server-layer-%d.tar", os.Getpid()))
		defer os.Remove(csPath)
		root := &owner{}
		err = writeLayerFile(csPath, func(lw *layerWriter) error {
			if err := lw.Dir("/opt", 0o755, owner{}); err != nil {
				return err
			}
			if err := lw.Dir(optDir, 0o755, owner{}); err != nil {
				return err
			}
			// Node's binary and licence; not its C headers (67 MB, only for
			// compiling native modules, done at install time).
			if err := lw.Tree(filepath.Join(install, "node/bin"), optDir+"/node/bin", root); err != nil {
				return err
			}
			lic, err := os.ReadFile(filepath.Join(install, "node/LICENSE"))
			if err != nil {
				return err
			}
			if err := lw.File(optDir+"/node/LICENSE", 0o644, owner{}, lic); err != nil {
				return err
			}
			if err := lw.Tree(filepath.Join(install, "lib"), optDir+"/lib", root); err != nil {
				return err
			}
			return lw.File("/usr/bin/code-server", 0o755, owner{}, []byte(launcherScript))
		})
		if err != nil {
			return fmt.Errorf("writing the code-server layer from %s: %w", install, err)
		}
		o.logf("code-server layer written in %s (%s)", since(start), fileSize(csPath))

		start = time.Now()
		var layers []v1.Layer
		for _, p := range []string{basePath, csPath} {
			l, err := layerFromFile(p)
			if err != nil {
				return err
			}
			layers = append(layers, l)
		}
		err = writeArchive(archive, tag, workspaceConfig(), layers, []string{
			fmt.Sprintf("guildnet-images: debootstrap --variant=minbase --include=%s %s", strings.Join(basePackages, ","), suite),
			"guildnet-images: " + codeServerDir + "/install.sh into " + optDir,
		})
		if err != nil {
			return err
		}
		o.logf("archive written in %s", since(start))
		return nil
	})
}

// installCodeServer runs hack/code-server/install.sh (instant when its
// cache is current) and returns the install directory: the launcher it
// prints is <install>/bin/code-server.
func (o Options) installCodeServer(ctx context.Context, repo string) (string, error) {
	script := filepath.Join(repo, codeServerDir, "install.sh")
	o.logf("code-server: %s ...", script)
	var stdout bytes.Buffer
	cmd := exec.CommandContext(ctx, script)
	cmd.Dir = repo
	cmd.Stdout = &stdout
	var stderr bytes.Buffer
	if o.Progress != nil {
		cmd.Stderr = io.MultiWriter(&stderr, o.Progress)
	} else {
		cmd.Stderr = &stderr
	}
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("installing code-server: %s failed (%v); its output:\n%s", script, err, tail(stderr.String(), 15))
	}
	launcher := strings.TrimSpace(stdout.String())
	if i := strings.LastIndexByte(launcher, '\n'); i >= 0 {
		launcher = launcher[i+1:]
	}
	install := filepath.Dir(filepath.Dir(launcher))
	for _, rel := range []string{nodeRel, entryRel} {
		if _, err := os.Stat(filepath.Join(install, rel)); err != nil {
			return "", fmt.Errorf("code-server install %s (from launcher %q) has no %s: did install.sh's layout change? (%v)", install, launcher, rel, err)
		}
	}
	return install, nil
}
