// Command guildnet-dev runs GuildNet's local control plane in the
// foreground (what `make dev` runs): etcd, kube-apiserver with the
// aggregation layer, kube-controller-manager, reqlite and guildnet-apiserver
// behind a real APIService, and the portal, already joined to that cluster.
// Ctrl-C stops everything.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/guildnet/guildnet/pkg/devenv"
)

func main() {
	dir := flag.String("dir", envOr("GUILDNET_DEV_DIR", filepath.Join("_output", "dev")),
		"Folder for certificates, kubeconfigs, data and logs (also $GUILDNET_DEV_DIR). The cluster in it is wiped at start: each run is a fresh cluster. Only the portal's token (portal/portal-token) is kept, so a browser stays logged in across runs.")
	listenDefault := defaultPortalListen
	if v, ok := os.LookupEnv("GUILDNET_DEV_PORTAL_LISTEN"); ok {
		listenDefault = v // empty too: no portal
	}
	portalListen := flag.String("portal-listen", listenDefault,
		"Loopback IP:PORT the portal listens on (also $GUILDNET_DEV_PORTAL_LISTEN). A fixed port keeps the portal's URL, and so bookmarks and workspace origins, the same across runs; 127.0.0.1:0 picks a free port; empty runs without the portal.")
	node := flag.String("node", envOr("GUILDNET_DEV_NODE", string(devenv.NodeAuto)),
		"Run a real node (containerd, kubelet, kube-scheduler) so workspaces run as pods (also $GUILDNET_DEV_NODE): auto runs one where the machine can (root, cgroups, containerd installed) and says why not otherwise; required fails without one; off runs none.")
	flag.Parse()
	mode, err := parseNodeMode(*node)
	if err != nil {
		fmt.Fprintf(os.Stderr, "guildnet-dev: %v\n", err)
		os.Exit(2)
	}
	if err := run(*dir, *portalListen, mode); err != nil {
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

func parseNodeMode(s string) (devenv.NodeMode, error) {
	switch s {
	case "off":
		return devenv.NodeOff, nil
	case string(devenv.NodeAuto), string(devenv.NodeRequired):
		return devenv.NodeMode(s), nil
	}
	return "", fmt.Errorf("--node must be auto, required or off, got %q", s)
}

func run(dir, portalListen string, node devenv.NodeMode) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	var portalLn net.Listener
	if portalListen != "" {
		if portalLn, err = listenPortal(portalListen); err != nil {
			return err
		}
	}
	env, err := devenv.Start(ctx, devenv.Options{Dir: abs, Progress: os.Stdout, Node: node})
	if err != nil {
		if portalLn != nil {
			portalLn.Close()
		}
		return err
	}
	defer func() {
		fmt.Println("Stopping the dev environment ...")
		if err := env.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "guildnet-dev: stopping: %v\n", err)
		}
	}()
	portalLine := "  Portal: off (--portal-listen is empty)\n"
	var portalErr <-chan error
	if portalLn != nil {
		fmt.Println("guildnet-dev: starting the portal and joining it to the cluster")
		p, err := startPortal(ctx, env, portalLn)
		if err != nil {
			if ctx.Err() != nil {
				return nil // Ctrl-C while starting: not the portal's fault
			}
			return fmt.Errorf("starting the portal: %w (run with --portal-listen= to go on without it)", err)
		}
		defer p.Stop()
		portalErr = p.Err()
		portalLine = fmt.Sprintf("  Portal: %s\n          (joined as %s, edit rights in namespace %s; cluster id %s; log %s)\n",
			p.URL, p.User, portalNamespace, p.ClusterID, filepath.Base(p.Log))
	}
	nodeLine := "  Node: none (see the line above on why); workspaces get Deployments but no pods\n"
	if node == devenv.NodeOff {
		nodeLine = "  Node: off (--node=off); workspaces get Deployments but no pods\n"
	}
	imageFile := filepath.Join(env.Dir, "workspace-image")
	if env.WorkspaceImage != "" {
		if err := os.WriteFile(imageFile, []byte(env.WorkspaceImage+"\n"), 0o644); err != nil {
			return err
		}
		nodeLine = fmt.Sprintf("  Node: %s is Ready. Workspace image (also in %s):\n    %s\n", devenv.NodeName, imageFile, env.WorkspaceImage)
	} else {
		_ = os.Remove(imageFile)
	}
	fmt.Printf(`
GuildNet dev environment ready
%[7]s
  export KUBECONFIG=%[1]s
%[6]s
  kubectl api-resources --api-group=guildnet.io
  kubectl get --raw /apis/guildnet.io/v1alpha1
  kubectl explain workspace.spec

  kube-apiserver:      %[2]s
  guildnet-apiserver:  https://127.0.0.1:%[3]d (behind APIService v1alpha1.guildnet.io)
  RethinkDB protocol:  %[4]s (reqlite)
  logs:                %[5]s

Press Ctrl-C to stop.
`, env.AdminKubeconfig, env.KubeAPIServerURL, env.GuildNetAPIServerPort, env.RethinkDBAddr, filepath.Join(env.Dir, "logs"), portalLine, nodeLine)
	select {
	case <-ctx.Done():
	case err := <-portalErr:
		if err = servedErr(err); err != nil {
			return err
		}
	}
	// Restore default signal handling: a second Ctrl-C ends us at once.
	stop()
	return nil
}
