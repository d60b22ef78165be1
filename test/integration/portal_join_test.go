package integration

import (
	"context"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/guildnet/guildnet/apis/guildnet/v1alpha1"
	guildnetclient "github.com/guildnet/guildnet/generated/clientset/versioned"
	"github.com/guildnet/guildnet/portal/join"
	"github.com/guildnet/guildnet/portal/store"
	"github.com/guildnet/guildnet/test/framework"
)

// An admin mints a device's guildnet.config on the local control plane; the
// device joins with it (discovery of guildnet.io through the real
// aggregation layer) and can then work in its namespace with the stored
// credentials, and only there.
func TestPortalJoinsTheLocalControlPlane(t *testing.T) {
	env := framework.Env(t)
	ctx := context.Background()
	admin := kubernetes.NewForConfigOrDie(env.AdminConfig())
	ns := createNamespace(t, admin, "device")

	made, err := join.MakeJoinConfig(ctx, admin, join.MakeOptions{
		Namespace: ns, Name: "laptop", ClusterName: "local",
		Server: env.KubeAPIServerURL, CertificateAuthorityData: env.AdminConfig().CAData,
	})
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	res, err := join.Join(ctx, st, made.Data, join.Options{})
	if err != nil {
		t.Fatalf("join: %v", err)
	}
	clusters, err := st.List()
	if err != nil || len(clusters) != 1 || clusters[0].ID != res.Cluster.ID {
		t.Fatalf("store after join: %v %v", clusters, err)
	}

	cfg, err := join.RESTConfigFor(st, res.Cluster.ID)
	if err != nil {
		t.Fatal(err)
	}
	gn := guildnetclient.NewForConfigOrDie(cfg).GuildnetV1alpha1()
	// The device's ServiceAccount has the built-in edit role, which
	// guildnet's aggregated role extends, in its namespace.
	framework.Eventually(t, 30*time.Second, "the device can create a database in its namespace", func(ctx context.Context) error {
		_, err := gn.Databases(ns).Create(ctx, &v1alpha1.Database{ObjectMeta: metav1.ObjectMeta{Name: "notes"}}, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			return nil
		}
		return err
	})
	if _, err := gn.Databases("default").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("the device lists databases in another namespace: want 403, got %v", err)
	}

	// A second join file for a namespace that does not exist is refused
	// by the admin command, not half-made.
	_, err = join.MakeJoinConfig(ctx, admin, join.MakeOptions{Namespace: "no-such-namespace", Name: "phone", Server: env.KubeAPIServerURL})
	if err == nil {
		t.Fatal("MakeJoinConfig for a missing namespace succeeded")
	}
}
