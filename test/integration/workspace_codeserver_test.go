package integration

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/cookiejar"
	neturl "net/url"
	"os"
	"path/filepath"
	"regexp"
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

	// The browser loaded the workbench's script once. Loaded again, it
	// comes from workspaces/proxy's asset cache: gzipped, through the
	// aggregation layer, and exactly the bytes code-server serves.
	direct := codeServerSession(t, cs.URL, cs.Password)
	proxied := codeServerSession(t, url, cs.Password)
	script := workbenchScriptPath(t, direct, cs.URL)
	want := fetchDecoded(t, direct, cs.URL+script, "identity")
	for i := range 2 {
		got, encoding := fetchDecodedWithEncoding(t, proxied, url+script, "gzip, deflate, br")
		if encoding != "gzip" || got != want {
			t.Fatalf("%s through the proxy, load %d after the browser's: Content-Encoding %q, %d bytes decoded; want gzip of code-server's %d bytes",
				script, i+2, encoding, len(got), len(want))
		}
	}
	t.Logf("%s (%d bytes) came through the proxy gzipped from its asset cache", script, len(want))
}

// codeServerSession logs in to the code-server at base (its URL, or its
// workspaces/proxy URL) and returns a client that carries the session
// cookie.
func codeServerSession(t *testing.T, base, password string) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.PostForm(base+"login", neturl.Values{"password": {password}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	u, _ := neturl.Parse(base)
	if len(jar.Cookies(u)) == 0 {
		t.Fatalf("logging in at %slogin: %s and no session cookie", base, resp.Status)
	}
	return c
}

// workbenchScriptPath is the path of the workbench's main script, relative
// to base, as the workbench page names it.
func workbenchScriptPath(t *testing.T, c *http.Client, base string) string {
	t.Helper()
	page := fetchDecoded(t, c, base+"?folder=/tmp", "identity")
	m := regexp.MustCompile(`stable-[0-9a-f]+/static/out/vs/code/browser/workbench/workbench\.js`).FindString(page)
	if m == "" {
		t.Fatalf("the workbench page at %s names no workbench.js:\n%.500s", base, page)
	}
	return m
}

// fetchDecodedWithEncoding GETs url with Accept-Encoding acceptEncoding
// and returns the body (gunzipped if it came gzipped) and its
// Content-Encoding.
func fetchDecodedWithEncoding(t *testing.T, c *http.Client, url, acceptEncoding string) (string, string) {
	t.Helper()
	resp, body, err := workspacetest.GetDecoded(c, url, http.Header{"Accept-Encoding": {acceptEncoding}})
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %.300s", url, resp.Status, body)
	}
	return body, resp.Header.Get("Content-Encoding")
}

func fetchDecoded(t *testing.T, c *http.Client, url, acceptEncoding string) string {
	t.Helper()
	body, _ := fetchDecodedWithEncoding(t, c, url, acceptEncoding)
	return body
}
