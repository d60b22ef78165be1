package integration

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	guildnetclient "github.com/guildnet/guildnet/generated/clientset/versioned"
	"github.com/guildnet/guildnet/test/framework"
)

// The group is served through the real aggregation layer: kubectl sees the
// three resources, the group's discovery document and their OpenAPI schema.
func TestAPIGroupThroughAggregation(t *testing.T) {
	env := framework.Env(t)

	out := framework.MustKubectl(t, env.AdminKubeconfig, "api-resources", "--api-group=guildnet.io", "--no-headers")
	for _, want := range []string{"workspaces", "databases", "tables"} {
		if !strings.Contains(out, want) {
			t.Errorf("kubectl api-resources --api-group=guildnet.io does not list %s:\n%s", want, out)
		}
	}

	raw := framework.MustKubectl(t, env.AdminKubeconfig, "get", "--raw", "/apis/guildnet.io/v1alpha1")
	for _, want := range []string{`"groupVersion":"guildnet.io/v1alpha1"`, `"name":"workspaces/status"`, `"name":"tables/status"`, `"shortNames":["ws"]`} {
		if !strings.Contains(raw, want) {
			t.Errorf("/apis/guildnet.io/v1alpha1 lacks %s:\n%s", want, raw)
		}
	}

	// The aggregated OpenAPI appears about a second after the APIService
	// turns Available.
	framework.Eventually(t, 30*time.Second, "kubectl explain workspace.spec", func(context.Context) error {
		r := framework.RunKubectl(t, env.AdminKubeconfig, "explain", "workspace.spec")
		if r.Err != nil {
			return errors.New(r.Stderr)
		}
		for _, want := range []string{"image", "ports", "suspend", "idleTimeout"} {
			if !strings.Contains(r.Stdout, want) {
				return errors.New("explain output lacks " + want + ":\n" + r.Stdout)
			}
		}
		return nil
	})
}

// guildnet-apiserver authorizes with SubjectAccessReviews against
// kube-apiserver's RBAC: a user with no role is refused until a RoleBinding
// to the built-in view role (which guildnet's aggregated role extends)
// grants it.
func TestAuthorizationIsDelegated(t *testing.T) {
	env := framework.Env(t)
	ctx := context.Background()
	admin := kubernetes.NewForConfigOrDie(env.AdminConfig())
	ns := createNamespace(t, admin, "authz")

	userCfg, err := env.UserConfig("alice")
	if err != nil {
		t.Fatal(err)
	}
	alice := guildnetclient.NewForConfigOrDie(userCfg)

	_, err = alice.GuildnetV1alpha1().Databases(ns).List(ctx, metav1.ListOptions{})
	if !apierrors.IsForbidden(err) {
		t.Fatalf("list databases as alice without a role: want 403 Forbidden, got %v", err)
	}
	if !strings.Contains(err.Error(), `User "alice" cannot list resource "databases" in API group "guildnet.io"`) {
		t.Errorf("the 403 should say who may not do what; got %q", err)
	}

	_, err = admin.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "alice-view"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "view"},
		Subjects:   []rbacv1.Subject{{Kind: "User", APIGroup: "rbac.authorization.k8s.io", Name: "alice"}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// guildnet-apiserver caches SubjectAccessReview answers briefly.
	framework.Eventually(t, 30*time.Second, "alice may list databases after the RoleBinding", func(ctx context.Context) error {
		_, err := alice.GuildnetV1alpha1().Databases(ns).List(ctx, metav1.ListOptions{})
		return err
	})
	// view is read-only: creating is still refused.
	framework.Eventually(t, 30*time.Second, "alice may not create databases with view", func(ctx context.Context) error {
		_, err := alice.GuildnetV1alpha1().Databases(ns).Create(ctx, newDatabase("orders"), metav1.CreateOptions{})
		if !apierrors.IsForbidden(err) {
			return errors.New("want 403, got " + errString(err))
		}
		return nil
	})
}

// The manifests in artifacts/ are valid for this Kubernetes version: a
// server-side dry run accepts every object.
func TestArtifactsServerSideDryRun(t *testing.T) {
	env := framework.Env(t)
	root := repoRoot(t)
	// The namespace exists already (the environment applied artifacts/base
	// RBAC); a dry run cannot create it for the objects inside it.
	out := framework.MustKubectl(t, env.AdminKubeconfig, "apply", "--server-side", "--force-conflicts",
		"--dry-run=server", "--field-manager=artifacts-dry-run", "-k", filepath.Join(root, "artifacts"))
	for _, want := range []string{
		"apiservice.apiregistration.k8s.io/v1alpha1.guildnet.io serverside-applied (server dry run)",
		"deployment.apps/guildnet-apiserver serverside-applied (server dry run)",
		"statefulset.apps/rethinkdb serverside-applied (server dry run)",
		"poddisruptionbudget.policy/guildnet-apiserver serverside-applied (server dry run)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run output lacks %q:\n%s", want, out)
		}
	}
}

// Bad configuration ends with one line that says what is wrong, not a
// stack trace.
func TestBadConfigurationIsOneClearLine(t *testing.T) {
	env := framework.Env(t)
	identity := filepath.Join(env.Dir, "kubeconfigs", "guildnet-apiserver.kubeconfig")
	bin := filepath.Join(repoRoot(t), "_output", "bin", "guildnet-apiserver")
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"unknown flag", []string{"--no-such-flag"}, "unknown flag: --no-such-flag"},
		{"bad log format", []string{"--log-format=xml", "--rethinkdb-address=127.0.0.1:1"}, `--log-format must be "text" or "json"`},
		{"RethinkDB unreachable", []string{
			"--secure-port=0", "--bind-address=127.0.0.1",
			"--kubeconfig=" + identity, "--authentication-kubeconfig=" + identity, "--authorization-kubeconfig=" + identity,
			"--rethinkdb-address=127.0.0.1:1",
		}, "cannot reach RethinkDB at 127.0.0.1:1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, tc.args...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 1 {
				t.Fatalf("want exit code 1, got %v; stderr:\n%s", err, stderr.String())
			}
			lines := nonLogLines(stderr.String())
			if len(lines) != 1 || !strings.HasPrefix(lines[0], "guildnet-apiserver: ") || !strings.Contains(lines[0], tc.want) {
				t.Fatalf("want one line 'guildnet-apiserver: ...%s...', got:\n%s", tc.want, stderr.String())
			}
			if strings.Contains(stderr.String(), "goroutine ") || strings.Contains(stderr.String(), "panic") {
				t.Fatalf("stderr has a stack trace:\n%s", stderr.String())
			}
		})
	}
}

// nonLogLines drops the structured log lines the server writes while it
// starts, keeping what main prints.
func nonLogLines(s string) []string {
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		if strings.HasPrefix(l, "guildnet-apiserver: ") {
			out = append(out, l)
		}
	}
	return out
}

func createNamespace(t *testing.T, kube kubernetes.Interface, prefix string) string {
	t.Helper()
	ns, err := kube.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-"},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

func repoRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}

func errString(err error) string {
	if err == nil {
		return "no error"
	}
	return err.Error()
}
