// Command guildnet-portal is GuildNet's per-device portal: it joins
// clusters and keeps their credentials in a state dir. The commands live in
// portal/cli; this is only the process around them.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/guildnet/guildnet/portal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := cli.NewCommand().ExecuteContext(ctx)
	stop()
	if err != nil {
		// One line, whatever the error: cobra's own messages can span two.
		msg := strings.Join(strings.Fields(err.Error()), " ")
		fmt.Fprintf(os.Stderr, "guildnet-portal: %s\n", msg)
		os.Exit(1)
	}
}
