package integration

import (
	"testing"

	"github.com/guildnet/guildnet/pkg/devenv"
	"github.com/guildnet/guildnet/test/framework"
)

func TestMain(m *testing.M) {
	framework.Main(m, devenv.Options{})
}
