package devenv

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"
)

// A machine that cannot run a node gets one reason that names what is
// missing and how to get it; a complete one gets none.
func TestNodeUnavailableSaysWhy(t *testing.T) {
	const tools = "/cache/tools/bin"
	cgroupMounted := func() ([]byte, error) {
		return []byte("35 25 0:30 / /sys/fs/cgroup/cpu rw,nosuid - cgroup cgroup rw,cpu\n"), nil
	}
	complete := func() host {
		return host{
			euid:      0,
			mountinfo: cgroupMounted,
			lookPath:  func(bin string) (string, error) { return "/usr/bin/" + bin, nil },
			exists:    func(string) bool { return true },
		}
	}
	for _, tc := range []struct {
		name   string
		change func(*host)
		want   []string // substrings of the reason; nil: the node can run
	}{
		{"everything there", func(*host) {}, nil},
		{"not root", func(h *host) { h.euid = 1000 }, []string{"not running as root", "as root"}},
		{"no cgroups", func(h *host) {
			h.mountinfo = func() ([]byte, error) { return []byte("22 1 0:21 / /proc rw - proc proc rw\n"), nil }
		}, []string{"no cgroup filesystem"}},
		{"mountinfo unreadable", func(h *host) {
			h.mountinfo = func() ([]byte, error) { return nil, errors.New("permission denied") }
		}, []string{"no cgroup filesystem"}},
		{"no containerd", func(h *host) {
			h.lookPath = func(bin string) (string, error) {
				if bin == "containerd" {
					return "", exec.ErrNotFound
				}
				return "/usr/bin/" + bin, nil
			}
		}, []string{"containerd is not installed", "make node", "apt-get install containerd"}},
		{"no CNI plugins", func(h *host) {
			h.exists = func(p string) bool { return !strings.HasSuffix(p, "/bridge") }
		}, []string{"CNI plugins are not installed", "containernetworking-plugins"}},
		{"kubelet not built", func(h *host) {
			h.exists = func(p string) bool { return p != tools+"/kubelet" }
		}, []string{"kubelet is not built in " + tools, "make tools"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := complete()
			tc.change(&h)
			err := h.nodeUnavailable(tools)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("a complete machine was refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no reason given; want one saying %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("reason %q does not say %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("reason %q spans lines; make dev prints it as one", err)
			}
		})
	}
}

// The CNI plugins are found where Debian or the upstream tarball puts them.
func TestCNIBinDir(t *testing.T) {
	for _, dir := range []string{"/usr/lib/cni", "/opt/cni/bin"} {
		h := host{exists: func(p string) bool { return p == dir+"/bridge" }}
		if got := h.cniBinDir(); got != dir {
			t.Errorf("with the bridge plugin in %s: cniBinDir() = %q", dir, got)
		}
	}
	if got := (host{exists: func(string) bool { return false }}).cniBinDir(); got != "" {
		t.Errorf("without plugins: cniBinDir() = %q, want empty", got)
	}
}

// The pods' subnet avoids every address and route of the machine, so the
// node never shadows a network the machine already reaches.
func TestPodSubnetAvoidsTheMachinesNetworks(t *testing.T) {
	// The machine's own route table format: destination and mask in
	// little-endian hex. 10.213.0.0/24 (0000D50A, 00FFFFFF) is taken by
	// another bridge, 192.168.1.0/24 by the LAN; the default route says
	// nothing about subnets.
	table := "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n" +
		"eth0\t00000000\t0101A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n" +
		"eth0\t0001A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n" +
		"gn-br-1\t0000D50A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
	nets := routeNets(table)
	if len(nets) != 2 || nets[0].String() != "192.168.1.0/24" || nets[1].String() != "10.213.0.0/24" {
		t.Fatalf("routeNets = %v, want [192.168.1.0/24 10.213.0.0/24]", nets)
	}
	_, addr, _ := net.ParseCIDR("10.213.1.7/24") // an interface address in the next /24
	got, err := pickSubnet(append(nets, addr))
	if err != nil || got.String() != "10.213.2.0/24" {
		t.Fatalf("pickSubnet = %v, %v; want 10.213.2.0/24", got, err)
	}
	_, wide, _ := net.ParseCIDR("10.0.0.0/8")
	if got, err := pickSubnet([]*net.IPNet{wide}); err == nil || !strings.Contains(err.Error(), "no free /24") {
		t.Fatalf("with 10.0.0.0/8 routed elsewhere: pickSubnet = %v, %v; want an error saying no /24 is free", got, err)
	}
}

// Descendants finds grandchildren too, and killTree ends them all: what
// Stop relies on for containerd shims that outlived containerd.
func TestKillTreeEndsGrandchildren(t *testing.T) {
	cmd := exec.Command("/bin/sh", "-c", "/bin/sh -c 'sleep 60 & wait' & sleep 60 & wait")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var below []int
	deadline := time.Now().Add(10 * time.Second)
	for len(below) < 3 {
		if time.Now().After(deadline) {
			_ = killTree(cmd.Process.Pid)
			t.Fatalf("Descendants(%d) = %v after 10 s, want the inner shell and both sleeps", cmd.Process.Pid, below)
		}
		var err error
		if below, err = Descendants(cmd.Process.Pid); err != nil {
			t.Fatal(err)
		}
		runtime.Gosched()
	}
	if err := killTree(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	<-done
	// SIGKILL takes effect when the process is next scheduled; then it is
	// gone, or a zombie until init reaps it, and either way no longer runs.
	running := func(pid int) bool {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		return err == nil && !strings.Contains(string(stat), ") Z")
	}
	for _, pid := range below {
		for deadline := time.Now().Add(5 * time.Second); running(pid); runtime.Gosched() {
			if time.Now().After(deadline) {
				t.Fatalf("process %d still runs 5 s after killTree", pid)
			}
		}
	}
}
