// Package e2e holds end-to-end tests that drive the portal's UI in a real
// browser (headless Debian Chromium through playwright-core, see
// hack/browser) against the local control plane that test/framework starts
// once for the package.
//
// Run: make build && PATH=$PWD/_output/tools/bin:$PATH \
// GUILDNET_TOOLS_DIR=$PWD/_output/tools/bin go test -count=1 -p 1 ./test/e2e/ -v
//
// Screenshots land in _output/artifacts/<TestName>/ (or
// $GUILDNET_ARTIFACTS/<TestName>/). GUILDNET_SKIP_BROWSER=1 skips the
// browser tests on purpose; nothing else does.
package e2e

import (
	"os"
	"testing"

	"github.com/guildnet/guildnet/pkg/devenv"
	"github.com/guildnet/guildnet/test/framework"
)

func TestMain(m *testing.M) {
	if skipBrowser() {
		// Every test here needs the browser: don't start a control plane
		// only to skip them all.
		os.Exit(m.Run())
	}
	framework.Main(m, devenv.Options{})
}

// skipBrowser is the one way to skip these tests: GUILDNET_SKIP_BROWSER=1.
func skipBrowser() bool { return os.Getenv("GUILDNET_SKIP_BROWSER") == "1" }
