package devenv

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// hostState is what a node changes on the machine outside the
// environment's folder, recorded before it starts so that Stop undoes
// exactly that and nothing else: kernel settings the kubelet and the CNI
// bridge plugin rewrite, iptables chains the kubelet adds, fixed paths
// containerd and the kubelet use whatever they are told (device-plugins,
// shim sockets, netns mounts, container log links).
type hostState struct {
	sysctls map[string]string
	// chains maps "iptables/filter" (command/table) to the chains it had.
	chains map[string]map[string]bool
	// paths maps a fixed host path to the entries it held (nil: it did not exist).
	paths map[string]map[string]bool
	// mounts are the mount points that existed.
	mounts map[string]bool
}

// nodeSysctls are the settings the kubelet (protectKernelDefaults off) and
// the bridge plugin (isGateway) write.
var nodeSysctls = []string{
	"vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops",
	"kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes",
	"net/ipv4/ip_forward", "net/ipv4/conf/all/forwarding",
	"net/bridge/bridge-nf-call-iptables", "net/bridge/bridge-nf-call-ip6tables",
}

// nodeHostPaths are paths containerd 1.6 and the kubelet use no matter
// where their own folders are.
var nodeHostPaths = []string{
	"/var/lib/kubelet", "/var/lib/kubelet/device-plugins", "/var/lib/kubelet/plugins_registry",
	"/var/lib/kubelet/plugins", "/var/lib/kubelet/pod-resources",
	"/var/log/containers", "/var/log/pods",
	"/var/lib/cni", "/var/lib/cni/results", "/var/lib/cni/networks",
	"/run/containerd", "/run/containerd/s", "/run/containerd/runc",
	"/run/netns",
	"/usr/libexec/kubernetes",
}

// mountPrefixes are where the node's mounts live besides the environment's
// folder; only new mounts under these are undone.
var mountPrefixes = []string{"/run/netns/", "/run/containerd/", "/var/lib/kubelet/"}

var iptablesTables = []string{"filter", "nat", "mangle"}

func recordHostState() (*hostState, error) {
	h := &hostState{sysctls: map[string]string{}, chains: map[string]map[string]bool{}, paths: map[string]map[string]bool{}}
	for _, s := range nodeSysctls {
		if v, err := os.ReadFile(filepath.Join("/proc/sys", s)); err == nil {
			h.sysctls[s] = strings.TrimSpace(string(v))
		}
	}
	for _, cmd := range []string{"iptables", "ip6tables"} {
		for _, table := range iptablesTables {
			chains, _, err := iptablesChains(cmd, table)
			if err != nil {
				if cmd == "ip6tables" {
					continue // no IPv6 tables on this machine: nothing to undo there
				}
				return nil, err
			}
			h.chains[cmd+"/"+table] = chains
		}
	}
	for _, p := range nodeHostPaths {
		h.paths[p] = dirEntries(p)
	}
	mounts, err := mountPoints()
	if err != nil {
		return nil, err
	}
	h.mounts = map[string]bool{}
	for _, m := range mounts {
		h.mounts[m] = true
	}
	return h, nil
}

func dirEntries(p string) map[string]bool {
	entries, err := os.ReadDir(p)
	if err != nil {
		return nil
	}
	m := map[string]bool{}
	for _, e := range entries {
		m[e.Name()] = true
	}
	return m
}

// unmountNew lazily unmounts every mount made since the record under the
// environment's folder or the node's fixed paths, deepest first.
func (h *hostState) unmountNew(dir string) error {
	mounts, err := mountPoints()
	if err != nil {
		return err
	}
	var todo []string
	for _, m := range mounts {
		if h.mounts[m] {
			continue
		}
		if m == dir || strings.HasPrefix(m, dir+"/") || slices.ContainsFunc(mountPrefixes, func(p string) bool { return strings.HasPrefix(m, p) }) {
			todo = append(todo, m)
		}
	}
	sort.Slice(todo, func(i, j int) bool { return len(todo[i]) > len(todo[j]) })
	var errs []error
	for _, m := range todo {
		if err := unix.Unmount(m, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("unmounting %s: %w", m, err))
		}
	}
	return errors.Join(errs...)
}

