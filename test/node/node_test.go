// Package node tests workspaces on a real node: the local cluster with
// containerd and a kubelet (pkg/devenv, Node: required), pods from the
// code-server image built by pkg/devenv/images, reached through
// kubectl proxy → kube-apiserver → guildnet-apiserver → the pod's IP.
// It needs root; it starts its own environment, because it also checks that
// stopping the environment leaves the machine as it found it.
//
// Run: make build images && PATH=$PWD/_output/tools/bin:$PATH \
// GUILDNET_TOOLS_DIR=$PWD/_output/tools/bin go test -count=1 ./test/node/ -v
package node

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/guildnet/guildnet/apis/guildnet"
	"github.com/guildnet/guildnet/apis/guildnet/v1alpha1"
	guildnetclient "github.com/guildnet/guildnet/generated/clientset/versioned"
	"github.com/guildnet/guildnet/pkg/devenv"
	"github.com/guildnet/guildnet/test/framework"
	"github.com/guildnet/guildnet/test/workspacetest"
)

// TestRealNode brings up the local cluster with a node, runs a code-server
// workspace on it end to end, and checks that stopping the cluster leaves
// nothing on the machine: no processes, mounts, iptables chains, links,
// changed kernel settings or files in the fixed paths containerd and the
// kubelet use.
func TestRealNode(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("a real node needs root (containerd, kubelet); run the tests as root, as make test does")
	}
	before := snapshotHost(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	env, err := devenv.Start(ctx, devenv.Options{Node: devenv.NodeRequired, Progress: os.Stderr})
	if err != nil {
		t.Fatalf("starting the local cluster with a node: %v", err)
	}
	stopped := false
	defer func() {
		if !stopped {
			_ = env.Stop()
		}
	}()
	if env.WorkspaceImage == "" {
		t.Fatal("the environment started a node but reports no workspace image")
	}

	c := newCluster(t, env)
	t.Run("NodeIsReady", c.nodeIsReady)
	t.Run("CodeServerWorkspace", c.codeServerWorkspace)
	t.Run("LogFollow", c.logFollow)
	t.Run("BrokenImage", c.brokenImage)
	t.Run("CrashLoop", c.crashLoop)

	// The code-server workspace is still running: stopping must take its
	// pod, mounts and network down too.
	start := time.Now()
	stopped = true
	if err := env.Stop(); err != nil {
		t.Errorf("stopping the environment: %v", err)
	}
	t.Logf("environment stopped in %s", time.Since(start).Round(100*time.Millisecond))
	// Processes of a stopped shim can take a moment to be reaped.
	var left []string
	framework.Eventually(t, 20*time.Second, "the host is as before the node started", func(context.Context) error {
		left = before.diff(snapshotHost(t))
		if len(left) > 0 {
			return fmt.Errorf("\n  %s", strings.Join(left, "\n  "))
		}
		return nil
	})
}

type cluster struct {
	env  *devenv.Env
	kube kubernetes.Interface
	gn   guildnetclient.Interface
	ns   string
}

