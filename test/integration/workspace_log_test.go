package integration

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/guildnet/guildnet/apis/guildnet"
	"github.com/guildnet/guildnet/apis/guildnet/v1alpha1"
	guildnetclient "github.com/guildnet/guildnet/generated/clientset/versioned"
	"github.com/guildnet/guildnet/test/framework"
)

// fakeKubelet answers kube-apiserver's container log requests the way a
// kubelet does (GET /containerLogs/NS/POD/CONTAINER), from a network
// namespace so the Node can carry a real-looking address.
type fakeKubelet struct {
	mu      sync.Mutex
	queries []string
	more    chan string
}

func (k *fakeKubelet) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.HasPrefix(r.URL.Path, "/containerLogs/") {
		http.NotFound(w, r)
		return
	}
	k.mu.Lock()
	k.queries = append(k.queries, r.URL.Path+"?"+r.URL.RawQuery)
	k.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain")
	fmt.Fprint(w, "line 1\nline 2\nline 3\n")
	w.(http.Flusher).Flush()
	if r.URL.Query().Get("follow") != "true" {
		return
	}
	for {
		select {
		case line := <-k.more:
			fmt.Fprintln(w, line)
			w.(http.Flusher).Flush()
		case <-r.Context().Done():
			return
		}
	}
}

func (k *fakeKubelet) lastQuery() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.queries) == 0 {
		return ""
	}
	return k.queries[len(k.queries)-1]
}

// workspaces/log streams the workspace container's log from its pod. There
// is no kubelet here, so the test plays the scheduler and the kubelet: it
// registers a Node whose address is a fake kubelet in a network namespace
// and puts a pod of the workspace on it.
func TestWorkspaceLog(t *testing.T) {
	env := framework.Env(t)
	ctx := context.Background()
	adminCfg := env.AdminConfig()
	kube := kubernetes.NewForConfigOrDie(adminCfg)
	gn := guildnetclient.NewForConfigOrDie(adminCfg)
	ns := createNamespace(t, kube, "log")

	netns := framework.NewNetNS(t)
	kubelet := &fakeKubelet{more: make(chan string)}
	srv := httptest.NewUnstartedServer(kubelet)
	srv.Listener = netns.Listen(t, 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	port := srv.Listener.Addr().(*net.TCPAddr).Port

	nodeName := "fake-kubelet-" + ns
	node, err := kube.CoreV1().Nodes().Create(ctx, &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: nodeName},
		Status: corev1.NodeStatus{
			Addresses:       []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: netns.IP}},
			DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: int32(port)}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = kube.CoreV1().Nodes().Delete(context.Background(), nodeName, metav1.DeleteOptions{}) })
	if node.Status.DaemonEndpoints.KubeletEndpoint.Port != int32(port) {
		// Node status is not always kept on create; set it like a kubelet does.
		node.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: netns.IP}}
		node.Status.DaemonEndpoints.KubeletEndpoint.Port = int32(port)
		if _, err := kube.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	const name = "logs"
	if _, err := gn.GuildnetV1alpha1().Workspaces(ns).Create(ctx, &v1alpha1.Workspace{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       v1alpha1.WorkspaceSpec{Image: "example.com/app:1"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	logPath := "/apis/guildnet.io/v1alpha1/namespaces/" + ns + "/workspaces/" + name + "/log"

	// Before any pod is on a node the user is told why there is no log.
	body, err := kube.CoreV1().RESTClient().Get().AbsPath(logPath).DoRaw(ctx)
	if err == nil || !strings.Contains(string(body)+err.Error(), "no pod on a node yet") {
		t.Fatalf("log of a workspace without a pod: %v %s; want an error saying it has no pod yet", err, body)
	}

	// The pod as the scheduler would have placed it (once the namespace's
	// default ServiceAccount exists, which admission requires).
	framework.Eventually(t, 30*time.Second, "the workspace's pod is created", func(ctx context.Context) error {
		_, err := kube.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name + "-pod", Labels: map[string]string{guildnet.WorkspaceLabel: name}},
			Spec: corev1.PodSpec{NodeName: nodeName, Containers: []corev1.Container{
				{Name: guildnet.WorkspaceContainerName, Image: "example.com/app:1"},
			}},
		}, metav1.CreateOptions{})
		return err
	})

	t.Run("tail", func(t *testing.T) {
		out, err := kube.CoreV1().RESTClient().Get().AbsPath(logPath).Param("tailLines", "2").DoRaw(ctx)
		if err != nil {
			t.Fatalf("%v %s", err, out)
		}
		if string(out) != "line 1\nline 2\nline 3\n" {
			t.Fatalf("log %q", out)
		}
		q := kubelet.lastQuery()
		if !strings.HasPrefix(q, "/containerLogs/"+ns+"/"+name+"-pod/"+guildnet.WorkspaceContainerName+"?") || !strings.Contains(q, "tailLines=2") {
			t.Fatalf("the kubelet was asked %q; want the workspace container with tailLines=2", q)
		}
	})

	t.Run("follow streams new lines", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		stream, err := kube.CoreV1().RESTClient().Get().AbsPath(logPath).Param("follow", "true").Param("sinceSeconds", "60").Stream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer stream.Close()
		r := bufio.NewReader(stream)
		for i := 1; i <= 3; i++ {
			if line, err := r.ReadString('\n'); err != nil || line != fmt.Sprintf("line %d\n", i) {
				t.Fatalf("line %d: %q %v", i, line, err)
			}
		}
		// A line written after the request started arrives while the stream
		// stays open.
		go func() {
			select {
			case kubelet.more <- "line 4 (later)":
			case <-ctx.Done():
			}
		}()
		if line, err := r.ReadString('\n'); err != nil || line != "line 4 (later)\n" {
			t.Fatalf("followed line: %q %v", line, err)
		}
		if q := kubelet.lastQuery(); !strings.Contains(q, "follow=true") || !strings.Contains(q, "sinceSeconds=60") {
			t.Fatalf("the kubelet was asked %q", q)
		}
	})

	t.Run("bad parameters name the field", func(t *testing.T) {
		out, err := kube.CoreV1().RESTClient().Get().AbsPath(logPath).Param("tailLines", "-1").DoRaw(ctx)
		if err == nil || !strings.Contains(string(out)+err.Error(), "tailLines must not be negative") {
			t.Fatalf("tailLines=-1: %v %s", err, out)
		}
	})
}
