package join

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

const (
	// DefaultTokenDuration is how long a minted device token is valid when
	// MakeOptions.Duration is 0: long enough not to be a chore, short
	// enough that a forgotten device stops working by itself.
	DefaultTokenDuration = 90 * 24 * time.Hour
	// minTokenDuration is the TokenRequest API's own minimum.
	minTokenDuration = 10 * time.Minute

	// EditClusterRole is the built-in ClusterRole a device is bound to in
	// its namespace. GuildNet aggregates its resources into it
	// (artifacts/base/rbac-aggregated.yaml).
	EditClusterRole = "edit"

	managedByLabel = "app.kubernetes.io/managed-by"
	managedByValue = "guildnet-portal"
	deviceLabel    = "guildnet.io/device"
)

// MakeOptions describe the join file to mint for a device.
type MakeOptions struct {
	// Namespace the device may work in; it must exist.
	Namespace string
	// Name of the device; it names the ServiceAccount and RoleBinding, so
	// it must be a DNS label (lower-case letters, digits, '-').
	Name string
	// Duration the token is valid; 0 means DefaultTokenDuration. The
	// cluster may shorten it (--service-account-max-token-expiration);
	// Made.ExpiresAt says what it granted.
	Duration time.Duration
	// ClusterName is the display name written into the file.
	ClusterName string
	// Server is the kube-apiserver URL as the device will reach it.
	Server string
	// CertificateAuthorityData is the PEM CA the device verifies the
	// server with; empty means the device's system roots.
	CertificateAuthorityData []byte
	// TLSServerName, if set, is the name the device checks the server's
	// certificate against (when Server is an address it does not cover).
	TLSServerName string
}

// Made is a minted join file and what was done to mint it.
type Made struct {
	// Data is the guildnet.config (YAML). It holds the token.
	Data []byte
	// Namespace and Name of the ServiceAccount and the RoleBinding.
	Namespace, Name string
	// ExpiresAt is when the token stops working.
	ExpiresAt time.Time
}

// MakeJoinConfig creates (or reuses) a ServiceAccount for the device in the
// namespace, binds it to the built-in edit ClusterRole there, and mints a
// token for it with the TokenRequest API.
//
// Why TokenRequest rather than a kubernetes.io/service-account-token
// Secret: the token expires (a lost device stops working by itself), and it
// exists nowhere in the cluster. A Secret-based token would never expire and
// would sit in the namespace, where everyone bound to edit there, including
// every other device, can read Secrets and so act as this device. Both kinds
// stop working when the ServiceAccount is deleted, which is how to revoke a
// device early (the kube-apiserver caches authentications, so it takes
// effect within about ten seconds). Running this again for the same device
// reuses its ServiceAccount and mints a new token (the old one stays valid
// until it expires).
func MakeJoinConfig(ctx context.Context, client kubernetes.Interface, opts MakeOptions) (*Made, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	duration := opts.Duration
	if duration == 0 {
		duration = DefaultTokenDuration
	}
	ns, name := opts.Namespace, opts.Name

	if _, err := client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("namespace %q does not exist; create it first (kubectl create namespace %s)", ns, ns)
		}
		return nil, apiError("reading namespace "+ns, err)
	}
	labels := map[string]string{managedByLabel: managedByValue, deviceLabel: name}
	if err := ensureServiceAccount(ctx, client, ns, name, labels); err != nil {
		return nil, err
	}
	if err := ensureRoleBinding(ctx, client, ns, name, labels); err != nil {
		return nil, err
	}

	secs := int64(duration / time.Second)
	tr, err := client.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &secs},
	}, metav1.CreateOptions{})
	if err != nil {
		return nil, apiError(fmt.Sprintf("requesting a token for ServiceAccount %s/%s", ns, name), err)
	}
	if tr.Status.Token == "" {
		return nil, fmt.Errorf("the cluster returned an empty token for ServiceAccount %s/%s; is the TokenRequest API enabled (kube-apiserver --service-account-signing-key-file)?", ns, name)
	}

	clusterKey := firstNonEmpty(opts.ClusterName, serverHost(opts.Server))
	kc := clientcmdapi.NewConfig()
	kc.Clusters[clusterKey] = &clientcmdapi.Cluster{
		Server:                   opts.Server,
		CertificateAuthorityData: opts.CertificateAuthorityData,
		TLSServerName:            opts.TLSServerName,
	}
	kc.AuthInfos[name] = &clientcmdapi.AuthInfo{Token: tr.Status.Token}
	ctxName := name + "@" + clusterKey
	kc.Contexts[ctxName] = &clientcmdapi.Context{Cluster: clusterKey, AuthInfo: name, Namespace: ns}
	kc.CurrentContext = ctxName
	jc, err := newJoinConfig(clusterKey, kc)
	if err != nil {
		return nil, err
	}
	data, err := jc.YAML()
	if err != nil {
		return nil, err
	}
	return &Made{Data: data, Namespace: ns, Name: name, ExpiresAt: tr.Status.ExpirationTimestamp.Time}, nil
}

