package node

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// hostSnapshot is what a node could leave behind on the machine, read
// with the machine's own tools and independently of pkg/devenv's
// bookkeeping, so the check does not share the bugs of what it checks.
type hostSnapshot map[string][]string

var counters = regexp.MustCompile(`\[\d+:\d+\]`)

// pristineChain is a built-in chain at its default policy. The kernel
// makes a table, with these chains, the first time anything uses it (on a
// fresh machine: the node's first iptables call) and never removes it; a
// table in that state holds nothing of ours. Table names are skipped for
// the same reason; custom chains, other policies and rules still count.
var pristineChain = regexp.MustCompile(`^:(INPUT|FORWARD|OUTPUT|PREROUTING|POSTROUTING) ACCEPT\s*$`)

func snapshotHost(t *testing.T) hostSnapshot {
	t.Helper()
	s := hostSnapshot{}
	// Processes of the node's programs.
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		comm, err := os.ReadFile(filepath.Join("/proc", p.Name(), "comm"))
		if err != nil {
			continue
		}
		switch name := strings.TrimSpace(string(comm)); name {
		case "kubelet", "containerd", "containerd-shim", "containerd-shim-runc-v2", "kube-scheduler", "runc", "guildnet-pause", "pause":
			s["process"] = append(s["process"], name)
		}
	}
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(mounts)), "\n") {
		if f := strings.Fields(line); len(f) > 4 {
			s["mount"] = append(s["mount"], f[4])
		}
	}
	for _, cmd := range []string{"iptables-save", "ip6tables-save"} {
		out, err := exec.Command(cmd).Output()
		if err != nil {
			if cmd == "ip6tables-save" {
				continue
			}
			t.Fatalf("%s: %v", cmd, err)
		}
		for _, line := range strings.Split(string(out), "\n") {
			line = counters.ReplaceAllString(line, "")
			if pristineChain.MatchString(line) {
				continue
			}
			if strings.HasPrefix(line, ":") || strings.HasPrefix(line, "-A") {
				s[cmd] = append(s[cmd], line)
			}
		}
	}
	for _, k := range []string{"vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops",
		"kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes", "net/ipv4/ip_forward", "net/ipv4/conf/all/forwarding"} {
		v, err := os.ReadFile(filepath.Join("/proc/sys", k))
		if err == nil {
			s["sysctl"] = append(s["sysctl"], k+"="+strings.TrimSpace(string(v)))
		}
	}
	out, err := exec.Command("ip", "-o", "link", "show").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(line); len(f) > 1 {
			s["link"] = append(s["link"], strings.TrimSuffix(f[1], ":"))
		}
	}
	for _, dir := range []string{"/run/netns", "/run/containerd", "/run/containerd/s", "/var/lib/kubelet", "/var/log/containers",
		"/var/log/pods", "/var/lib/cni", "/sys/fs/cgroup/memory", "/sys/fs/cgroup/cpu", "/sys/fs/cgroup/pids"} {
		entries, err := os.ReadDir(dir)
		if err != nil {
			s["path"] = append(s["path"], dir+" (absent)")
			continue
		}
		for _, e := range entries {
			if e.IsDir() || !strings.HasPrefix(dir, "/sys/") {
				s["path"] = append(s["path"], filepath.Join(dir, e.Name()))
			}
		}
	}
	for k := range s {
		sort.Strings(s[k])
	}
	return s
}

// diff lists what after has that before lacks and the reverse.
func (before hostSnapshot) diff(after hostSnapshot) []string {
	var out []string
	kinds := map[string]bool{}
	for k := range before {
		kinds[k] = true
	}
	for k := range after {
		kinds[k] = true
	}
	for k := range kinds {
		count := map[string]int{}
		for _, v := range before[k] {
			count[v]++
		}
		for _, v := range after[k] {
			count[v]--
		}
		for v, n := range count {
			switch {
			case n < 0:
				out = append(out, fmt.Sprintf("%s left behind: %s", k, v))
			case n > 0:
				out = append(out, fmt.Sprintf("%s gone or changed: %s", k, v))
			}
		}
	}
	sort.Strings(out)
	return out
}
