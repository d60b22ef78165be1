// Package server is guildnet-apiserver's command: its flags (every option
// struct can AddFlags), their validation, the server configuration built
// from them, and running it until the context ends.
package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/apiserver/pkg/endpoints/openapi"
	"k8s.io/apiserver/pkg/features"
	genericapiserver "k8s.io/apiserver/pkg/server"
	genericoptions "k8s.io/apiserver/pkg/server/options"
	"k8s.io/apiserver/pkg/util/compatibility"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	"k8s.io/client-go/kubernetes"
	basecompatibility "k8s.io/component-base/compatibility"
	"k8s.io/component-base/featuregate"
	baseversion "k8s.io/component-base/version"
	"k8s.io/klog/v2"
	netutils "k8s.io/utils/net"

	"github.com/guildnet/guildnet/apis/guildnet/v1alpha1"
	generatedopenapi "github.com/guildnet/guildnet/generated/openapi"
	"github.com/guildnet/guildnet/pkg/apiserver"
	"github.com/guildnet/guildnet/pkg/controller"
	"github.com/guildnet/guildnet/pkg/controller/database"
	"github.com/guildnet/guildnet/pkg/controller/table"
	"github.com/guildnet/guildnet/pkg/controller/workspace"
	"github.com/guildnet/guildnet/pkg/logging"
	registrytable "github.com/guildnet/guildnet/pkg/registry/table"
	"github.com/guildnet/guildnet/pkg/rethinkdb"
	"github.com/guildnet/guildnet/pkg/storage/rethinkstore"
	"github.com/guildnet/guildnet/pkg/tablewatch"
)

// Options are all of guildnet-apiserver's flags.
type Options struct {
	// Recommended are k8s.io/apiserver's options (secure serving, delegated
	// authentication and authorization, audit, admission, features) without
	// etcd: objects live in RethinkDB.
	Recommended *genericoptions.RecommendedOptions
	RethinkDB   *rethinkdb.Options
	Logging     *logging.Options
	// WatchCache serves lists and watches from memory (k8s.io/apiserver's Cacher).
	WatchCache bool
	Controller *controller.Options
	// RowsMaxBodyBytes bounds a tables/rows request body.
	RowsMaxBodyBytes int64
	// TableWatchMaxDuration ends tables/watch streams before kube-apiserver's request timeout.
	TableWatchMaxDuration time.Duration
	WorkspaceProxy        *WorkspaceProxyOptions

	ComponentGlobals basecompatibility.ComponentGlobalsRegistry
}

// NewOptions returns the defaults.
func NewOptions() *Options {
	rec := genericoptions.NewRecommendedOptions("/guildnet.io", apiserver.Codecs.LegacyCodec(v1alpha1.SchemeGroupVersion))
	rec.Etcd = nil
	// kube-apiserver multiplexes every request for the APIService over one
	// HTTP/2 connection; 100 streams would stall open watches.
	rec.SecureServing.HTTP2MaxStreamsPerConnection = 1000
	return &Options{
		Recommended:           rec,
		RethinkDB:             rethinkdb.NewOptions(),
		Logging:               logging.NewOptions(),
		WatchCache:            true,
		Controller:            controller.NewOptions(),
		RowsMaxBodyBytes:      registrytable.DefaultRowsMaxBodyBytes,
		TableWatchMaxDuration: registrytable.DefaultWatchMaxDuration,
		WorkspaceProxy:        NewWorkspaceProxyOptions(),
		ComponentGlobals:      compatibility.DefaultComponentGlobalsRegistry,
	}
}

// AddFlags adds every flag to fs.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	o.Recommended.AddFlags(fs)
	o.RethinkDB.AddFlags(fs)
	o.Logging.AddFlags(fs)
	o.Controller.AddFlags(fs)
	o.WorkspaceProxy.AddFlags(fs)
	fs.DurationVar(&o.TableWatchMaxDuration, "table-watch-max-duration", o.TableWatchMaxDuration, "How long one tables/watch stream lasts before it ends with a BOOKMARK to resume from. Keep it below kube-apiserver's --request-timeout (60s by default), which cuts streams on this subresource.")
	fs.Int64Var(&o.RowsMaxBodyBytes, "rows-max-body-bytes", o.RowsMaxBodyBytes, "Largest request body tables/rows accepts (an import or one row); larger bodies get 413.")
	fs.BoolVar(&o.WatchCache, "watch-cache", o.WatchCache, "Serve LIST, GET with a resourceVersion and WATCH from an in-memory cache fed by one RethinkDB watch per resource (as kube-apiserver does for etcd). Turn off only to debug storage.")
	_, _ = o.ComponentGlobals.ComponentGlobalsOrRegister(basecompatibility.DefaultKubeComponent,
		basecompatibility.NewEffectiveVersionFromString(baseversion.DefaultKubeBinaryVersion, "", ""), utilfeature.DefaultMutableFeatureGate)
	overrideFeatureDefaults(utilfeature.DefaultMutableFeatureGate)
	o.ComponentGlobals.AddFlags(fs)
}

