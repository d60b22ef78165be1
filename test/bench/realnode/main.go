// Command realnode measures how long a user waits for a code-server
// workspace on the local cluster's real node: from `kubectl apply` of a
// Workspace to a VS Code workbench connected over its WebSocket, opened in
// headless Chromium through kubectl proxy → kube-apiserver →
// guildnet-apiserver → the pod (goal: under 10 s on this machine, with the
// image already built and loaded).
//
// Each run prints its parts: the workspace Running (pod started, code-server
// up, readiness probe passed, status written), the proxy answering, and the
// browser's login and connection, whose clock starts at its first request.
// The total is measured from the apply to the moment the workbench
// connected, so it includes starting Chromium, which a user whose browser
// is already open does not wait for; the line says how long that took.
// After each run the same browser opens the same pod straight at its IP:
// that is the floor no server-side change can beat, and the ratio shows
// what kubectl proxy, kube-apiserver and guildnet-apiserver add.
//
// Needs root (a real node) and Chromium (make chromium).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/guildnet/guildnet/apis/guildnet"
	"github.com/guildnet/guildnet/apis/guildnet/v1alpha1"
	guildnetclient "github.com/guildnet/guildnet/generated/clientset/versioned"
	"github.com/guildnet/guildnet/pkg/devenv"
	"github.com/guildnet/guildnet/test/bench/benchutil"
	"github.com/guildnet/guildnet/test/framework"
	"github.com/guildnet/guildnet/test/workspacetest"
)

var (
	runs      = flag.Int("runs", 3, "workspaces to create one after another")
	namespace = "bench-node"
	goal      = 10 * time.Second
)

func main() {
	flag.Parse()
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "bench/realnode: %v\n", err)
		os.Exit(1)
	}
}

type result struct {
	running, answering, total, browserStart time.Duration
	// login is through kubectl proxy; direct is the same browser straight
	// at the pod's IP, after it.
	login, direct framework.CodeServerLogin
}

func run() error {
	ctx := context.Background()
	// Progress shown: the node's first image build takes minutes.
	env, err := benchutil.StartCluster(ctx, devenv.Options{Node: devenv.NodeRequired, Progress: os.Stdout}, namespace)
	if err != nil {
		return err
	}
	defer env.Stop()
	kube, gn := env.Kube, env.GN
	kubectl := filepath.Join(os.Getenv("GUILDNET_TOOLS_DIR"), "kubectl")
	if os.Getenv("GUILDNET_TOOLS_DIR") == "" {
		if kubectl, err = exec.LookPath("kubectl"); err != nil {
			return fmt.Errorf("kubectl v1.37 not found: put _output/tools/bin on PATH (make tools)")
		}
	}
	proxy, stopProxy, err := framework.KubectlProxy(kubectl, env.AdminKubeconfig)
	if err != nil {
		return err
	}
	defer stopProxy()
	repo, err := os.Getwd()
	if err != nil {
		return err
	}
	browserDir := filepath.Join(repo, "hack", "browser")

	var results []result
	for i := range *runs {
		name := fmt.Sprintf("ide-%d", i)
		r, err := measure(ctx, env, kube, gn, kubectl, proxy, browserDir, name)
		if err != nil {
			return fmt.Errorf("run %d: %w", i+1, err)
		}
		fmt.Printf("run %d: Running %s, proxy answers %s, browser started %s after that, login %d ms, workbench %d ms, connected %d ms → total %s; straight at the pod: login %d ms, workbench %d ms, connected %d ms\n",
			i+1, ms(r.running), ms(r.answering), ms(r.browserStart), r.login.LoginMs, r.login.WorkbenchMs, r.login.ConnectedMs, ms(r.total),
			r.direct.LoginMs, r.direct.WorkbenchMs, r.direct.ConnectedMs)
		results = append(results, r)
		// One workspace at a time, as a user opens one, on a node that is
		// not still tearing the previous one down.
		if err := gn.GuildnetV1alpha1().Workspaces(namespace).Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			return err
		}
		if err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
			pods, err := kube.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: guildnet.WorkspaceLabel + "=" + name})
			return err == nil && len(pods.Items) == 0, nil
		}); err != nil {
			return fmt.Errorf("the pod of deleted workspace %s is still there after 2 minutes", name)
		}
	}
	n := len(results)
	totals, withoutBrowser := make([]time.Duration, n), make([]time.Duration, n)
	proxied, direct, answering, running := make([]time.Duration, n), make([]time.Duration, n), make([]time.Duration, n), make([]time.Duration, n)
	for i, r := range results {
		totals[i], withoutBrowser[i] = r.total, r.total-r.browserStart
		proxied[i] = time.Duration(r.login.ConnectedMs) * time.Millisecond
		direct[i] = time.Duration(r.direct.ConnectedMs) * time.Millisecond
		answering[i], running[i] = r.answering, r.running
	}
	med, medNoBrowser := median50(totals), median50(withoutBrowser)
	verdict := "met"
	if med > goal {
		verdict = "missed"
	}
	fmt.Printf("\nkubectl apply → connected workbench, median of %d: %s (goal < %s: %s); without starting Chromium: %s\n",
		len(results), ms(med), goal, verdict, ms(medNoBrowser))
	fmt.Printf("  of which: apply → proxy answering %s, → status Running %s; first request → connected through kubectl proxy %s, straight at the pod %s (ratio %.2f×)\n",
		ms(median50(answering)), ms(median50(running)), ms(median50(proxied)), ms(median50(direct)), median50(proxied).Seconds()/median50(direct).Seconds())
	return nil
}

