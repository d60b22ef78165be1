package integration

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
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

	proxyURL := framework.StartKubectlProxy(t, env.AdminKubeconfig)
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
	res := framework.ParseCodeServerLogin(t, out, "/workspaces/"+name+"/proxy/", shot)
	opened := res.OpenedThrough("/workspaces/" + name + "/proxy/")
	t.Logf("code-server through kubectl proxy → kube-apiserver → guildnet-apiserver: login %d ms, workbench %d ms, connected %d ms; %d WebSocket(s); screenshot %s",
		res.LoginMs, res.WorkbenchMs, res.ConnectedMs, opened, shot)
}
