// Command guildnet-apiserver serves the guildnet.io API behind
// kube-apiserver's aggregation layer. See pkg/cmd/server for its flags.
package main

import (
	"fmt"
	"os"
	"strings"

	genericapiserver "k8s.io/apiserver/pkg/server"

	"github.com/guildnet/guildnet/pkg/cmd/server"
)

func main() {
	ctx := genericapiserver.SetupSignalContext()
	if err := server.NewCommand(ctx, os.Stdout, os.Stderr).Execute(); err != nil {
		// One line a person can act on, never a stack trace.
		msg := strings.ReplaceAll(err.Error(), "\n", "; ")
		if server.IsFlagError(err) {
			msg += " (run guildnet-apiserver --help for the flags)"
		}
		fmt.Fprintf(os.Stderr, "guildnet-apiserver: %s\n", msg)
		os.Exit(1)
	}
}
