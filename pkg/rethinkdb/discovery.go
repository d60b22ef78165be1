package rethinkdb

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// podNamespaceFile holds the namespace of the pod this process runs in.
const podNamespaceFile = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// serviceNamespace returns the namespace to look the Service up in.
func (o *Options) serviceNamespace() string {
	if o.ServiceNamespace != "" {
		return o.ServiceNamespace
	}
	if b, err := os.ReadFile(podNamespaceFile); err == nil {
		if ns := strings.TrimSpace(string(b)); ns != "" {
			return ns
		}
	}
	return metav1.NamespaceDefault
}

// discoverAddress finds host:port of RethinkDB behind the Service, in the order
// the original GuildNet Host App used: LoadBalancer ingress (reachable from
// outside the cluster), then a NodePort on a node address, then the ClusterIP
// (reachable from inside only). A headless Service resolves to its DNS name.
func (o *Options) discoverAddress(ctx context.Context, kube kubernetes.Interface) (string, error) {
	ns := o.serviceNamespace()
	ref := ns + "/" + o.ServiceName
	if kube == nil {
		return "", fmt.Errorf("cannot discover RethinkDB from Service %s: no Kubernetes client; set --rethinkdb-address instead", ref)
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	svc, err := kube.CoreV1().Services(ns).Get(ctx, o.ServiceName, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("cannot discover RethinkDB from Service %s (%v); check --rethinkdb-service and --rethinkdb-service-namespace", ref, oneLine(err.Error()))
	}
	sp, ok := driverPort(svc, int32(o.ServicePort))
	if !ok {
		return "", fmt.Errorf("cannot discover RethinkDB from Service %s: it has no port %d (or named \"client\"/\"driver\"); check --rethinkdb-service-port", ref, o.ServicePort)
	}
	port := strconv.Itoa(int(sp.Port))

	for _, ing := range svc.Status.LoadBalancer.Ingress {
		host := ing.IP
		if host == "" {
			host = ing.Hostname
		}
		if host != "" {
			return net.JoinHostPort(host, port), nil
		}
	}
	if sp.NodePort != 0 && (svc.Spec.Type == corev1.ServiceTypeNodePort || svc.Spec.Type == corev1.ServiceTypeLoadBalancer) {
		if host, err := nodeAddress(ctx, kube); err == nil && host != "" {
			return net.JoinHostPort(host, strconv.Itoa(int(sp.NodePort))), nil
		}
		// No readable node address (e.g. no RBAC to list nodes): fall through.
	}
	switch ip := svc.Spec.ClusterIP; ip {
	case "":
	case corev1.ClusterIPNone:
		return net.JoinHostPort(svc.Name+"."+svc.Namespace+".svc", port), nil
	default:
		return net.JoinHostPort(ip, port), nil
	}
	return "", fmt.Errorf("cannot discover RethinkDB from Service %s: it has no LoadBalancer ingress, NodePort or ClusterIP yet; set --rethinkdb-address or wait for the Service", ref)
}

// driverPort picks the Service port of the driver protocol.
func driverPort(svc *corev1.Service, want int32) (corev1.ServicePort, bool) {
	for _, p := range svc.Spec.Ports {
		if p.Port == want {
			return p, true
		}
	}
	for _, p := range svc.Spec.Ports {
		if p.Name == "client" || p.Name == "driver" {
			return p, true
		}
	}
	if len(svc.Spec.Ports) == 1 {
		return svc.Spec.Ports[0], true
	}
	return corev1.ServicePort{}, false
}

// nodeAddress returns an address of a ready node, an ExternalIP if any node has one.
func nodeAddress(ctx context.Context, kube kubernetes.Interface) (string, error) {
	nodes, err := kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return "", err
	}
	var internal string
	for _, n := range nodes.Items {
		if !nodeReady(&n) {
			continue
		}
		for _, a := range n.Status.Addresses {
			switch {
			case a.Type == corev1.NodeExternalIP && a.Address != "":
				return a.Address, nil
			case a.Type == corev1.NodeInternalIP && a.Address != "" && internal == "":
				internal = a.Address
			}
		}
	}
	return internal, nil
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