func (o MakeOptions) validate() error {
	var errs []string
	if msgs := validation.IsDNS1123Label(o.Namespace); len(msgs) > 0 {
		errs = append(errs, fmt.Sprintf("namespace %q is not a namespace name: %s", o.Namespace, strings.Join(msgs, "; ")))
	}
	if msgs := validation.IsDNS1123Label(o.Name); len(msgs) > 0 {
		errs = append(errs, fmt.Sprintf("device name %q must be a DNS label (it names a ServiceAccount): %s", o.Name, strings.Join(msgs, "; ")))
	}
	if o.Duration != 0 && o.Duration < minTokenDuration {
		errs = append(errs, fmt.Sprintf("token duration %s is shorter than the Kubernetes minimum of %s", o.Duration, minTokenDuration))
	}
	if err := checkServer(o.Server); err != nil {
		errs = append(errs, err.Error())
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

func managed(m metav1.ObjectMeta) bool { return m.Labels[managedByLabel] == managedByValue }

func ensureServiceAccount(ctx context.Context, client kubernetes.Interface, ns, name string, labels map[string]string) error {
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels}}
	_, err := client.CoreV1().ServiceAccounts(ns).Create(ctx, sa, metav1.CreateOptions{})
	if err == nil {
		return nil
	}
	if !apierrors.IsAlreadyExists(err) {
		return apiError(fmt.Sprintf("creating ServiceAccount %s/%s", ns, name), err)
	}
	existing, err := client.CoreV1().ServiceAccounts(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return apiError(fmt.Sprintf("reading ServiceAccount %s/%s", ns, name), err)
	}
	// Binding edit to an account someone else made would quietly widen
	// what that account (and whatever uses it) may do.
	if !managed(existing.ObjectMeta) {
		return fmt.Errorf("ServiceAccount %s/%s already exists and was not made by guildnet-portal (no label %s=%s); choose another device name", ns, name, managedByLabel, managedByValue)
	}
	return nil
}

func ensureRoleBinding(ctx context.Context, client kubernetes.Interface, ns, name string, labels map[string]string) error {
	want := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: EditClusterRole},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: name, Namespace: ns}},
	}
	rbs := client.RbacV1().RoleBindings(ns)
	_, err := rbs.Create(ctx, want, metav1.CreateOptions{})
	if err == nil {
		return nil
	}
	if !apierrors.IsAlreadyExists(err) {
		return apiError(fmt.Sprintf("creating RoleBinding %s/%s to ClusterRole %s", ns, name, EditClusterRole), err)
	}
	existing, err := rbs.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return apiError(fmt.Sprintf("reading RoleBinding %s/%s", ns, name), err)
	}
	if !managed(existing.ObjectMeta) {
		return fmt.Errorf("RoleBinding %s/%s already exists and was not made by guildnet-portal (no label %s=%s); choose another device name", ns, name, managedByLabel, managedByValue)
	}
	if existing.RoleRef != want.RoleRef {
		// roleRef is immutable; only deleting the binding changes it.
		return fmt.Errorf("RoleBinding %s/%s binds %s %q, not ClusterRole %s; delete it (kubectl -n %s delete rolebinding %s) and run again", ns, name, existing.RoleRef.Kind, existing.RoleRef.Name, EditClusterRole, ns, name)
	}
	if slices.Equal(existing.Subjects, want.Subjects) {
		return nil
	}
	// Someone edited the subjects; the binding exists for this device only.
	existing.Subjects = want.Subjects
	if _, err := rbs.Update(ctx, existing, metav1.UpdateOptions{}); err != nil {
		return apiError(fmt.Sprintf("updating RoleBinding %s/%s", ns, name), err)
	}
	return nil
}

// apiError adds what to do to the errors an admin is most likely to meet.
func apiError(doing string, err error) error {
	switch {
	case apierrors.IsForbidden(err):
		return fmt.Errorf("%s: %v; the admin kubeconfig needs to create ServiceAccounts, their tokens and RoleBindings in the namespace, and to hold the edit role there itself (or have the bind verb)", doing, err)
	case apierrors.IsUnauthorized(err):
		return fmt.Errorf("%s: the cluster rejected the admin kubeconfig's credentials (401): %v", doing, err)
	default:
		return fmt.Errorf("%s: %v", doing, err)
	}
}