// restore undoes the rest: new entries in the fixed paths (and the paths
// themselves when they did not exist), new iptables chains, and kernel
// settings. Mounts must be gone first (unmountNew), so removing a path never
// reaches into a mounted filesystem.
func (h *hostState) restore() error {
	var errs []error
	// Deepest paths first, so a path that did not exist is empty by the time it is removed.
	paths := make([]string, 0, len(h.paths))
	for p := range h.paths {
		paths = append(paths, p)
	}
	sort.Slice(paths, func(i, j int) bool { return len(paths[i]) > len(paths[j]) })
	for _, p := range paths {
		before := h.paths[p]
		if fi, err := os.Lstat(p); err != nil || !fi.IsDir() {
			continue // gone already
		}
		if before == nil {
			if err := os.RemoveAll(p); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		for name := range dirEntries(p) {
			if before[name] {
				continue
			}
			if _, tracked := h.paths[filepath.Join(p, name)]; tracked {
				continue // a tracked subfolder that existed before: cleaned on its own
			}
			if err := os.RemoveAll(filepath.Join(p, name)); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for key, before := range h.chains {
		cmd, table, _ := strings.Cut(key, "/")
		if err := removeNewChains(cmd, table, before); err != nil {
			errs = append(errs, err)
		}
	}
	for s, v := range h.sysctls {
		cur, err := os.ReadFile(filepath.Join("/proc/sys", s))
		if err == nil && strings.TrimSpace(string(cur)) == v {
			continue
		}
		if err := os.WriteFile(filepath.Join("/proc/sys", s), []byte(v), 0o644); err != nil {
			errs = append(errs, fmt.Errorf("restoring sysctl %s to %s: %w", strings.ReplaceAll(s, "/", "."), v, err))
		}
	}
	return errors.Join(errs...)
}

// mountPoints lists the mount points of this mount namespace.
func mountPoints() ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 {
			out = append(out, unescapeMount(fields[4]))
		}
	}
	return out, sc.Err()
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v int
			if _, err := fmt.Sscanf(s[i+1:i+4], "%03o", &v); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// iptablesChains lists a table's chains and its rules (as iptables-save
// prints them, without the leading "-A").
func iptablesChains(cmd, table string) (map[string]bool, []string, error) {
	out, err := exec.Command(cmd+"-save", "-t", table).Output()
	if err != nil {
		return nil, nil, fmt.Errorf("%s-save -t %s: %w", cmd, table, err)
	}
	chains := map[string]bool{}
	var rules []string
	for _, line := range strings.Split(string(out), "\n") {
		switch {
		case strings.HasPrefix(line, ":"):
			chains[strings.Fields(line[1:])[0]] = true
		case strings.HasPrefix(line, "-A "):
			rules = append(rules, line[3:])
		}
	}
	return chains, rules, nil
}

// removeNewChains deletes the chains of a table that were not in before,
// after removing the rules of older chains that jump to them.
func removeNewChains(cmd, table string, before map[string]bool) error {
	chains, rules, err := iptablesChains(cmd, table)
	if err != nil {
		return err
	}
	var added []string
	for c := range chains {
		if !before[c] {
			added = append(added, c)
		}
	}
	if len(added) == 0 {
		return nil
	}
	var errs []error
	for _, r := range rules {
		args := splitRule(r)
		if len(args) == 0 || !before[args[0]] {
			continue
		}
		if target := ruleTarget(args); target != "" && slices.Contains(added, target) {
			if out, err := exec.Command(cmd, append([]string{"-w", "-t", table, "-D"}, args...)...).CombinedOutput(); err != nil {
				errs = append(errs, fmt.Errorf("%s -t %s -D %s: %v: %s", cmd, table, r, err, out))
			}
		}
	}
	for _, op := range []string{"-F", "-X"} {
		for _, c := range added {
			if out, err := exec.Command(cmd, "-w", "-t", table, op, c).CombinedOutput(); err != nil {
				errs = append(errs, fmt.Errorf("%s -t %s %s %s: %v: %s", cmd, table, op, c, err, out))
			}
		}
	}
	return errors.Join(errs...)
}

func ruleTarget(args []string) string {
	for i := 0; i+1 < len(args); i++ {
		if args[i] == "-j" || args[i] == "-g" {
			return args[i+1]
		}
	}
	return ""
}

// splitRule splits an iptables-save rule into arguments; iptables-save
// double-quotes arguments with spaces (comments).
func splitRule(s string) []string {
	var args []string
	var cur strings.Builder
	inQuote, have := false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && inQuote && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
		case c == '"':
			inQuote, have = !inQuote, true
		case c == ' ' && !inQuote:
			if have {
				args = append(args, cur.String())
				cur.Reset()
				have = false
			}
		default:
			cur.WriteByte(c)
			have = true
		}
	}
	if have {
		args = append(args, cur.String())
	}
	return args
}
