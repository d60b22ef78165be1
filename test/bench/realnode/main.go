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
//
// Needs root (a real node) and Chromium (make chromium).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/guildnet/guildnet/apis/guildnet"
	"github.com/guildnet/guildnet/apis/guildnet/v1alpha1"
	guildnetclient "github.com/guildnet/guildnet/generated/clientset/versioned"
	"github.com/guildnet/guildnet/pkg/devenv"
	"github.com/guildnet/guildnet/test/framework"
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
	login                                   framework.CodeServerLogin
}

func run() error {
	ctx := context.Background()
	fmt.Println("starting the local cluster with a node ...")
	env, err := devenv.Start(ctx, devenv.Options{Node: devenv.NodeRequired, Progress: os.Stdout})
	if err != nil {
		return err
	}
	defer env.Stop()
	cfg := env.AdminConfig()
	kube := kubernetes.NewForConfigOrDie(cfg)
	gn := guildnetclient.NewForConfigOrDie(cfg)
	if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}, metav1.CreateOptions{}); err != nil {
		return err
	}
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
		fmt.Printf("run %d: Running %s, proxy answers %s, browser started %s after that, login %d ms, connected %d ms → total %s\n",
			i+1, ms(r.running), ms(r.answering), ms(r.browserStart), r.login.LoginMs, r.login.ConnectedMs, ms(r.total))
		results = append(results, r)
		// One workspace at a time, as a user opens one.
		if err := gn.GuildnetV1alpha1().Workspaces(namespace).Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			return err
		}
	}
	totals := make([]time.Duration, len(results))
	withoutBrowser := make([]time.Duration, len(results))
	for i, r := range results {
		totals[i], withoutBrowser[i] = r.total, r.total-r.browserStart
	}
	med, medNoBrowser := median(totals), median(withoutBrowser)
	verdict := "met"
	if med > goal {
		verdict = "missed"
	}
	fmt.Printf("\nkubectl apply → connected workbench, median of %d: %s (goal < %s: %s); without starting Chromium: %s\n",
		len(results), ms(med), goal, verdict, ms(medNoBrowser))
	return nil
}

func measure(ctx context.Context, env *devenv.Env, kube kubernetes.Interface, gn guildnetclient.Interface, kubectl, proxy, browserDir, name string) (result, error) {
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
	shot := filepath.Join(os.TempDir(), "guildnet-bench-"+name+".png")
	defer os.Remove(shot)
	browserFrom := time.Now()
	cmd := exec.CommandContext(ctx, "node", "codeserver-login.js", "--url", url, "--password", string(secret.Data[guildnet.WorkspacePasswordKey]),
		"--screenshot", shot, "--timeout-ms", "120000")
	cmd.Dir = browserDir
	cmd.Env = append(os.Environ(), "PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1")
	out, err := cmd.Output()
	if err != nil {
		return r, fmt.Errorf("codeserver-login.js: %v: %s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &r.login); err != nil {
		return r, fmt.Errorf("codeserver-login.js output %q: %v", out, err)
	}
	if !r.login.OK || r.login.ConnectedMs == 0 || r.login.StartEpochMs == 0 {
		return r, fmt.Errorf("workbench did not connect: %s", out)
	}
	first := time.UnixMilli(r.login.StartEpochMs)
	r.browserStart = first.Sub(browserFrom)
	r.total = first.Add(time.Duration(r.login.ConnectedMs) * time.Millisecond).Sub(start)
	return r, nil
}

func median(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }
