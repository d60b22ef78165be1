package controller

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/discovery"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/guildnet/guildnet/apis/guildnet/v1alpha1"
)

// Options switch the reconcilers and their leader election.
type Options struct {
	// Enabled runs the reconcilers in this process.
	Enabled bool
	// LeaderElect makes one replica at a time reconcile.
	LeaderElect bool
	// LeaderElectionNamespace holds the Lease.
	LeaderElectionNamespace string
	// Resync is how often Ready objects are looked at again (row and table counts).
	Resync time.Duration
	// KubeAPIQPS and KubeAPIBurst bound the reconcilers' requests to
	// kube-apiserver on the client side.
	KubeAPIQPS   float32
	KubeAPIBurst int
	// WorkspaceDefaultImagePullPolicy applies to workspaces without spec.imagePullPolicy.
	WorkspaceDefaultImagePullPolicy string
}

// NewOptions returns the defaults: enabled, with leader election in guildnet-system.
func NewOptions() *Options {
	// A new workspace costs about four writes (Secret, Deployment, Service,
	// status); client-go's usual 20 QPS would let a burst of a hundred
	// workspaces wait tens of seconds on the client's own throttle, while
	// kube-apiserver's priority and fairness protects it anyway.
	return &Options{Enabled: true, LeaderElect: true, LeaderElectionNamespace: "guildnet-system", Resync: time.Minute,
		KubeAPIQPS: 200, KubeAPIBurst: 400}
}

// AddFlags adds the --reconcile* and --leader-elect* flags.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	fs.BoolVar(&o.Enabled, "reconcile", o.Enabled, "Run the reconcilers in this process: workspaces become Deployments, Services, volumes and password Secrets; databases and tables become RethinkDB databases and tables. Turn off to run them elsewhere or not at all.")
	fs.BoolVar(&o.LeaderElect, "leader-elect", o.LeaderElect, "Let one replica at a time reconcile, elected through a Lease.")
	fs.StringVar(&o.LeaderElectionNamespace, "leader-election-namespace", o.LeaderElectionNamespace, "Namespace of the reconcilers' leader-election Lease.")
	fs.Float32Var(&o.KubeAPIQPS, "reconcile-kube-api-qps", o.KubeAPIQPS, "Requests per second the reconcilers may send to kube-apiserver (client-side limit; kube-apiserver's API priority and fairness applies on top).")
	fs.IntVar(&o.KubeAPIBurst, "reconcile-kube-api-burst", o.KubeAPIBurst, "Requests the reconcilers may send at once above --reconcile-kube-api-qps.")
	fs.StringVar(&o.WorkspaceDefaultImagePullPolicy, "workspace-default-image-pull-policy", o.WorkspaceDefaultImagePullPolicy, "Image pull policy (Always, IfNotPresent or Never) of workspaces whose spec.imagePullPolicy is empty. Empty leaves it to Kubernetes (IfNotPresent, or Always for :latest). Clusters whose images are loaded onto the nodes instead of pulled, like `make dev`'s, set Never, so a missing image is reported at once instead of being looked for on the network.")
	fs.DurationVar(&o.Resync, "reconcile-resync", o.Resync, "How often Ready databases and tables are looked at again to refresh their counts (each one up to a fifth of this later, at random, so that objects created together are not all counted in the same second).")
}

// Validate names the flag that is wrong.
func (o *Options) Validate() []error {
	var errs []error
	if o.Enabled && o.LeaderElect && o.LeaderElectionNamespace == "" {
		errs = append(errs, fmt.Errorf("--leader-election-namespace must not be empty with --leader-elect"))
	}
	if o.KubeAPIQPS <= 0 || o.KubeAPIBurst <= 0 {
		errs = append(errs, fmt.Errorf("--reconcile-kube-api-qps and --reconcile-kube-api-burst must be positive, got %v and %d", o.KubeAPIQPS, o.KubeAPIBurst))
	}
	switch corev1.PullPolicy(o.WorkspaceDefaultImagePullPolicy) {
	case "", corev1.PullAlways, corev1.PullIfNotPresent, corev1.PullNever:
	default:
		errs = append(errs, fmt.Errorf("--workspace-default-image-pull-policy must be Always, IfNotPresent or Never (or empty), got %q", o.WorkspaceDefaultImagePullPolicy))
	}
	if o.Resync <= 0 {
		errs = append(errs, fmt.Errorf("--reconcile-resync must be positive, got %s", o.Resync))
	}
	return errs
}

// Scheme is what the reconcilers read and write: Kubernetes' built-in
// types and guildnet.io/v1alpha1.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(v1alpha1.AddToScheme(s))
	return s
}