func newCluster(t *testing.T, env *devenv.Env) *cluster {
	cfg := env.AdminConfig()
	c := &cluster{env: env, kube: kubernetes.NewForConfigOrDie(cfg), gn: guildnetclient.NewForConfigOrDie(cfg), ns: "node-e2e"}
	if _, err := c.kube.CoreV1().Namespaces().Create(context.Background(),
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: c.ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *cluster) kubectl(t *testing.T, args ...string) string {
	t.Helper()
	return framework.MustKubectl(t, c.env.AdminKubeconfig, append([]string{"-n", c.ns}, args...)...)
}

func (c *cluster) nodeIsReady(t *testing.T) {
	out := c.kubectl(t, "get", "nodes", "--no-headers")
	if !strings.Contains(out, devenv.NodeName) || !strings.Contains(out, " Ready ") {
		t.Fatalf("kubectl get nodes: %q, want %s Ready", out, devenv.NodeName)
	}
}

// waitWorkspace waits until the workspace's status satisfies ok.
func (c *cluster) waitWorkspace(t *testing.T, name string, timeout time.Duration, what string, ok func(*v1alpha1.Workspace) error) *v1alpha1.Workspace {
	t.Helper()
	var ws *v1alpha1.Workspace
	framework.Eventually(t, timeout, "workspace "+name+" "+what, func(ctx context.Context) error {
		var err error
		if ws, err = c.gn.GuildnetV1alpha1().Workspaces(c.ns).Get(ctx, name, metav1.GetOptions{}); err != nil {
			return err
		}
		return ok(ws)
	})
	return ws
}

func running(ws *v1alpha1.Workspace) error {
	if ws.Status.Phase != v1alpha1.WorkspaceRunning || ws.Status.ReadyReplicas != 1 {
		return fmt.Errorf("phase %q, ready replicas %d, conditions %+v", ws.Status.Phase, ws.Status.ReadyReplicas, ws.Status.Conditions)
	}
	return nil
}

// The whole path a user takes, on real pods: apply a code-server
// Workspace, open it through kubectl proxy in a browser, log in with the
// password from its Secret, type a command in the workbench's terminal
// and find its output inside the pod; then suspend and resume it and find
// the file again on the persistent home.
func (c *cluster) codeServerWorkspace(t *testing.T) {
	if os.Getenv("GUILDNET_SKIP_BROWSER") == "1" {
		t.Skip("GUILDNET_SKIP_BROWSER=1")
	}
	ctx := context.Background()
	const name = "ide"
	manifest := fmt.Sprintf(`apiVersion: guildnet.io/v1alpha1
kind: Workspace
metadata:
  name: %s
spec:
  image: %s
  storage:
    size: 1Gi
`, name, c.env.WorkspaceImage)
	file := filepath.Join(t.TempDir(), "ws.yaml")
	if err := os.WriteFile(file, []byte(manifest), 0o600); err != nil {
		t.Fatal(err)
	}
	applied := time.Now()
	c.kubectl(t, "apply", "-f", file)
	ws := c.waitWorkspace(t, name, 3*time.Minute, "to be Running", running)
	t.Logf("kubectl apply → workspace Running with 1 ready replica: %s", time.Since(applied).Round(10*time.Millisecond))
	if ws.Status.ProxyTarget == "" || ws.Status.ServiceIP == "" {
		t.Errorf("status lacks proxyTarget/serviceIP: %+v", ws.Status)
	}
	pod, err := workspacetest.LivePod(ctx, c.kube, c.ns, name)
	if err != nil {
		t.Fatal(err)
	}
	if pod.Spec.NodeName != devenv.NodeName || pod.Status.PodIP == "" {
		t.Fatalf("pod %s on node %q with IP %q, want on %s with an IP", pod.Name, pod.Spec.NodeName, pod.Status.PodIP, devenv.NodeName)
	}
	// kubectl get shows it as a user sees it.
	if out := c.kubectl(t, "get", "workspaces", name); !strings.Contains(out, "Running") {
		t.Errorf("kubectl get workspaces: %s", out)
	}

	// A file the explorer can only list once the workbench's WebSocket works.
	c.kubectl(t, "exec", pod.Name, "--", "sh", "-c", "echo hello > /home/coder/hello-guildnet.txt")
	secret, err := c.kube.CoreV1().Secrets(c.ns).Get(ctx, guildnet.WorkspacePasswordSecretName(name), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	password := string(secret.Data[guildnet.WorkspacePasswordKey])
	if password == "" {
		t.Fatalf("Secret %s has no %q", secret.Name, guildnet.WorkspacePasswordKey)
	}

	proxy := framework.StartKubectlProxy(t, c.env.AdminKubeconfig)
	proxyPath := "/apis/guildnet.io/v1alpha1/namespaces/" + c.ns + "/workspaces/" + name + "/proxy/"
	shot := filepath.Join(framework.ArtifactsDir(t), "code-server-on-a-real-node.png")
	const proofFile = "/home/coder/terminal-proof.txt"
	// No ?folder= in the URL: the workspace opens its home by itself, so
	// the explorer listing the file proves that too.
	out, err := framework.RunBrowserScript(t, "codeserver-login.js",
		"--url", proxy+proxyPath, "--password", password, "--screenshot", shot,
		"--expect-file", "hello-guildnet.txt", "--timeout-ms", "120000",
		"--terminal-command", "echo ran-in-$(hostname) > "+proofFile)
	if err != nil {
		t.Fatalf("code-server through kubectl proxy on a real pod: %v\n%s\n(screenshot: %s)", err, out, shot)
	}
	res := framework.ParseCodeServerLogin(t, out, proxyPath, shot)
	t.Logf("login %d ms, workbench %d ms, connected %d ms, terminal command sent at %d ms (typed %d times); screenshot %s",
		res.LoginMs, res.WorkbenchMs, res.ConnectedMs, res.TerminalMs, res.TerminalAttempts, shot)

	want := "ran-in-" + pod.Name
	framework.Eventually(t, 30*time.Second, "the terminal's command ran inside the pod", func(context.Context) error {
		r := framework.RunKubectl(t, c.env.AdminKubeconfig, "-n", c.ns, "exec", pod.Name, "--", "cat", proofFile)
		if got := strings.TrimSpace(r.Stdout); got != want {
			return fmt.Errorf("cat %s in pod %s: %q (%v %s), want %q", proofFile, pod.Name, got, r.Err, r.Stderr, want)
		}
		return nil
	})

	// Suspend: the pod goes, the claim stays.
	c.patchSuspend(t, name, true)
	c.waitWorkspace(t, name, 2*time.Minute, "to be Stopped", func(ws *v1alpha1.Workspace) error {
		if ws.Status.Phase != v1alpha1.WorkspaceStopped {
			return fmt.Errorf("phase %q", ws.Status.Phase)
		}
		return nil
	})
	framework.Eventually(t, 2*time.Minute, "the workspace's pod is gone", func(ctx context.Context) error {
		pods, err := c.kube.CoreV1().Pods(c.ns).List(ctx, metav1.ListOptions{LabelSelector: guildnet.WorkspaceLabel + "=" + name})
		if err != nil {
			return err
		}
		if len(pods.Items) > 0 {
			return fmt.Errorf("%d pods left, e.g. %s (%s)", len(pods.Items), pods.Items[0].Name, pods.Items[0].Status.Phase)
		}
		return nil
	})
	if _, err := c.kube.CoreV1().PersistentVolumeClaims(c.ns).Get(ctx, guildnet.WorkspaceHomeClaimName(name), metav1.GetOptions{}); err != nil {
		t.Fatalf("the home claim after suspend: %v", err)
	}

	// Resume: a new pod, the same home.
	c.patchSuspend(t, name, false)
	c.waitWorkspace(t, name, 3*time.Minute, "to be Running again", running)
	pod2, err := workspacetest.LivePod(ctx, c.kube, c.ns, name)
	if err != nil {
		t.Fatal(err)
	}
	if pod2.Name == pod.Name {
		t.Fatalf("resume kept pod %s; want a new one", pod.Name)
	}
	if got := strings.TrimSpace(c.kubectl(t, "exec", pod2.Name, "--", "cat", proofFile)); got != want {
		t.Fatalf("after suspend and resume, %s in the new pod %s holds %q, want %q (the home did not survive)", proofFile, pod2.Name, got, want)
	}
}

func (c *cluster) createWorkspace(t *testing.T, name string, spec v1alpha1.WorkspaceSpec) {
	t.Helper()
	ws := &v1alpha1.Workspace{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spec}
	if _, err := c.gn.GuildnetV1alpha1().Workspaces(c.ns).Create(context.Background(), ws, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func (c *cluster) deleteWorkspace(t *testing.T, name string) {
	t.Helper()
	if err := c.gn.GuildnetV1alpha1().Workspaces(c.ns).Delete(context.Background(), name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
}

func (c *cluster) patchSuspend(t *testing.T, name string, suspend bool) {
	t.Helper()
	patch := fmt.Sprintf(`{"spec":{"suspend":%t}}`, suspend)
	if _, err := c.gn.GuildnetV1alpha1().Workspaces(c.ns).Patch(context.Background(), name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
}

// `kubectl get --raw …/log?follow=true` streams the pod's output as it is
// written: a workspace whose command prints a numbered line every 200 ms
// shows lines that were printed after the stream opened.
func (c *cluster) logFollow(t *testing.T) {
	ctx := context.Background()
	const name = "ticker"
	c.createWorkspace(t, name, v1alpha1.WorkspaceSpec{
		Image:   c.env.WorkspaceImage,
		Command: []string{"/bin/bash", "-c", "i=0; while :; do echo tick $i; i=$((i+1)); sleep 0.2; done"},
		// Ticking on stdout, not serving HTTP: the workspace never gets
		// Ready, which the log does not need.
		Env: []v1alpha1.EnvVar{{Name: "PASSWORD", Value: "unused"}},
	})
	framework.Eventually(t, 2*time.Minute, "the ticker's container runs", func(ctx context.Context) error {
		pods, err := c.kube.CoreV1().Pods(c.ns).List(ctx, metav1.ListOptions{LabelSelector: guildnet.WorkspaceLabel + "=" + name})
		if err != nil {
			return err
		}
		for _, p := range pods.Items {
			for _, cs := range p.Status.ContainerStatuses {
				if cs.State.Running != nil {
					return nil
				}
			}
		}
		return fmt.Errorf("no running container yet")
	})

	path := "/apis/guildnet.io/v1alpha1/namespaces/" + c.ns + "/workspaces/" + name + "/log?follow=true"
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, framework.Kubectl(t), "--kubeconfig", c.env.AdminKubeconfig, "get", "--raw", path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); _ = cmd.Wait() }()
	opened := time.Now()
	sc := bufio.NewScanner(stdout)
	var first, last string
	lines := 0
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(line, "tick ") {
			continue
		}
		if first == "" {
			first = line
		}
		last, lines = line, lines+1
		// Lines keep coming for a while after the stream opened: it follows.
		if time.Since(opened) > 2*time.Second && lines >= 10 {
			break
		}
	}
	if lines < 10 || time.Since(opened) < 2*time.Second {
		t.Fatalf("log?follow=true gave %d tick lines (first %q, last %q) over %s; want lines streaming for 2 s: %v",
			lines, first, last, time.Since(opened).Round(time.Millisecond), sc.Err())
	}
	t.Logf("followed %d lines over %s: %q … %q", lines, time.Since(opened).Round(time.Millisecond), first, last)
	c.deleteWorkspace(t, name)
}

// A workspace whose image is not on the node says so in its status and
// conditions (the dev environment sets the pull policy to Never).
func (c *cluster) brokenImage(t *testing.T) {
	const name = "broken"
	c.createWorkspace(t, name, v1alpha1.WorkspaceSpec{Image: "guildnet.local/code-server-does-not-exist:1"})
	ws := c.waitWorkspace(t, name, 2*time.Minute, "to be Failed with the reason", func(ws *v1alpha1.Workspace) error {
		for _, cond := range ws.Status.Conditions {
			if cond.Type == "Ready" && cond.Status == metav1.ConditionFalse && cond.Reason == "ImageNotPresent" && ws.Status.Phase == v1alpha1.WorkspaceFailed {
				return nil
			}
		}
		return fmt.Errorf("phase %q, conditions %+v", ws.Status.Phase, ws.Status.Conditions)
	})
	for _, cond := range ws.Status.Conditions {
		if cond.Type == "Ready" && !strings.Contains(cond.Message, "code-server-does-not-exist") {
			t.Errorf("Ready condition's message %q does not name the image", cond.Message)
		}
	}
	if out := c.kubectl(t, "get", "workspace", name); !strings.Contains(out, "Failed") {
		t.Errorf("kubectl get workspace %s: %s", name, out)
	}
	c.deleteWorkspace(t, name)
}

// A workspace whose container keeps exiting reports CrashLoopBackOff with
// the exit code, and its log subresource shows what the crashed container
// said (previous=true), which is where a user looks next.
func (c *cluster) crashLoop(t *testing.T) {
	const name = "crasher"
	c.createWorkspace(t, name, v1alpha1.WorkspaceSpec{
		Image:   c.env.WorkspaceImage,
		Command: []string{"/bin/sh", "-c", "echo cannot start: no config >&2; exit 3"},
		Env:     []v1alpha1.EnvVar{{Name: "PASSWORD", Value: "unused"}},
	})
	// The kubelet reports the back-off once it delays a restart, i.e.
	// after the container exited more than once.
	ws := c.waitWorkspace(t, name, 2*time.Minute, "to be Failed with CrashLoopBackOff", func(ws *v1alpha1.Workspace) error {
		cond := meta.FindStatusCondition(ws.Status.Conditions, "Ready")
		if ws.Status.Phase == v1alpha1.WorkspaceFailed && cond != nil && cond.Status == metav1.ConditionFalse && cond.Reason == "CrashLoopBackOff" {
			return nil
		}
		return fmt.Errorf("phase %q, conditions %+v", ws.Status.Phase, ws.Status.Conditions)
	})
	if msg := meta.FindStatusCondition(ws.Status.Conditions, "Ready").Message; !strings.Contains(msg, "exit code 3") {
		t.Errorf("Ready condition's message %q does not give the exit code 3", msg)
	}
	out := c.kubectl(t, "get", "--raw", "/apis/guildnet.io/v1alpha1/namespaces/"+c.ns+"/workspaces/"+name+"/log?previous=true")
	if !strings.Contains(out, "cannot start: no config") {
		t.Errorf("workspaces/%s/log?previous=true = %q, want the crashed container's stderr", name, out)
	}
	c.deleteWorkspace(t, name)
}
