// Package tailnettest runs a whole tailnet inside a test process:
// tailscale's test control server (tstest/integration/testcontrol), a DERP
// and STUN server on 127.0.0.1, and client nodes (tsnet), so that tests of
// the portal's tailnet listener need no internet and touch nothing but
// loopback.
package tailnettest

import (
	"context"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"tailscale.com/envknob"
	"tailscale.com/ipn/store/mem"
	"tailscale.com/net/netns"
	"tailscale.com/tailcfg"
	"tailscale.com/tsnet"
	"tailscale.com/tstest/integration"
	"tailscale.com/tstest/integration/testcontrol"
	"tailscale.com/types/logger"
)

// MagicDNSDomain is the test tailnet's domain: node NAME is
// NAME.tail-scale.ts.net.
const MagicDNSDomain = "tail-scale.ts.net"

// Control is a running test control server.
type Control struct {
	// URL is the control server's URL, for tsnet.Server.ControlURL (and
	// guildnet-portal serve --tailnet-control-url).
	URL    string
	Server *testcontrol.Server
}

// StartControl starts a control server and a DERP/STUN server, both on
// 127.0.0.1, and stops them when t ends. Tags in tags may be requested by
// nodes (testcontrol grants them at sign-up).
func StartControl(t testing.TB, tags ...string) *Control {
	t.Helper()
	// As tailscale's own tsnet tests: no SO_MARK and the like, which need
	// privileges and mean nothing on loopback.
	netns.SetEnabled(false)
	t.Cleanup(func() { netns.SetEnabled(true) })
	// Nothing but loopback: nodes advertise no endpoints on this
	// machine's interfaces (they would send disco pings to its LAN and
	// container addresses), only what the STUN server on 127.0.0.1 sees;
	// no port mapping probes to a router; and no log uploads (a test
	// binary sends none anyway).
	envknob.SetenvForTest(t, "TS_DEBUG_OMIT_LOCAL_ADDRS", "true")
	envknob.SetenvForTest(t, "TS_DISABLE_PORTMAPPER", "true")
	envknob.SetenvForTest(t, "TS_NO_LOGS_NO_SUPPORT", "true")

	derpMap := integration.RunDERPAndSTUN(t, logger.Discard, "127.0.0.1")
	owners := map[string][]string{}
	for _, tag := range tags {
		owners[tag] = nil
	}
	c := &testcontrol.Server{
		DERPMap:        derpMap,
		DNSConfig:      &tailcfg.DNSConfig{Proxied: true},
		MagicDNSDomain: MagicDNSDomain,
		TagOwners:      owners,
		Logf:           logger.Discard,
	}
	c.HTTPTestServer = httptest.NewUnstartedServer(c)
	c.HTTPTestServer.Start()
	t.Cleanup(c.HTTPTestServer.Close)
	return &Control{URL: c.HTTPTestServer.URL, Server: c}
}

// NodeIPv4 is the 100.x address of the node named hostname, or the zero
// Addr when there is none.
func (c *Control) NodeIPv4(hostname string) netip.Addr {
	for _, n := range c.Server.AllNodes() {
		if n.Name == hostname || strings.HasPrefix(n.Name, hostname+".") {
			for _, p := range n.Addresses {
				if p.Addr().Is4() {
					return p.Addr()
				}
			}
		}
	}
	return netip.Addr{}
}

// Node is a client node on the test tailnet.
type Node struct {
	*tsnet.Server
	// LoginName is the node's owner as WhoIs names it
	// (user-N@fake-control.example.net).
	LoginName string
	// DNSName is the node's MagicDNS name, without the final dot.
	DNSName string
	// IPv4 is the node's 100.x address.
	IPv4 netip.Addr
}

// StartNode joins a new node named hostname, carrying tags (which
// StartControl must have been told about), and waits until it is up and
// connected to its DERP server. It stops when t ends.
func (c *Control) StartNode(t testing.TB, ctx context.Context, hostname string, tags ...string) *Node {
	t.Helper()
	s := &tsnet.Server{
		Dir:           t.TempDir(),
		ControlURL:    c.URL,
		Hostname:      hostname,
		Store:         new(mem.Store),
		Ephemeral:     true,
		AdvertiseTags: tags,
		UserLogf:      logger.Discard,
		Logf:          logger.Discard,
	}
	t.Cleanup(func() { s.Close() })
	st, err := s.Up(ctx)
	if err != nil {
		t.Fatalf("starting tailnet node %s: %v", hostname, err)
	}
	n := &Node{Server: s}
	if st.Self != nil {
		n.DNSName = trimDot(st.Self.DNSName)
		if u, ok := st.User[st.Self.UserID]; ok {
			n.LoginName = u.LoginName
		}
	}
	for _, ip := range st.TailscaleIPs {
		if ip.Is4() {
			n.IPv4 = ip
		}
	}
	waitForHomeDERP(t, ctx, s, hostname)
	return n
}

// waitForHomeDERP waits until s has a home DERP region and has heard from
// it; before that the DERP server drops peers' packets for s (as
// tailscale's tsnet tests do).
func waitForHomeDERP(t testing.TB, ctx context.Context, s *tsnet.Server, name string) {
	t.Helper()
	h := s.Sys().HealthTracker.Get()
	ms := s.Sys().MagicSock.Get()
	for {
		if r := ms.GetLastNetcheckReport(ctx); r != nil && r.PreferredDERP != 0 &&
			!h.GetDERPRegionReceivedTime(r.PreferredDERP).IsZero() {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("tailnet node %s: no DERP connection: %v", name, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func trimDot(s string) string {
	if len(s) > 0 && s[len(s)-1] == '.' {
		return s[:len(s)-1]
	}
	return s
}
