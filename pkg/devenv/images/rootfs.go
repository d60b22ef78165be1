package images

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// The workspace's base: Debian bookworm, minbase variant, plus what
// code-server needs at run time. Node and code-server's native modules link
// libstdc++ and libgcc (already in minbase, apt needs them); the kerberos
// module links libkrb5 and libgssapi_krb5; the terminal and git extension
// need bash, git and procps (ps/kill for its process tree); ca-certificates
// for git and extensions over HTTPS; less as git's pager.
const suite = "bookworm"

var basePackages = []string{
	"bash",
	"ca-certificates",
	"git",
	"less",
	"libgssapi-krb5-2",
	"libkrb5-3",
	"procps",
}

const defaultMirror = "http://deb.debian.org/debian"

// The workspace user. Numeric in the image config so the runtime needs no
// /etc/passwd lookup and runAsNonRoot can verify it.
const (
	userName = "coder"
	userID   = 1000
	userHome = "/home/coder"
)

// rootfsKey hashes what decides the base layer.
func rootfsKey(mirror string) string {
	k := newHasher("rootfs", baseRecipeVersion)
	k.add("suite", []byte(suite))
	k.add("variant", []byte("minbase"))
	k.add("mirror", []byte(mirror))
	k.add("packages", []byte(strings.Join(basePackages, ",")))
	k.add("user", fmt.Appendf(nil, "%s %d %s", userName, userID, userHome))
	return k.sum()
}

// aptMirror returns the Debian mirror this machine's apt uses (the first
// http(s) URI of a "deb" source for bookworm, from deb822
// /etc/apt/sources.list.d/debian.sources or the one-line
// /etc/apt/sources.list), else deb.debian.org.
func aptMirror(etc string) string {
	if m := mirrorFromDeb822(filepath.Join(etc, "apt/sources.list.d/debian.sources")); m != "" {
		return m
	}
	if m := mirrorFromList(filepath.Join(etc, "apt/sources.list")); m != "" {
		return m
	}
	return defaultMirror
}

func usableMirror(uri string) bool {
	return (strings.HasPrefix(uri, "http://") || strings.HasPrefix(uri, "https://")) &&
		!strings.Contains(uri, "security") // debian-security has no bookworm suite
}

func mirrorFromDeb822(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	for _, stanza := range strings.Split(string(b), "\n\n") {
		fields := map[string][]string{}
		for _, line := range strings.Split(stanza, "\n") {
			if strings.HasPrefix(line, "#") || !strings.Contains(line, ":") {
				continue
			}
			k, v, _ := strings.Cut(line, ":")
			fields[strings.ToLower(strings.TrimSpace(k))] = strings.Fields(v)
		}
		if en := fields["enabled"]; len(en) > 0 && en[0] == "no" {
			continue
		}
		if !contains(fields["types"], "deb") || !contains(fields["suites"], suite) {
			continue
		}
		for _, u := range fields["uris"] {
			if usableMirror(u) {
				return strings.TrimRight(u, "/")
			}
		}
	}
	return ""
}

func mirrorFromList(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 || f[0] != "deb" {
			continue
		}
		f = f[1:]
		if strings.HasPrefix(f[0], "[") { // options: [arch=amd64 signed-by=...]
			for len(f) > 0 && !strings.HasSuffix(f[0], "]") {
				f = f[1:]
			}
			if len(f) > 0 {
				f = f[1:]
			}
		}
		if len(f) >= 2 && f[1] == suite && usableMirror(f[0]) {
			return strings.TrimRight(f[0], "/")
		}
	}
	return ""
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// rootfsLayer returns the cached base layer tar for key, running debootstrap
// and writing the layer when missing. The caller holds the workspace lock.
func (o Options) rootfsLayer(ctx context.Context, dir, mirror, key string) (string, error) {
	layers := filepath.Join(dir, "layers")
	if err := os.MkdirAll(layers, 0o755); err != nil {
		return "", err
	}
	prefix := "rootfs-" + suite + "-"
	layer := filepath.Join(layers, prefix+short(key)+".tar")
	if fileExists(layer) {
		o.logf("debootstrap %s: cached layer %s", suite, layer)
		return layer, nil
	}
	debootstrap, err := exec.LookPath("debootstrap")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/debootstrap"); serr != nil {
			return "", errors.New("debootstrap not installed: apt-get install debootstrap")
		}
		debootstrap = "/usr/sbin/debootstrap"
	}
	if os.Geteuid() != 0 {
		return "", errors.New("the workspace image's base needs debootstrap, which needs root: run as root once (the layer is cached afterwards)")
	}
	// Trees of an interrupted earlier run (we hold the workspace lock, so
	// nobody else is using them).
	stale, _ := filepath.Glob(filepath.Join(dir, ".rootfs-*"))
	for _, s := range stale {
		unmountUnder(s)
		os.RemoveAll(s)
	}
	root, err := os.MkdirTemp(dir, ".rootfs-")
	if err != nil {
		return "", err
	}
	defer func() {
		unmountUnder(root)
		os.RemoveAll(root)
	}()
	logPath := filepath.Join(layers, prefix+short(key)+".debootstrap.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return "", err
	}
	defer logFile.Close()

	start := time.Now()
	o.logf("debootstrap %s from %s with %s (takes a few minutes; log %s) ...",
		suite, mirror, strings.Join(basePackages, ","), logPath)
	args := []string{"--variant=minbase", "--include=" + strings.Join(basePackages, ","), suite, root, mirror}
	cmd := exec.CommandContext(ctx, debootstrap, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = append(os.Environ(), "LC_ALL=C", "DEBIAN_FRONTEND=noninteractive")
	// Its own process group, so cancelling also stops the dpkg/chroot
	// children it started.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	if err := cmd.Run(); err != nil {
		// debootstrap keeps its detailed log inside the target on failure.
		if inner, rerr := os.ReadFile(filepath.Join(root, "debootstrap", "debootstrap.log")); rerr == nil {
			fmt.Fprintf(logFile, "\n--- %s/debootstrap/debootstrap.log ---\n%s", root, inner)
		}
		last, _ := os.ReadFile(logPath)
		return "", fmt.Errorf("debootstrap %s from %s failed (%v; see %s); last lines:\n%s",
			suite, mirror, err, logPath, tail(string(last), 8))
	}
	o.logf("debootstrap %s done in %s", suite, since(start))
	if err := finishRootfs(root); err != nil {
		return "", fmt.Errorf("preparing the debootstrapped tree %s: %w", root, err)
	}
	// debootstrap unmounts /proc and /sys of the target when it succeeds;
	// never archive a mounted tree (it would copy the host's /proc).
	if m := mountsUnder(root); len(m) > 0 {
		return "", fmt.Errorf("debootstrap left %s mounted; unmount them and retry", strings.Join(m, ", "))
	}

	start = time.Now()
	skipped := 0
	err = writeLayerFile(layer, func(lw *layerWriter) error {
		err := lw.Tree(root, "/", nil)
		skipped = lw.skipped
		return err
	})
	if err != nil {
		return "", fmt.Errorf("writing the base layer %s: %w", layer, err)
	}
	o.logf("base layer written in %s: %s (%s; %d device files left out)", since(start), layer, fileSize(layer), skipped)
	o.prune(layers, prefix, ".tar", layer)
	o.prune(layers, prefix, ".debootstrap.log", logPath)
	return layer, nil
}