// overrideFeatureDefaults sets this server's own defaults of k8s.io/apiserver
// feature gates; --feature-gates still decides.
//
// ListFromCacheSnapshot is off: with it, the watch cache keeps a copy-on-write
// snapshot of its index for every write until storage compaction (five
// minutes), so a burst of writes holds megabytes of index copies per
// thousand objects (7.5 MB of this server's 74 MB live heap after storing
// 1,000 objects of each kind). What the snapshots serve, a paginated LIST's
// later pages and LISTs at an exact older resourceVersion, RethinkDB serves
// from its revision log instead, as kube-apiserver did before 1.34; LISTs
// without a continue token are still served from the watch cache.
func overrideFeatureDefaults(gate featuregate.MutableVersionedFeatureGate) {
	// The gate refuses once it has been added to a flag set (a second
	// command in one process); its default was overridden the first time.
	_ = gate.OverrideDefault(features.ListFromCacheSnapshot, false)
}

// Validate returns every flag problem at once, each naming its flag.
func (o *Options) Validate() error {
	var errs []error
	errs = append(errs, o.Recommended.Validate()...)
	errs = append(errs, o.RethinkDB.Validate()...)
	errs = append(errs, o.Logging.Validate()...)
	errs = append(errs, o.Controller.Validate()...)
	errs = append(errs, o.WorkspaceProxy.Validate()...)
	if o.TableWatchMaxDuration <= 0 {
		errs = append(errs, fmt.Errorf("--table-watch-max-duration must be positive, got %s", o.TableWatchMaxDuration))
	}
	if o.RowsMaxBodyBytes <= 0 {
		errs = append(errs, fmt.Errorf("--rows-max-body-bytes must be positive, got %d", o.RowsMaxBodyBytes))
	}
	errs = append(errs, o.ComponentGlobals.Validate()...)
	return utilerrors.NewAggregate(errs)
}

// Config builds the server configuration and connects to RethinkDB. A
// RethinkDB that cannot be reached is an error here, so a misconfigured
// server says so at once instead of serving 503s.
func (o *Options) Config(ctx context.Context) (*apiserver.Config, *rethinkdb.Client, error) {
	if err := o.Recommended.SecureServing.MaybeDefaultWithSelfSignedCerts("localhost", nil, []net.IP{netutils.ParseIPSloppy("127.0.0.1")}); err != nil {
		return nil, nil, fmt.Errorf("cannot create a self-signed serving certificate: %w", err)
	}
	cfg := genericapiserver.NewRecommendedConfig(apiserver.Codecs)
	namer := openapi.NewDefinitionNamer(apiserver.Scheme)
	cfg.OpenAPIConfig = genericapiserver.DefaultOpenAPIConfig(generatedopenapi.GetOpenAPIDefinitions, namer)
	cfg.OpenAPIConfig.Info.Title = "GuildNet"
	cfg.OpenAPIConfig.Info.Version = v1alpha1.SchemeGroupVersion.Version
	cfg.OpenAPIV3Config = genericapiserver.DefaultOpenAPIV3Config(generatedopenapi.GetOpenAPIDefinitions, namer)
	cfg.OpenAPIV3Config.Info.Title = "GuildNet"
	cfg.OpenAPIV3Config.Info.Version = v1alpha1.SchemeGroupVersion.Version
	cfg.FeatureGate = o.ComponentGlobals.FeatureGateFor(basecompatibility.DefaultKubeComponent)
	cfg.EffectiveVersion = o.ComponentGlobals.EffectiveVersionFor(basecompatibility.DefaultKubeComponent)
	if err := o.Recommended.ApplyTo(cfg); err != nil {
		return nil, nil, err
	}

	var kube kubernetes.Interface
	if cfg.ClientConfig != nil {
		k, err := kubernetes.NewForConfig(cfg.ClientConfig)
		if err != nil {
			return nil, nil, err
		}
		kube = k
	}
	rdb, err := o.RethinkDB.Connect(ctx, kube)
	if err != nil {
		return nil, nil, err
	}
	ws, err := o.workspaceConfig(cfg, kube)
	if err != nil {
		return nil, nil, err
	}
	decorator := rethinkstore.NewStorageDecorator(rdb)
	if o.WatchCache {
		decorator = apiserver.WithWatchCache(decorator)
		apiserver.EnableConsistentReadsFromCache(ctx)
	}
	return &apiserver.Config{
		GenericConfig: cfg,
		ExtraConfig: apiserver.ExtraConfig{
			StorageDecorator:      decorator,
			StorageReady:          rdb.Ping,
			RethinkDB:             rdb,
			RowsMaxBodyBytes:      o.RowsMaxBodyBytes,
			TableWatchHub:         tablewatch.NewHub(rdb, tablewatch.Options{}),
			TableWatchMaxDuration: o.TableWatchMaxDuration,
			Workspaces:            ws,
			Reconciling:           o.Controller.Enabled,
		},
	}, rdb, nil
}

