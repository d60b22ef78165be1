package controller

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
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
}

// NewOptions returns the defaults: enabled, with leader election in guildnet-system.
func NewOptions() *Options {
	return &Options{Enabled: true, LeaderElect: true, LeaderElectionNamespace: "guildnet-system", Resync: time.Minute}
}

// AddFlags adds the --reconcile* and --leader-elect* flags.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	fs.BoolVar(&o.Enabled, "reconcile", o.Enabled, "Run the reconcilers in this process: workspaces become Deployments, Services, volumes and password Secrets; databases and tables become RethinkDB databases and tables. Turn off to run them elsewhere or not at all.")
	fs.BoolVar(&o.LeaderElect, "leader-elect", o.LeaderElect, "Let one replica at a time reconcile, elected through a Lease.")
	fs.StringVar(&o.LeaderElectionNamespace, "leader-election-namespace", o.LeaderElectionNamespace, "Namespace of the reconcilers' leader-election Lease.")
	fs.DurationVar(&o.Resync, "reconcile-resync", o.Resync, "How often Ready databases and tables are looked at again to refresh their counts.")
}

// Validate names the flag that is wrong.
func (o *Options) Validate() []error {
	var errs []error
	if o.Enabled && o.LeaderElect && o.LeaderElectionNamespace == "" {
		errs = append(errs, fmt.Errorf("--leader-election-namespace must not be empty with --leader-elect"))
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
// kube-apiserver). Metrics and health probes are off: the API server
// already serves them.
func (o *Options) NewManager(cfg *rest.Config) (ctrl.Manager, error) {
	return ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                        Scheme(),
		Metrics:                       metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress:        "0",
		LeaderElection:                o.LeaderElect,
		LeaderElectionID:              "guildnet-reconciler",
		LeaderElectionNamespace:       o.LeaderElectionNamespace,
		LeaderElectionReleaseOnCancel: true,
	})
}

// Run starts the manager and blocks until ctx ends.
func Run(ctx context.Context, mgr ctrl.Manager) error {
	return mgr.Start(ctx)
}
