// Package netns makes network namespaces for tests and benchmarks: a
// namespace joined to the host by a veth pair gives a server a pod-like
// address. Unlike loopback, Endpoints and EndpointSlices accept it, and the
// host (where kube-apiserver and guildnet-apiserver run) can dial it.
package netns

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// NetNS is a network namespace made by New.
type NetNS struct {
	// Name is the namespace's name (for `ip netns exec NAME ...`).
	Name string
	// IP is the namespace's address; HostIP the host end of the veth pair.
	IP, HostIP string

	hostLink string
}

// New creates a network namespace with a /30 link to the host. It needs
// root (CAP_NET_ADMIN) and iproute2. Close removes it.
func New() (_ *NetNS, err error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("network namespaces need root (CAP_NET_ADMIN); run as root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return nil, errors.New("iproute2's ip command is missing: apt-get install iproute2")
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	n := binary.BigEndian.Uint32(b[:])
	id := fmt.Sprintf("%06x", n&0xffffff)
	// A random /30 in 10.200.0.0/13, away from the usual service and pod ranges.
	base := net.IPv4(10, byte(200+(n>>21)%8), byte(n>>13), byte(n>>5)&^3).To4()
	host, ns := addIP(base, 1), addIP(base, 2)
	nn := &NetNS{Name: "gn-" + id, IP: ns.String(), HostIP: host.String(), hostLink: "gnh" + id}
	peer := "gnn" + id
	if err := ip("netns", "add", nn.Name); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			nn.Close()
		}
	}()
	for _, args := range [][]string{
		{"link", "add", nn.hostLink, "type", "veth", "peer", "name", peer},
		{"link", "set", peer, "netns", nn.Name},
		{"addr", "add", nn.HostIP + "/30", "dev", nn.hostLink},
		{"link", "set", nn.hostLink, "up"},
		{"-n", nn.Name, "addr", "add", nn.IP + "/30", "dev", peer},
		{"-n", nn.Name, "link", "set", peer, "up"},
		{"-n", nn.Name, "link", "set", "lo", "up"},
		{"-n", nn.Name, "route", "add", "default", "via", nn.HostIP},
	} {
		if err := ip(args...); err != nil {
			return nil, err
		}
	}
	return nn, nil
}

func ip(args ...string) error {
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func addIP(ip net.IP, n byte) net.IP {
	out := append(net.IP(nil), ip...)
	out[3] += n
	return out
}

// Close removes the namespace and its link.
func (n *NetNS) Close() {
	_ = exec.Command("ip", "link", "del", n.hostLink).Run()
	_ = exec.Command("ip", "netns", "del", n.Name).Run()
}

// Listen opens a TCP listener on the namespace's IP (port 0: a free one).
// The socket is created inside the namespace, so this process can serve
// there without a helper process.
func (n *NetNS) Listen(port int) (net.Listener, error) {
	var (
		l   net.Listener
		err error
	)
	done := make(chan struct{})
	// A dedicated OS thread switches namespace; if it cannot switch back it
	// stays locked and is discarded when the goroutine ends.
	go func() {
		defer close(done)
		runtime.LockOSThread()
		self, e := os.Open("/proc/thread-self/ns/net")
		if e != nil {
			err = e
			return
		}
		defer self.Close()
		target, e := os.Open("/var/run/netns/" + n.Name)
		if e != nil {
			err = e
			return
		}
		defer target.Close()
		if e := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); e != nil {
			err = fmt.Errorf("entering network namespace %s: %w", n.Name, e)
			return
		}
		l, err = net.Listen("tcp", net.JoinHostPort(n.IP, fmt.Sprint(port)))
		if e := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); e == nil {
			runtime.UnlockOSThread()
		}
	}()
	<-done
	if err != nil {
		return nil, fmt.Errorf("listening in network namespace %s: %w", n.Name, err)
	}
	return l, nil
}

// Exec returns the command prefix that runs a program inside the namespace.
func (n *NetNS) Exec() []string { return []string{"ip", "netns", "exec", n.Name} }