func measure(ctx context.Context, env *benchutil.Cluster, kube kubernetes.Interface, gn guildnetclient.Interface, kubectl, proxy, browserDir, name string) (result, error) {
	var r result
	manifest := fmt.Sprintf("apiVersion: guildnet.io/v1alpha1\nkind: Workspace\nmetadata:\n  name: %s\n  namespace: %s\nspec:\n  image: %s\n",
		name, namespace, env.WorkspaceImage)
	start := time.Now()
	apply := exec.Command(kubectl, "--kubeconfig", env.AdminKubeconfig, "apply", "-f", "-")
	apply.Stdin = strings.NewReader(manifest)
	if out, err := apply.CombinedOutput(); err != nil {
		return r, fmt.Errorf("kubectl apply: %v: %s", err, out)
	}
	url := proxy + "/apis/guildnet.io/v1alpha1/namespaces/" + namespace + "/workspaces/" + name + "/proxy/"
	// Poll both at 20 ms: what the status says and what a browser would get.
	err := wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
		if r.running == 0 {
			ws, err := gn.GuildnetV1alpha1().Workspaces(namespace).Get(ctx, name, metav1.GetOptions{})
			if err == nil && ws.Status.Phase == v1alpha1.WorkspaceRunning && ws.Status.ReadyReplicas == 1 {
				r.running = time.Since(start)
			}
		}
		if r.answering == 0 {
			resp, err := http.Get(url + "healthz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					r.answering = time.Since(start)
				}
			}
		}
		return r.running > 0 && r.answering > 0, nil
	})
	if err != nil {
		return r, fmt.Errorf("workspace %s not Running and answering within 3 minutes (Running after %s, answering after %s)", name, r.running, r.answering)
	}
	secret, err := kube.CoreV1().Secrets(namespace).Get(ctx, guildnet.WorkspacePasswordSecretName(name), metav1.GetOptions{})
	if err != nil {
		return r, err
	}
	pw := string(secret.Data[guildnet.WorkspacePasswordKey])
	browserFrom := time.Now()
	if r.login, err = openWorkbench(ctx, browserDir, url, pw); err != nil {
		return r, err
	}
	first := time.UnixMilli(r.login.StartEpochMs)
	r.browserStart = first.Sub(browserFrom)
	r.total = first.Add(time.Duration(r.login.ConnectedMs) * time.Millisecond).Sub(start)

	// The floor: the same browser straight at the pod, without kubectl
	// proxy, kube-apiserver and guildnet-apiserver in between.
	pod, err := workspacetest.LivePod(ctx, kube, namespace, name)
	if err != nil {
		return r, err
	}
	if r.direct, err = openWorkbench(ctx, browserDir, fmt.Sprintf("http://%s/", net.JoinHostPort(pod.Status.PodIP, strconv.Itoa(int(guildnet.WorkspaceDefaultPort)))), pw); err != nil {
		return r, fmt.Errorf("straight at pod %s: %w", pod.Name, err)
	}
	return r, nil
}

// openWorkbench runs codeserver-login.js against url: log in, wait for the
// workbench to connect.
func openWorkbench(ctx context.Context, browserDir, url, password string) (framework.CodeServerLogin, error) {
	var l framework.CodeServerLogin
	shot, err := os.CreateTemp("", "guildnet-bench-*.png")
	if err != nil {
		return l, err
	}
	shot.Close()
	defer os.Remove(shot.Name())
	cmd := exec.CommandContext(ctx, "node", "codeserver-login.js", "--url", url, "--password", password,
		"--screenshot", shot.Name(), "--timeout-ms", "120000")
	cmd.Dir = browserDir
	cmd.Env = append(os.Environ(), "PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1")
	out, err := cmd.Output()
	if err != nil {
		return l, fmt.Errorf("codeserver-login.js: %v: %s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &l); err != nil {
		return l, fmt.Errorf("codeserver-login.js output %q: %v", out, err)
	}
	if !l.OK || l.ConnectedMs == 0 || l.StartEpochMs == 0 {
		return l, fmt.Errorf("workbench did not connect: %s", out)
	}
	return l, nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

// median50 is the median (nearest rank) of d.
func median50(d []time.Duration) time.Duration { return benchutil.Percentile(d, 50) }
