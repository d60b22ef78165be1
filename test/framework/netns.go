package framework

import (
	"net"
	"testing"

	"github.com/guildnet/guildnet/test/netns"
)

// NewNetNS creates a network namespace joined to the host by a veth pair
// (see package netns) and removes it when the test ends.
func NewNetNS(t testing.TB) *NetNS {
	t.Helper()
	n, err := netns.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	return &NetNS{NetNS: n}
}

// NetNS is a test's network namespace.
type NetNS struct{ *netns.NetNS }

// Listen opens a TCP listener on the namespace's IP (port 0: a free one),
// closed when the test ends.
func (n *NetNS) Listen(t testing.TB, port int) net.Listener {
	t.Helper()
	l, err := n.NetNS.Listen(port)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}
