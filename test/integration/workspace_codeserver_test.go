package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/guildnet/guildnet/apis/guildnet/v1alpha1"
	guildnetclient "github.com/guildnet/guildnet/generated/clientset/versioned"
	"github.com/guildnet/guildnet/test/framework"
	"github.com/guildnet/guildnet/test/workspacetest"
)

// A real code-server behind workspaces/proxy, opened the way a person
// does: `kubectl proxy`, then the workspace's proxy URL in a browser. The
// headless Chromium passes code-server's password page, the VS Code
// workbench renders and its WebSocket connects (the explorer lists a file
// that only arrives over the WebSocket) — all through kube-apiserver's
// aggregation layer and guildnet-apiserver. code-server runs in a network
// namespace and the test publishes its address in an EndpointSlice of the
// workspace's Service, playing the kubelet and the EndpointSlice controller.
func TestCodeServerThroughKubectlProxy(t *testing.T) {
	if os.Getenv("GUILDNET_SKIP_BROWSER") == "1" {
		t.Skip("GUILDNET_SKIP_BROWSER=1")
	}
	env := framework.Env(t)
	ctx := context.Background()
	adminCfg := env.AdminConfig()
	kube := kubernetes.NewForConfigOrDie(adminCfg)
	gn := guildnetclient.NewForConfigOrDie(adminCfg)
	ns := createNamespace(t, kube, "code")

	netns := framework.NewNetNS(t)
	cs := framework.StartCodeServer(t, framework.CodeServerOptions{Addr: netns.IP + ":0", Wrapper: netns.Exec()})
	_, portStr, _ := net.SplitHostPort(cs.Addr)
	port, err := strconv.Atoi(portStr)
	if err != nil {
		t.Fatalf("code-server address %q: %v", cs.Addr, err)
	}
	portNum := int32(port)

	const name = "ide"
	if _, err := gn.GuildnetV1alpha1().Workspaces(ns).Create(ctx, &v1alpha1.Workspace{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1alpha1.WorkspaceSpec{Image: "codercom/code-server:4.139.1",
			Ports: []v1alpha1.WorkspacePort{{Name: "http", Port: portNum}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := workspacetest.PublishEndpoint(ctx, kube, ns, name, netns.IP, portNum, "guildnet-integration-test"); err != nil {
		t.Fatal(err)
	}

	proxyURL := startKubectlProxy(t, env.AdminKubeconfig)
	url := proxyURL + "/apis/guildnet.io/v1alpha1/namespaces/" + ns + "/workspaces/" + name + "/proxy/"
	client := httpClientFor(t, adminCfg)
	framework.Eventually(t, 30*time.Second, "code-server answers through the proxy", func(context.Context) error {
		resp, body := get(t, client, adminCfg.Host+"/apis/guildnet.io/v1alpha1/namespaces/"+ns+"/workspaces/"+name+"/proxy/healthz", nil)
		if resp.StatusCode != 200 {
			return fmt.Errorf("%d %s", resp.StatusCode, body)
		}
		return nil
	})

	shot := filepath.Join(framework.ArtifactsDir(t), "code-server-workbench.png")
	out, err := framework.RunBrowserScript(t, "codeserver-login.js",
		"--url", url, "--password", cs.Password, "--screenshot", shot,
		"--expect-file", cs.File, "--timeout-ms", "120000")
	if err != nil {
		t.Fatalf("code-server through kubectl proxy: %v\n%s\n(code-server log: %s; screenshot: %s)", err, out, cs.LogPath, shot)
	}
	var res struct {
		OK                                bool
		LoginMs, WorkbenchMs, ConnectedMs int
		Websockets                        []struct {
			URL    string
			Status int
			Opened bool
		}
	}
	if err := json.Unmarshal([]byte(lastLine(out)), &res); err != nil {
		t.Fatalf("script output %q: %v", out, err)
	}
	if !res.OK || res.ConnectedMs == 0 {
		t.Fatalf("workbench did not connect: %s", out)
	}
	opened := 0
	for _, ws := range res.Websockets {
		if ws.Opened && ws.Status == 101 && strings.Contains(ws.URL, "/workspaces/"+name+"/proxy/") {
			opened++
		}
	}
	if opened == 0 {
		t.Fatalf("no WebSocket opened through workspaces/proxy: %s", out)
	}
	if st, err := os.Stat(shot); err != nil || st.Size() < 10<<10 {
		t.Fatalf("screenshot %s missing or tiny: %v", shot, err)
	}
	t.Logf("code-server through kubectl proxy → kube-apiserver → guildnet-apiserver: login %d ms, workbench %d ms, connected %d ms; %d WebSocket(s); screenshot %s",
		res.LoginMs, res.WorkbenchMs, res.ConnectedMs, opened, shot)
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// startKubectlProxy runs `kubectl proxy --port 0` with kubeconfig and
// returns its URL; the process is stopped when the test ends.
func startKubectlProxy(t *testing.T, kubeconfig string) string {
	t.Helper()
	cmd := exec.Command(framework.Kubectl(t), "--kubeconfig", kubeconfig, "proxy", "--port", "0")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	})
	found := make(chan string, 1)
	go func() {
		re := regexp.MustCompile(`Starting to serve on (\S+)`)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				found <- "http://" + m[1]
			}
		}
	}()
	select {
	case u := <-found:
		return u
	case <-time.After(30 * time.Second):
		t.Fatal("kubectl proxy did not say where it serves within 30s")
		return ""
	}
}
