// Package reqlitetest starts reqlite servers for tests. It is separate from
// package reqlite so that production code never imports "testing".
package reqlitetest

import (
	"context"
	"testing"

	"github.com/guildnet/guildnet/pkg/devenv/reqlite"
)

// StartForTest starts a reqlite server on a free port, stops it when the test
// ends, and returns its host:port. It fails the test (with the reason, e.g.
// "run npm ci --prefix hack/reqlite") when the server cannot start.
func StartForTest(tb testing.TB) string {
	tb.Helper()
	return Start(tb, reqlite.Options{}).Addr
}

// Start starts a reqlite server with the given options and stops it when the
// test ends. Use it when the test needs the Server itself, e.g. to stop it and
// start another on the same port (Options.Port) to test reconnects.
func Start(tb testing.TB, o reqlite.Options) *reqlite.Server {
	tb.Helper()
	ctx := context.Background()
	if d, ok := tb.(interface{ Context() context.Context }); ok {
		ctx = d.Context()
	}
	s, err := reqlite.Start(ctx, o)
	if err != nil {
		tb.Fatalf("reqlite: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.Stop(); err != nil {
			tb.Errorf("stop reqlite: %v", err)
		}
	})
	return s
}
