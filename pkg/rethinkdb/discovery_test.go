package rethinkdb

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
)

func TestDiscoverAddress(t *testing.T) {
	svc := func(typ corev1.ServiceType, clusterIP string, ports []corev1.ServicePort, ingress ...corev1.LoadBalancerIngress) *corev1.Service {
		return &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "rethinkdb", Namespace: "db"},
			Spec:       corev1.ServiceSpec{Type: typ, ClusterIP: clusterIP, Ports: ports},
			Status:     corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: ingress}},
		}
	}
	node := func(name string, ready bool, addrs ...corev1.NodeAddress) *corev1.Node {
		st := corev1.ConditionFalse
		if ready {
			st = corev1.ConditionTrue
		}
		return &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Status: corev1.NodeStatus{
				Addresses:  addrs,
				Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: st}},
			},
		}
	}
	driver := []corev1.ServicePort{{Name: "admin", Port: 8080, NodePort: 30080}, {Name: "client", Port: 28015, NodePort: 30015}}
	tests := []struct {
		name    string
		objs    []runtime.Object
		want    string
		wantErr string
	}{
		{"load balancer ip", []runtime.Object{svc(corev1.ServiceTypeLoadBalancer, "10.0.0.5", driver, corev1.LoadBalancerIngress{IP: "192.0.2.7"})}, "192.0.2.7:28015", ""},
		{"load balancer hostname", []runtime.Object{svc(corev1.ServiceTypeLoadBalancer, "10.0.0.5", driver, corev1.LoadBalancerIngress{Hostname: "db.example.com"})}, "db.example.com:28015", ""},
		{"node port external ip", []runtime.Object{
			svc(corev1.ServiceTypeNodePort, "10.0.0.5", driver),
			node("a", false, corev1.NodeAddress{Type: corev1.NodeExternalIP, Address: "203.0.113.1"}),
			node("b", true, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: "172.16.0.2"}),
			node("c", true, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: "172.16.0.3"}, corev1.NodeAddress{Type: corev1.NodeExternalIP, Address: "203.0.113.3"}),
		}, "203.0.113.3:30015", ""},
		{"node port internal ip", []runtime.Object{
			svc(corev1.ServiceTypeNodePort, "10.0.0.5", driver),
			node("b", true, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: "172.16.0.2"}),
		}, "172.16.0.2:30015", ""},
		{"node port without nodes falls back to cluster ip", []runtime.Object{svc(corev1.ServiceTypeNodePort, "10.0.0.5", driver)}, "10.0.0.5:28015", ""},
		{"cluster ip", []runtime.Object{svc(corev1.ServiceTypeClusterIP, "10.0.0.5", []corev1.ServicePort{{Name: "x", Port: 28015}})}, "10.0.0.5:28015", ""},
		{"headless", []runtime.Object{svc(corev1.ServiceTypeClusterIP, "None", driver)}, "rethinkdb.db.svc:28015", ""},
		{"no driver port", []runtime.Object{svc(corev1.ServiceTypeClusterIP, "10.0.0.5", []corev1.ServicePort{{Name: "a", Port: 1}, {Name: "b", Port: 2}})}, "", "--rethinkdb-service-port"},
		{"missing service", nil, "", "check --rethinkdb-service"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := NewOptions()
			o.ServiceName, o.ServiceNamespace = "rethinkdb", "db"
			got, err := o.discoverAddress(context.Background(), fake.NewClientset(tt.objs...))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %q, %v; want an error naming %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestDiscoverWithoutKube(t *testing.T) {
	o := NewOptions()
	o.ServiceName, o.ServiceNamespace = "rethinkdb", "db"
	if _, err := o.Connect(context.Background(), nil); err == nil || !strings.Contains(err.Error(), "--rethinkdb-address") {
		t.Fatalf("Connect without kube = %v, want an error that suggests --rethinkdb-address", err)
	}
}
