// Command workspace measures workspaces/proxy and the workspace
// reconciler on a local control plane, in one run:
//
//   - small-request latency (p50/p99) and a large download's throughput
//     through kube-apiserver → guildnet-apiserver → the workspace, against
//     the same requests sent straight to the workspace;
//   - WebSocket echo round trips, proxied and direct;
//   - the reconciler's latency from Workspace create to its Deployment and
//     Service existing, over bursts of workspaces, each once the machine
//     has settled (goal: p50 ≤ 100 ms, p99 ≤ 500 ms), and the same for a
//     reconciler that costs nothing (the bench sends the reconciler's
//     writes itself the moment each Create returns): the floor this
//     machine sets for any reconciler that makes the same objects. It also
//     prints how long each kind of write took to return.
//
// The workspace's server runs in a network namespace (it needs root), so
// guildnet-apiserver reaches it at a pod-like address through an
// EndpointSlice, the path a real pod's traffic takes.
package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/websocket"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/guildnet/guildnet/apis/guildnet/v1alpha1"
	guildnetclient "github.com/guildnet/guildnet/generated/clientset/versioned"
	"github.com/guildnet/guildnet/pkg/devenv"
	"github.com/guildnet/guildnet/test/bench/benchutil"
	"github.com/guildnet/guildnet/test/netns"
	"github.com/guildnet/guildnet/test/workspacetest"
)

var (
	requests   = flag.Int("requests", 500, "small GET requests per path")
	largeMiB   = flag.Int("large-mib", 256, "size of the large download in MiB")
	echoes     = flag.Int("echoes", 500, "WebSocket echo round trips per path")
	burst      = flag.Int("workspaces", 100, "workspaces created in each reconciler burst")
	rounds     = flag.Int("bursts", 3, "reconciler bursts, and as many floor bursts before them, one after the other once the last one's objects are gone; the percentiles are over all of them")
	namespace  = "bench"
	smallReply = []byte(strings.Repeat("x", 512))
)

