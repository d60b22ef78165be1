package integration

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	guildnetclient "github.com/guildnet/guildnet/generated/clientset/versioned"
	"github.com/guildnet/guildnet/test/framework"
)

// Use through workspaces/proxy keeps a workspace with a short idleTimeout
// running: an open WebSocket, or steady requests. The same timeout suspends
// a workspace nobody uses, in the same run.
func TestIdleTimeoutCountsProxyActivity(t *testing.T) {
	env := framework.Env(t)
	ctx := context.Background()
	adminCfg := env.AdminConfig()
	kube := kubernetes.NewForConfigOrDie(adminCfg)
	gn := guildnetclient.NewForConfigOrDie(adminCfg)
	ns := createNamespace(t, kube, "idle")
	const idle = 4 * time.Second

	unused := startProxiedWorkspace(t, kube, gn, ns, "unused", &recordingBackend{}, idle)
	socket := startProxiedWorkspace(t, kube, gn, ns, "socket", &recordingBackend{}, idle)
	steady := startProxiedWorkspace(t, kube, gn, ns, "steady", &recordingBackend{}, idle)
	client := httpClientFor(t, adminCfg)
	for _, w := range []*proxiedWorkspace{socket, steady} {
		url := adminCfg.Host + w.prefix + "/"
		framework.Eventually(t, 30*time.Second, w.name+" is reachable", func(context.Context) error {
			if resp, body := get(t, client, url, nil); resp.StatusCode != 200 {
				return fmt.Errorf("%d %s", resp.StatusCode, body)
			}
			return nil
		})
	}

	// One WebSocket held open, with no messages on it.
	c, _, err := wsDial(t, adminCfg, adminCfg.Host+socket.prefix+"/ws", http.Header{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	go func() {
		for { // answer the proxy's pings
			if _, _, err := c.ReadMessage(); err != nil {
				return
			}
		}
	}()
	// Steady requests, one a second, until the test ends.
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if resp, err := client.Get(adminCfg.Host + steady.prefix + "/"); err == nil {
					resp.Body.Close()
				}
			}
		}
	}()

	suspended := func(name string) bool {
		ws, err := gn.GuildnetV1alpha1().Workspaces(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return ws.Spec.Suspend
	}
	start := time.Now()
	framework.Eventually(t, 60*time.Second, "the unused workspace is suspended", func(context.Context) error {
		if !suspended(unused.name) {
			return fmt.Errorf("not suspended yet")
		}
		return nil
	})
	// The used ones have now gone at least as long as the unused one needed
	// to be suspended; keep watching for three timeouts in all.
	deadline := start.Add(3 * idle)
	for {
		for _, name := range []string{socket.name, steady.name} {
			if suspended(name) {
				t.Fatalf("workspace %s was suspended %s after start although it was in use", name, time.Since(start).Round(time.Second))
			}
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond) // pace the checks; there is no event to wait for
	}
}