// NewManager builds a controller-runtime manager on cfg (a client of
// kube-apiserver) whose informers of guildnet.io kinds read own, this
// process's registry (see newInformerFunc), and whose other guildnet.io
// requests go to this server over loopback (see routeOwnGroup). Metrics
// and health probes are off: the API server already serves them.
func (o *Options) NewManager(cfg, loopback *rest.Config, own Registries) (ctrl.Manager, error) {
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = o.KubeAPIQPS, o.KubeAPIBurst
	// kube-apiserver is in the same cluster: gzip would cost CPU on both
	// ends and a decompressor per watch here, to save bandwidth nobody
	// is short of.
	cfg.DisableCompression = true
	if err := routeOwnGroup(cfg, loopback); err != nil {
		return nil, err
	}
	scheme := Scheme()
	return ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                        scheme,
		Metrics:                       metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress:        "0",
		LeaderElection:                o.LeaderElect,
		LeaderElectionID:              "guildnet-reconciler",
		LeaderElectionNamespace:       o.LeaderElectionNamespace,
		LeaderElectionReleaseOnCancel: true,
		MapperProvider:                newMapper,
		// The reconcilers never read who manages which field of a
		// Workspace, Database or Table, and an update that carries no
		// managedFields keeps the stored ones, so the cache drops them
		// and holds a thousand objects in less memory.
		Cache: cache.Options{
			DefaultTransform: cache.TransformStripManagedFields(),
			NewInformer:      newInformerFunc(scheme, own),
		},
	})
}

// newMapper maps guildnet.io kinds without asking kube-apiserver and
// everything else through its discovery. This process serves guildnet.io,
// so kube-apiserver lists the group only once this server runs, after the
// reconcilers are set up; a set-up step that needs a mapping (a field
// index on Tables) would otherwise fail with "no matches for kind".
func newMapper(cfg *rest.Config, httpClient *http.Client) (meta.RESTMapper, error) {
	discovered, err := apiutil.NewDynamicRESTMapper(cfg, httpClient)
	if err != nil {
		return nil, err
	}
	own := meta.NewDefaultRESTMapper([]schema.GroupVersion{v1alpha1.SchemeGroupVersion})
	for _, kind := range ownKinds {
		own.Add(v1alpha1.SchemeGroupVersion.WithKind(kind), meta.RESTScopeNamespace)
	}
	return ownGroupMapper{RESTMapper: discovered, own: own}, nil
}

// ownKinds are the namespaced kinds guildnet-apiserver serves.
var ownKinds = []string{"Workspace", "Database", "Table"}

type ownGroupMapper struct {
	meta.RESTMapper // kube-apiserver's discovery
	own             meta.RESTMapper
}

func (m ownGroupMapper) pick(group string) meta.RESTMapper {
	if group == v1alpha1.SchemeGroupVersion.Group {
		return m.own
	}
	return m.RESTMapper
}

func (m ownGroupMapper) KindFor(r schema.GroupVersionResource) (schema.GroupVersionKind, error) {
	return m.pick(r.Group).KindFor(r)
}

func (m ownGroupMapper) KindsFor(r schema.GroupVersionResource) ([]schema.GroupVersionKind, error) {
	return m.pick(r.Group).KindsFor(r)
}

func (m ownGroupMapper) ResourceFor(r schema.GroupVersionResource) (schema.GroupVersionResource, error) {
	return m.pick(r.Group).ResourceFor(r)
}

func (m ownGroupMapper) ResourcesFor(r schema.GroupVersionResource) ([]schema.GroupVersionResource, error) {
	return m.pick(r.Group).ResourcesFor(r)
}

func (m ownGroupMapper) RESTMapping(gk schema.GroupKind, versions ...string) (*meta.RESTMapping, error) {
	return m.pick(gk.Group).RESTMapping(gk, versions...)
}

func (m ownGroupMapper) RESTMappings(gk schema.GroupKind, versions ...string) ([]*meta.RESTMapping, error) {
	return m.pick(gk.Group).RESTMappings(gk, versions...)
}

// Run starts the manager once kube-apiserver (kube, the config NewManager
// was given) serves guildnet.io, this server's APIService being available,
// and blocks until ctx ends.
//
// The reconcilers read guildnet.io over loopback, but what they create in
// kube-apiserver points at it: where OwnerReferencesPermissionEnforcement
// is enabled, kube-apiserver resolves their ownerReferences to workspaces
// through its own discovery, so started earlier the first writes would fail
// and wait on controller-runtime's growing backoff.
func Run(ctx context.Context, mgr ctrl.Manager, kube *rest.Config) error {
	dc, err := discovery.NewDiscoveryClientForConfig(kube)
	if err != nil {
		return err
	}
	gv := v1alpha1.SchemeGroupVersion.String()
	logged := false
	if err := wait.PollUntilContextCancel(ctx, 250*time.Millisecond, true, func(context.Context) (bool, error) {
		if _, err := dc.ServerResourcesForGroupVersion(gv); err != nil {
			if !logged {
				ctrl.Log.Info("Waiting for kube-apiserver to serve the API group before reconciling (is the APIService registered and Available?)", "groupVersion", gv, "err", err.Error())
				logged = true
			}
			return false, nil
		}
		return true, nil
	}); err != nil {
		return err
	}
	return mgr.Start(ctx)
}