func main() {
	flag.Parse()
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "bench/workspace: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	if *rounds < 1 || *burst < 1 {
		return fmt.Errorf("--bursts and --workspaces must be at least 1, got %d and %d", *rounds, *burst)
	}
	ctx := context.Background()
	env, err := benchutil.StartCluster(ctx, devenv.Options{}, namespace)
	if err != nil {
		return err
	}
	defer env.Stop()
	cfg, kube, gn := env.AdminConfig(), env.Kube, env.GN

	ns, err := netns.New()
	if err != nil {
		return err
	}
	defer ns.Close()
	l, err := ns.Listen(0)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: backend()}
	go func() { _ = srv.Serve(l) }()
	defer srv.Close()
	port := l.Addr().(*net.TCPAddr).Port
	if err := publish(ctx, kube, gn, "bench-web", ns.IP, port); err != nil {
		return err
	}
	direct := "http://" + net.JoinHostPort(ns.IP, strconv.Itoa(port))
	proxied := cfg.Host + "/apis/guildnet.io/v1alpha1/namespaces/" + namespace + "/workspaces/bench-web/proxy"
	apiClient, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return err
	}
	directClient := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		return getOK(apiClient, proxied+"/small") == nil, nil
	}); err != nil {
		return fmt.Errorf("the proxy never reached the workspace: %v", getOK(apiClient, proxied+"/small"))
	}

	fmt.Printf("\nsmall GET (%d bytes), %d sequential requests each\n", len(smallReply), *requests)
	dLat, err := latencies(directClient, direct+"/small", *requests)
	if err != nil {
		return err
	}
	pLat, err := latencies(apiClient, proxied+"/small", *requests)
	if err != nil {
		return err
	}
	row("direct", dLat)
	row("workspaces/proxy", pLat)
	fmt.Printf("  ratio proxy/direct: p50 %.2fx  p99 %.2fx\n",
		benchutil.Ratio(benchutil.Percentile(pLat, 50), benchutil.Percentile(dLat, 50)),
		benchutil.Ratio(benchutil.Percentile(pLat, 99), benchutil.Percentile(dLat, 99)))

	fmt.Printf("\nlarge download (%d MiB)\n", *largeMiB)
	dTP, err := throughput(directClient, direct+"/large")
	if err != nil {
		return err
	}
	pTP, err := throughput(apiClient, proxied+"/large")
	if err != nil {
		return err
	}
	fmt.Printf("  %-20s %8.1f MiB/s\n  %-20s %8.1f MiB/s\n  ratio proxy/direct: %.2fx of the direct throughput\n",
		"direct", dTP, "workspaces/proxy", pTP, pTP/dTP)

	fmt.Printf("\nWebSocket echo (64 bytes), %d round trips each\n", *echoes)
	dWS, err := echo(&websocket.Dialer{}, "ws"+strings.TrimPrefix(direct, "http")+"/ws", nil, *echoes)
	if err != nil {
		return err
	}
	tlsCfg, err := rest.TLSConfigFor(cfg)
	if err != nil {
		return err
	}
	if tlsCfg == nil {
		tlsCfg = &tls.Config{}
	}
	pWS, err := echo(&websocket.Dialer{TLSClientConfig: tlsCfg}, "wss"+strings.TrimPrefix(proxied, "https")+"/ws", nil, *echoes)
	if err != nil {
		return err
	}
	row("direct", dWS)
	row("workspaces/proxy", pWS)
	fmt.Printf("  ratio proxy/direct: p50 %.2fx  p99 %.2fx\n",
		benchutil.Ratio(benchutil.Percentile(pWS, 50), benchutil.Percentile(dWS, 50)),
		benchutil.Ratio(benchutil.Percentile(pWS, 99), benchutil.Percentile(dWS, 99)))

	// The floor first, then the reconciler, each burst in a namespace of
	// its own (nothing else there carries the workspace label) and once the
	// machine has settled.
	bursts := func(prefix string, floor bool) ([]time.Duration, error) {
		var lat []time.Duration
		for i := 0; i < *rounds; i++ {
			ns := fmt.Sprintf("%s-%d", prefix, i+1)
			if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
				return nil, fmt.Errorf("creating namespace %s: %w", ns, err)
			}
			if err := benchutil.Settle(ctx); err != nil {
				return nil, err
			}
			round, err := benchBurst(ctx, cfg, ns, *burst, floor)
			if err != nil {
				return nil, err
			}
			fmt.Printf("  burst %d: p50 %s  p99 %s\n", i+1, benchutil.Ms(benchutil.Percentile(round, 50)), benchutil.Ms(benchutil.Percentile(round, 99)))
			lat = append(lat, round...)
		}
		return lat, nil
	}
	fmt.Printf("\nfloor: a reconciler that costs nothing, %d bursts of %d: dry-run Workspace create → the bench sends the reconciler's writes at once → Deployment and Service exist\n", *rounds, *burst)
	floor, err := bursts("floor", true)
	if err != nil {
		return err
	}
	row("all bursts", floor)
	for _, kind := range []string{"Secret", "Deployment", "Service"} {
		row(kind+" returned", floorWrites[kind])
	}

	fmt.Printf("\nreconciler: Workspace create → Deployment and Service exist, %d bursts of %d\n", *rounds, *burst)
	lat, err := bursts("burst", false)
	if err != nil {
		return err
	}
	p50, p99 := benchutil.Percentile(lat, 50), benchutil.Percentile(lat, 99)
	fmt.Printf("  p50 %s (goal ≤ 100 ms: %s)  p99 %s (goal ≤ 500 ms: %s)  max %s\n",
		benchutil.Ms(p50), verdict(p50 <= 100*time.Millisecond), benchutil.Ms(p99), verdict(p99 <= 500*time.Millisecond),
		benchutil.Ms(benchutil.Percentile(lat, 100)))
	fmt.Printf("  ratio reconciler/floor: p50 %.2fx  p99 %.2fx\n",
		benchutil.Ratio(p50, benchutil.Percentile(floor, 50)), benchutil.Ratio(p99, benchutil.Percentile(floor, 99)))
	fmt.Printf("  of which Create → the workspace's watch event: p50 %s  p99 %s\n",
		benchutil.Ms(benchutil.Percentile(watchDelay, 50)), benchutil.Ms(benchutil.Percentile(watchDelay, 99)))
	return nil
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

