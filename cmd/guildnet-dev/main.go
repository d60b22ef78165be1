// Command guildnet-dev runs GuildNet's local control plane in the
// foreground (what `make dev` runs): etcd, kube-apiserver with the
// aggregation layer, kube-controller-manager, reqlite and guildnet-apiserver
// behind a real APIService. Ctrl-C stops everything.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/guildnet/guildnet/pkg/devenv"
)

func main() {
	dir := flag.String("dir", envOr("GUILDNET_DEV_DIR", filepath.Join("_output", "dev")),
		"Folder for certificates, kubeconfigs, data and logs (also $GUILDNET_DEV_DIR). It is wiped at start: each run is a fresh cluster.")
	flag.Parse()
	if err := run(*dir); err != nil {
		fmt.Fprintf(os.Stderr, "guildnet-dev: %v\n", err)
		os.Exit(1)
	}
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func run(dir string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	env, err := devenv.Start(ctx, devenv.Options{Dir: abs, Progress: os.Stdout})
	if err != nil {
		return err
	}
	defer func() {
		fmt.Println("Stopping the dev environment ...")
		if err := env.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "guildnet-dev: stopping: %v\n", err)
		}
	}()
	fmt.Printf(`
GuildNet dev environment ready

  export KUBECONFIG=%[1]s
  kubectl api-resources --api-group=guildnet.io
  kubectl get --raw /apis/guildnet.io/v1alpha1
  kubectl explain workspace.spec

  kube-apiserver:      %[2]s
  guildnet-apiserver:  https://127.0.0.1:%[3]d (behind APIService v1alpha1.guildnet.io)
  RethinkDB protocol:  %[4]s (reqlite)
  logs:                %[5]s

Press Ctrl-C to stop.
`, env.AdminKubeconfig, env.KubeAPIServerURL, env.GuildNetAPIServerPort, env.RethinkDBAddr, filepath.Join(env.Dir, "logs"))
	<-ctx.Done()
	// Restore default signal handling: a second Ctrl-C ends us at once.
	stop()
	return nil
}
