package join

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// fakeAdminCluster is a fake clientset whose TokenRequest behaves like the
// kube-apiserver's: it needs the ServiceAccount, and returns a token with
// the asked-for lifetime.
func fakeAdminCluster(t *testing.T, objs ...runtime.Object) (*fake.Clientset, *atomic.Int64) {
	t.Helper()
	cs := fake.NewClientset(objs...)
	var minted atomic.Int64
	cs.PrependReactor("create", "serviceaccounts", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "token" {
			return false, nil, nil
		}
		ca, ok := a.(k8stesting.CreateActionImpl)
		if !ok {
			return true, nil, fmt.Errorf("unexpected action %T", a)
		}
		req, ok := ca.GetObject().(*authenticationv1.TokenRequest)
		if !ok {
			return true, nil, fmt.Errorf("token create with a %T", ca.GetObject())
		}
		name := ca.Name
		if _, err := cs.Tracker().Get(corev1.SchemeGroupVersion.WithResource("serviceaccounts"), a.GetNamespace(), name); err != nil {
			return true, nil, err
		}
		n := minted.Add(1)
		out := req.DeepCopy()
		out.Status.Token = fmt.Sprintf("token-%s-%s-%d", a.GetNamespace(), name, n)
		out.Status.ExpirationTimestamp = metav1.NewTime(time.Unix(1_000_000, 0).Add(time.Duration(*req.Spec.ExpirationSeconds) * time.Second))
		return true, out, nil
	})
	return cs, &minted
}

func namespace(name string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
}

func makeOpts() MakeOptions {
	return MakeOptions{
		Namespace:                "team-a",
		Name:                     "alice-laptop",
		ClusterName:              "prod",
		Server:                   "https://prod.example:6443",
		CertificateAuthorityData: []byte("-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n"),
	}
}

func TestMakeJoinConfig(t *testing.T) {
	cs, _ := fakeAdminCluster(t, namespace("team-a"))
	opts := makeOpts()
	opts.Duration = 48 * time.Hour
	made, err := MakeJoinConfig(t.Context(), cs, opts)
	if err != nil {
		t.Fatal(err)
	}
	if made.Namespace != "team-a" || made.Name != "alice-laptop" {
		t.Fatalf("made %+v", made)
	}
	if want := time.Unix(1_000_000, 0).Add(48 * time.Hour); !made.ExpiresAt.Equal(want) {
		t.Fatalf("expires %s, want %s (the asked-for duration)", made.ExpiresAt, want)
	}

	sa, err := cs.CoreV1().ServiceAccounts("team-a").Get(t.Context(), "alice-laptop", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if sa.Labels[managedByLabel] != managedByValue || sa.Labels[deviceLabel] != "alice-laptop" {
		t.Fatalf("ServiceAccount labels %v", sa.Labels)
	}
	rb, err := cs.RbacV1().RoleBindings("team-a").Get(t.Context(), "alice-laptop", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wantRef := rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "edit"}
	wantSubjects := []rbacv1.Subject{{Kind: "ServiceAccount", Name: "alice-laptop", Namespace: "team-a"}}
	if rb.RoleRef != wantRef || fmt.Sprint(rb.Subjects) != fmt.Sprint(wantSubjects) {
		t.Fatalf("RoleBinding %+v %+v", rb.RoleRef, rb.Subjects)
	}
	// No long-lived token Secret was made.
	if secrets, _ := cs.CoreV1().Secrets("team-a").List(t.Context(), metav1.ListOptions{}); len(secrets.Items) != 0 {
		t.Fatalf("made Secrets: %v", secrets.Items)
	}

	// The file is a guildnet.config a device can parse, for the right
	// server, CA, namespace and token.
	cfg, err := Parse(made.Data, Options{})
	if err != nil {
		t.Fatalf("the made file does not parse: %v\n%s", err, made.Data)
	}
	if cfg.Name != "prod" || cfg.Server != "https://prod.example:6443" || cfg.Namespace != "team-a" || cfg.UsesPlugin {
		t.Fatalf("parsed %+v", cfg)
	}
	rc, err := cfg.RESTConfig()
	if err != nil {
		t.Fatal(err)
	}
	if rc.BearerToken != "token-team-a-alice-laptop-1" || string(rc.CAData) != string(opts.CertificateAuthorityData) {
		t.Fatalf("token %q CA %q", rc.BearerToken, rc.CAData)
	}
	var jc JoinConfig
	if err := yamlUnmarshalStrict(made.Data, &jc); err != nil {
		t.Fatal(err)
	}
	if jc.Kind != Kind || jc.APIVersion != APIVersion || jc.Server != opts.Server || string(jc.CertificateAuthorityData) != string(opts.CertificateAuthorityData) {
		t.Fatalf("hints %+v", jc)
	}

	// Running again for the same device reuses the account and mints a
	// new token.
	again, err := MakeJoinConfig(t.Context(), cs, opts)
	if err != nil {
		t.Fatal(err)
	}
	cfg2, _ := Parse(again.Data, Options{})
	rc2, _ := cfg2.RESTConfig()
	if rc2.BearerToken != "token-team-a-alice-laptop-2" {
		t.Fatalf("second run token %q", rc2.BearerToken)
	}
}

func TestMakeJoinConfigDefaultDuration(t *testing.T) {
	cs, _ := fakeAdminCluster(t, namespace("team-a"))
	made, err := MakeJoinConfig(t.Context(), cs, makeOpts())
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Unix(1_000_000, 0).Add(DefaultTokenDuration); !made.ExpiresAt.Equal(want) {
		t.Fatalf("expires %s, want %s", made.ExpiresAt, want)
	}
}

func TestMakeJoinConfigRepairsSubjects(t *testing.T) {
	labels := map[string]string{managedByLabel: managedByValue}
	cs, _ := fakeAdminCluster(t, namespace("team-a"),
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "alice-laptop", Namespace: "team-a", Labels: labels}},
		&rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "alice-laptop", Namespace: "team-a", Labels: labels},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "edit"},
			Subjects:   []rbacv1.Subject{{Kind: "User", Name: "mallory"}},
		})
	if _, err := MakeJoinConfig(t.Context(), cs, makeOpts()); err != nil {
		t.Fatal(err)
	}
	rb, _ := cs.RbacV1().RoleBindings("team-a").Get(t.Context(), "alice-laptop", metav1.GetOptions{})
	if len(rb.Subjects) != 1 || rb.Subjects[0].Name != "alice-laptop" || rb.Subjects[0].Kind != "ServiceAccount" {
		t.Fatalf("subjects not repaired: %+v", rb.Subjects)
	}
}

