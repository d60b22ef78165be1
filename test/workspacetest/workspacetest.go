// Package workspacetest holds what tests and benchmarks of workspaces/proxy
// share: publishing a server's address as a workspace's endpoint (playing
// the kubelet and the EndpointSlice controller, which a control plane
// without nodes lacks), finding and readying a workspace's pod, and a
// WebSocket echo server, and a GET that reads gzipped answers.
package workspacetest

import (
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"

	"github.com/gorilla/websocket"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/guildnet/guildnet/apis/guildnet"
)

// PublishEndpoint creates an EndpointSlice of workspace name's Service
// that points at ip:port, labelled the way guildnet-apiserver looks for a
// real pod's address. managedBy names who made it.
func PublishEndpoint(ctx context.Context, kube kubernetes.Interface, namespace, name, ip string, port int32, managedBy string) error {
	_, err := kube.DiscoveryV1().EndpointSlices(namespace).Create(ctx, &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: name + "-" + managedBy, Labels: map[string]string{
			discoveryv1.LabelServiceName: guildnet.WorkspaceServiceName(name),
			guildnet.WorkspaceLabel:      name,
			discoveryv1.LabelManagedBy:   managedBy,
		}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{ip}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}},
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To(port), Protocol: ptr.To(corev1.ProtocolTCP)}},
	}, metav1.CreateOptions{})
	return err
}

// Echo is a WebSocket server that sends every message back. seen, when
// not nil, is called with each handshake's headers.
func Echo(seen func(http.Header)) http.Handler {
	up := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if seen != nil {
			seen(r.Header.Clone())
		}
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for {
			mt, msg, err := c.ReadMessage()
			if err != nil {
				return
			}
			if err := c.WriteMessage(mt, msg); err != nil {
				return
			}
		}
	})
}

// LivePod returns workspace name's one pod that is not being deleted (the
// replicaset controller makes it), or an error saying how many there are.
func LivePod(ctx context.Context, kube kubernetes.Interface, namespace, name string) (*corev1.Pod, error) {
	pods, err := kube.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: guildnet.WorkspaceLabel + "=" + name})
	if err != nil {
		return nil, err
	}
	var live []corev1.Pod
	for _, p := range pods.Items {
		if p.DeletionTimestamp.IsZero() {
			live = append(live, p)
		}
	}
	if len(live) != 1 {
		return nil, fmt.Errorf("workspace %s/%s has %d live pods, want 1", namespace, name, len(live))
	}
	return &live[0], nil
}

// MarkPodReady plays the kubelet, which a control plane without nodes
// lacks: pod runs and passes its readiness probe.
func MarkPodReady(ctx context.Context, kube kubernetes.Interface, pod *corev1.Pod) error {
	now := metav1.Now()
	pod.Status.Phase = corev1.PodRunning
	pod.Status.Conditions = []corev1.PodCondition{
		{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: now},
		{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
		{Type: corev1.ContainersReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
	}
	pod.Status.ContainerStatuses = []corev1.ContainerStatus{{
		Name: guildnet.WorkspaceContainerName, Image: pod.Spec.Containers[0].Image, Ready: true,
		State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}},
	}}
	_, err := kube.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, pod, metav1.UpdateOptions{})
	return err
}

// GetDecoded GETs url with c, sending header as it is (so the transport
// neither asks for gzip itself nor unpacks it), and returns the answer with
// its body read to the end: gunzipped when its Content-Encoding is gzip,
// so a caller can compare what a browser would decode.
func GetDecoded(c *http.Client, url string, header http.Header) (*http.Response, string, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return nil, "", err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	var r io.Reader = resp.Body
	if resp.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(resp.Body)
		if err != nil {
			return resp, "", fmt.Errorf("GET %s: Content-Encoding gzip, but %w", url, err)
		}
		r = zr
	}
	body, err := io.ReadAll(r)
	if err != nil {
		return resp, string(body), fmt.Errorf("GET %s: %w", url, err)
	}
	return resp, string(body), nil
}
