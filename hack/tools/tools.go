//go:build tools

// Package tools pins the upstream programs GuildNet's local control plane runs
// (kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, etcd) so
// that hack/build-tools.sh can build them from the Go module proxy at the
// versions recorded in this module's go.mod.
package tools

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
