// Package resilience tests how GuildNet behaves when what it depends on
// fails. It has its own control plane because its tests break it on purpose.
package resilience

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/guildnet/guildnet/apis/guildnet/v1alpha1"
	guildnetclient "github.com/guildnet/guildnet/generated/clientset/versioned"
	"github.com/guildnet/guildnet/pkg/devenv"
	"github.com/guildnet/guildnet/test/framework"
)

func TestMain(m *testing.M) {
	framework.Main(m, devenv.Options{})
}

// While RethinkDB is down, requests fail fast with 503 and a message that
// names RethinkDB; when it is back, guildnet-apiserver recovers by itself.
func TestRethinkDBOutageIs503AndRecovers(t *testing.T) {
	env := framework.Env(t)
	ctx := context.Background()
	kube := kubernetes.NewForConfigOrDie(env.AdminConfig())
	gn := guildnetclient.NewForConfigOrDie(env.AdminConfig())
	if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "outage"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	db := func(name string) *v1alpha1.Database {
		return &v1alpha1.Database{ObjectMeta: metav1.ObjectMeta{Name: name}}
	}
	if _, err := gn.GuildnetV1alpha1().Databases("outage").Create(ctx, db("before"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	if err := env.StopRethinkDB(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err := gn.GuildnetV1alpha1().Databases("outage").Create(ctx, db("during"), metav1.CreateOptions{})
	took := time.Since(start)
	if !apierrors.IsServiceUnavailable(err) {
		t.Fatalf("create while RethinkDB is down: want 503 Service Unavailable, got %v", err)
	}
	if !strings.Contains(err.Error(), "RethinkDB at "+env.RethinkDBAddr+" is unreachable") {
		t.Errorf("the 503 should say RethinkDB is unreachable and where; got %q", err)
	}
	// "Fast" means well inside kube-apiserver's 60 s request timeout.
	if took > 20*time.Second {
		t.Errorf("the 503 took %s; requests must fail fast while RethinkDB is down", took)
	}

	if err := env.StartRethinkDB(ctx); err != nil {
		t.Fatal(err)
	}
	framework.Eventually(t, 60*time.Second, "creates succeed again once RethinkDB is back", func(ctx context.Context) error {
		_, err := gn.GuildnetV1alpha1().Databases("outage").Create(ctx, db("after"), metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return err
		}
		return nil
	})
	framework.Eventually(t, 60*time.Second, "lists succeed again and show the new object", func(ctx context.Context) error {
		l, err := gn.GuildnetV1alpha1().Databases("outage").List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		for _, d := range l.Items {
			if d.Name == "after" {
				return nil
			}
		}
		return fmt.Errorf("list has %d databases, none named after", len(l.Items))
	})
}