// finishRootfs removes what makes a debootstrapped tree differ between runs
// or machines (apt lists and caches, logs, backups, the host's hostname and
// resolv.conf) and adds the user coder.
func finishRootfs(root string) error {
	at := func(p string) string { return filepath.Join(root, p) }
	for _, d := range []string{"var/lib/apt/lists", "var/cache/apt", "var/log", "tmp", "var/tmp"} {
		if err := removeFilesUnder(at(d)); err != nil {
			return err
		}
	}
	olds, _ := filepath.Glob(at("var/cache/debconf/*-old"))
	more, _ := filepath.Glob(at("var/lib/dpkg/*-old"))
	for _, p := range append(append(olds, more...), at("var/cache/ldconfig/aux-cache"), at("var/lib/dbus/machine-id")) {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	// The container runtime provides these; debootstrap copied the host's.
	for p, content := range map[string]string{"etc/hostname": "localhost\n", "etc/resolv.conf": ""} {
		if err := os.WriteFile(at(p), []byte(content), 0o644); err != nil {
			return err
		}
		if err := os.Chmod(at(p), 0o644); err != nil { // WriteFile keeps an existing file's mode
			return err
		}
	}
	if _, err := os.Stat(at("etc/machine-id")); err == nil {
		if err := os.WriteFile(at("etc/machine-id"), nil, 0o444); err != nil {
			return err
		}
	}
	return addUser(root)
}

// removeFilesUnder deletes every non-directory below dir, keeping the
// directories (apt and the log writers expect them).
func removeFilesUnder(dir string) error {
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return os.Remove(p)
		}
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// addUser adds coder (uid/gid 1000, home /home/coder, bash) by editing the
// account files directly (no chroot), with a home from /etc/skel.
func addUser(root string) error {
	at := func(p string) string { return filepath.Join(root, p) }
	b, err := os.ReadFile(at("etc/passwd"))
	if err != nil {
		return err
	}
	if strings.Contains(string(b), "\n"+userName+":") || strings.Contains(string(b), fmt.Sprintf(":x:%d:", userID)) {
		return fmt.Errorf("/etc/passwd already has %s or uid %d", userName, userID)
	}
	lines := map[string]string{
		"etc/passwd":  fmt.Sprintf("%s:x:%d:%d::%s:/bin/bash\n", userName, userID, userID, userHome),
		"etc/group":   fmt.Sprintf("%s:x:%d:\n", userName, userID),
		"etc/shadow":  userName + ":!::0:99999:7:::\n", // no password: locked
		"etc/gshadow": userName + ":!::\n",
	}
	for _, f := range sortedKeys(lines) {
		fh, err := os.OpenFile(at(f), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		_, err = fh.WriteString(lines[f])
		if cerr := fh.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	home := at(userHome)
	if err := os.MkdirAll(home, 0o755); err != nil {
		return err
	}
	skel, _ := os.ReadDir(at("etc/skel"))
	for _, e := range skel {
		if !e.Type().IsRegular() {
			continue
		}
		data, err := os.ReadFile(filepath.Join(at("etc/skel"), e.Name()))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(home, e.Name()), data, 0o644); err != nil {
			return err
		}
		if err := os.Lchown(filepath.Join(home, e.Name()), userID, userID); err != nil {
			return err
		}
	}
	return os.Lchown(home, userID, userID)
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// mountsUnder lists mount points at or below dir, deepest first.
func mountsUnder(dir string) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := fields[4]
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}

// unmountUnder detaches whatever a failed debootstrap left mounted in our
// temporary tree (only paths inside it), so the tree can be removed.
func unmountUnder(dir string) {
	for _, mp := range mountsUnder(dir) {
		_ = syscall.Unmount(mp, syscall.MNT_DETACH)
	}
}