func row(name string, d []time.Duration) {
	fmt.Printf("  %-20s p50 %s  p99 %s\n", name, benchutil.Ms(benchutil.Percentile(d, 50)), benchutil.Ms(benchutil.Percentile(d, 99)))
}

// backend is the workspace's server: a small reply, a large body, an echo.
func backend() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/small", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(smallReply) })
	mux.HandleFunc("/large", func(w http.ResponseWriter, _ *http.Request) {
		size := *largeMiB << 20
		w.Header().Set("Content-Length", strconv.Itoa(size))
		chunk := make([]byte, 1<<16)
		for sent := 0; sent < size; sent += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	})
	mux.Handle("/ws", workspacetest.Echo(nil))
	return mux
}

// publish creates a Workspace and, playing the EndpointSlice controller
// for a pod that does not exist, points its Service at ip:port.
func publish(ctx context.Context, kube kubernetes.Interface, gn guildnetclient.Interface, name, ip string, port int) error {
	if _, err := gn.GuildnetV1alpha1().Workspaces(namespace).Create(ctx, &v1alpha1.Workspace{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       v1alpha1.WorkspaceSpec{Image: "example.com/bench:1", Ports: []v1alpha1.WorkspacePort{{Port: int32(port)}}},
	}, metav1.CreateOptions{}); err != nil {
		return err
	}
	return workspacetest.PublishEndpoint(ctx, kube, namespace, name, ip, int32(port), "guildnet-bench")
}

func getOK(c *http.Client, url string) error {
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return fmt.Errorf("GET %s: %d %s", url, resp.StatusCode, body)
	}
	return nil
}

func latencies(c *http.Client, url string, n int) ([]time.Duration, error) {
	if err := getOK(c, url); err != nil { // warm the connection
		return nil, err
	}
	out := make([]time.Duration, 0, n)
	for range n {
		start := time.Now()
		if err := getOK(c, url); err != nil {
			return nil, err
		}
		out = append(out, time.Since(start))
	}
	return out, nil
}

// throughput downloads url once and returns MiB/s.
func throughput(c *http.Client, url string) (float64, error) {
	start := time.Now()
	resp, err := c.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil {
		return 0, err
	}
	if want := int64(*largeMiB) << 20; n != want {
		return 0, fmt.Errorf("downloaded %d bytes of %d", n, want)
	}
	return float64(n) / (1 << 20) / time.Since(start).Seconds(), nil
}

func echo(d *websocket.Dialer, url string, hdr http.Header, n int) ([]time.Duration, error) {
	c, resp, err := d.Dial(url, hdr)
	if err != nil {
		if resp != nil {
			body, _ := io.ReadAll(resp.Body)
			return nil, fmt.Errorf("WebSocket %s: %v: %d %s", url, err, resp.StatusCode, body)
		}
		return nil, err
	}
	defer c.Close()
	msg := []byte(strings.Repeat("e", 64))
	out := make([]time.Duration, 0, n)
	for range n {
		start := time.Now()
		if err := c.WriteMessage(websocket.BinaryMessage, msg); err != nil {
			return nil, err
		}
		if _, _, err := c.ReadMessage(); err != nil {
			return nil, err
		}
		out = append(out, time.Since(start))
	}
	return out, nil
}