// Run serves until ctx ends.
func (o *Options) Run(ctx context.Context) error {
	log, err := o.Logging.Setup()
	if err != nil {
		return err
	}
	cfg, rdb, err := o.Config(ctx)
	if err != nil {
		return err
	}
	defer func() {
		cfg.ExtraConfig.TableWatchHub.Close()
		_ = rdb.Close()
	}()
	server, err := cfg.Complete().New()
	if err != nil {
		return err
	}
	server.GenericAPIServer.AddPostStartHookOrDie("start-informers", func(hc genericapiserver.PostStartHookContext) error {
		cfg.GenericConfig.SharedInformerFactory.Start(hc.Done())
		if f := cfg.ExtraConfig.Workspaces.Informers; f != nil {
			f.Start(hc.Done())
			f.WaitForCacheSync(hc.Done())
		}
		return nil
	})
	if o.Controller.Enabled {
		if err := o.startReconcilers(server, cfg, rdb); err != nil {
			return err
		}
	}
	log.Info("Starting guildnet-apiserver", "rethinkdb", o.RethinkDB.Address, "version", baseversion.Get().GitVersion)
	return server.GenericAPIServer.PrepareRun().RunWithContext(ctx)
}

// NewCommand returns the guildnet-apiserver command.
func NewCommand(ctx context.Context, out, errOut io.Writer) *cobra.Command {
	o := NewOptions()
	cmd := &cobra.Command{
		Use:   "guildnet-apiserver",
		Short: "Serve the guildnet.io API (workspaces, databases, tables) as a Kubernetes aggregated API server",
		Long: "guildnet-apiserver serves guildnet.io/v1alpha1 behind kube-apiserver's aggregation layer.\n" +
			"kube-apiserver authenticates users; this server authorizes every request with\n" +
			"SubjectAccessReviews and stores its objects in RethinkDB.",
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(*cobra.Command, []string) error {
			return o.ComponentGlobals.Set()
		},
		RunE: func(c *cobra.Command, _ []string) error {
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run(c.Context())
		},
	}
	cmd.SetContext(ctx)
	cmd.SetOut(out)
	cmd.SetErr(errOut)
	o.AddFlags(cmd.Flags())
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return &FlagError{Err: err}
	})
	return cmd
}

// FlagError is a command-line mistake; main prints it with a hint to --help.
type FlagError struct{ Err error }

func (e *FlagError) Error() string { return e.Err.Error() }
func (e *FlagError) Unwrap() error { return e.Err }

// IsFlagError reports whether err is a command-line mistake.
func IsFlagError(err error) bool {
	var fe *FlagError
	return errors.As(err, &fe)
}

// startReconcilers runs the reconcilers once the server serves: they reach
// guildnet.io objects over its loopback connection.
func (o *Options) startReconcilers(server *apiserver.GuildNetServer, cfg *apiserver.Config, rdb *rethinkdb.Client) error {
	if cfg.GenericConfig.ClientConfig == nil {
		return fmt.Errorf("the reconcilers need a kube-apiserver: set --kubeconfig, run in a cluster, or pass --reconcile=false")
	}
	own, err := controller.OwnRegistries(server.Storage, apiserver.Scheme)
	if err != nil {
		return err
	}
	mgr, err := o.Controller.NewManager(cfg.GenericConfig.ClientConfig, cfg.GenericConfig.LoopbackClientConfig, own)
	if err != nil {
		return fmt.Errorf("setting up the reconcilers: %w", err)
	}
	if err := (&database.Reconciler{Client: mgr.GetClient(), RethinkDB: rdb, Resync: o.Controller.Resync}).SetupWithManager(mgr); err != nil {
		return err
	}
	if err := (&table.Reconciler{Client: mgr.GetClient(), RethinkDB: rdb, Resync: o.Controller.Resync}).SetupWithManager(mgr); err != nil {
		return err
	}
	if err := (&workspace.Reconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(),
		DefaultImagePullPolicy: corev1.PullPolicy(o.Controller.WorkspaceDefaultImagePullPolicy)}).SetupWithManager(mgr); err != nil {
		return err
	}
	server.GenericAPIServer.AddPostStartHookOrDie("start-reconcilers", func(hc genericapiserver.PostStartHookContext) error {
		go func() {
			if err := controller.Run(hc.Context, mgr, cfg.GenericConfig.ClientConfig); err != nil {
				klog.ErrorS(err, "Reconcilers stopped")
			}
		}()
		return nil
	})
	return nil
}
