// Command guildnet-pause is the local cluster's pod sandbox ("pause")
// process, packaged by pkg/devenv/images as guildnet.local/pause.
//
// It exists because the node runs without a registry: containerd's
// sandbox_image must name an image already in its store, and the usual
// registry.k8s.io/pause cannot be pulled here. So we build our own from this
// file, a static binary in an otherwise empty image.
//
// What it does is what every pause does: it holds the pod's namespaces open
// by staying alive, and as the pod's PID 1 it reaps orphaned children (a
// zombie re-parented to it would otherwise stay forever). It exits 0 on
// SIGINT or SIGTERM.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range sigs {
		if sig != syscall.SIGCHLD {
			os.Exit(0)
		}
		reap()
	}
}

// reap collects every exited child; signals coalesce, so one SIGCHLD may
// stand for several.
func reap() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if err == syscall.EINTR {
			continue
		}
		if pid <= 0 || err != nil {
			return
		}
	}
}