func TestMakeJoinConfigRefusals(t *testing.T) {
	foreignSA := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "alice-laptop", Namespace: "team-a"}}
	ours := map[string]string{managedByLabel: managedByValue}
	ourSA := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "alice-laptop", Namespace: "team-a", Labels: ours}}
	adminRB := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "alice-laptop", Namespace: "team-a", Labels: ours},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "admin"},
	}
	foreignRB := adminRB.DeepCopy()
	foreignRB.Labels = nil

	for _, tc := range []struct {
		name   string
		objs   []runtime.Object
		mutate func(*MakeOptions)
		react  k8stesting.ReactionFunc
		want   string
	}{
		{name: "no namespace", want: `namespace "team-a" does not exist; create it first`},
		{name: "foreign ServiceAccount", objs: []runtime.Object{namespace("team-a"), foreignSA},
			want: "ServiceAccount team-a/alice-laptop already exists and was not made by guildnet-portal"},
		{name: "foreign RoleBinding", objs: []runtime.Object{namespace("team-a"), ourSA, foreignRB},
			want: "RoleBinding team-a/alice-laptop already exists and was not made by guildnet-portal"},
		{name: "other role", objs: []runtime.Object{namespace("team-a"), ourSA, adminRB},
			want: `binds ClusterRole "admin", not ClusterRole edit; delete it`},
		{name: "bad device name", objs: []runtime.Object{namespace("team-a")}, mutate: func(o *MakeOptions) { o.Name = "Alice's Laptop" },
			want: "must be a DNS label"},
		{name: "too short", objs: []runtime.Object{namespace("team-a")}, mutate: func(o *MakeOptions) { o.Duration = time.Minute },
			want: "shorter than the Kubernetes minimum of 10m0s"},
		{name: "http server", objs: []runtime.Object{namespace("team-a")}, mutate: func(o *MakeOptions) { o.Server = "http://x" },
			want: "not https"},
		{name: "forbidden", objs: []runtime.Object{namespace("team-a")},
			react: func(a k8stesting.Action) (bool, runtime.Object, error) {
				if a.GetVerb() == "create" && a.GetResource().Resource == "rolebindings" {
					return true, nil, apierrors.NewForbidden(schema.GroupResource{Group: "rbac.authorization.k8s.io", Resource: "rolebindings"}, "alice-laptop",
						fmt.Errorf("user \"bob\" is attempting to grant RBAC permissions not currently held"))
				}
				return false, nil, nil
			},
			want: "hold the edit role there itself"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cs, minted := fakeAdminCluster(t, tc.objs...)
			if tc.react != nil {
				cs.PrependReactor("*", "*", tc.react)
			}
			opts := makeOpts()
			if tc.mutate != nil {
				tc.mutate(&opts)
			}
			_, err := MakeJoinConfig(t.Context(), cs, opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("MakeJoinConfig = %v, want an error containing %q", err, tc.want)
			}
			if minted.Load() != 0 {
				t.Fatal("a token was minted despite the error")
			}
		})
	}
}

// The made file's kubeconfig has exactly one context, in the namespace.
func TestMadeKubeconfigShape(t *testing.T) {
	cs, _ := fakeAdminCluster(t, namespace("team-a"))
	opts := makeOpts()
	opts.TLSServerName = "kubernetes.default.svc"
	made, err := MakeJoinConfig(t.Context(), cs, opts)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := Parse(made.Data, Options{})
	if err != nil {
		t.Fatal(err)
	}
	kc := cfg.kubeconfig
	if len(kc.Contexts) != 1 || len(kc.AuthInfos) != 1 || len(kc.Clusters) != 1 {
		t.Fatalf("kubeconfig %+v", kc)
	}
	c := kc.Contexts[kc.CurrentContext]
	if c == nil || c.Namespace != "team-a" || kc.Clusters[c.Cluster].TLSServerName != "kubernetes.default.svc" {
		t.Fatalf("context %+v", c)
	}
}
