package benchutil

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	guildnetclient "github.com/guildnet/guildnet/generated/clientset/versioned"
	"github.com/guildnet/guildnet/pkg/devenv"
)

// Cluster is the local cluster a benchmark measures against; Stop ends it.
type Cluster struct {
	*devenv.Env
	Kube kubernetes.Interface
	GN   guildnetclient.Interface
}

// StartCluster starts a local cluster with opts and creates namespace in it.
func StartCluster(ctx context.Context, opts devenv.Options, namespace string) (*Cluster, error) {
	fmt.Println("starting a local control plane ...")
	env, err := devenv.Start(ctx, opts)
	if err != nil {
		return nil, err
	}
	cfg := env.AdminConfig()
	c := &Cluster{Env: env, Kube: kubernetes.NewForConfigOrDie(cfg), GN: guildnetclient.NewForConfigOrDie(cfg)}
	if _, err := c.Kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}, metav1.CreateOptions{}); err != nil {
		env.Stop()
		return nil, fmt.Errorf("creating namespace %s: %w", namespace, err)
	}
	return c, nil
}
