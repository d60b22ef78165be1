package apiserver

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"k8s.io/apiserver/pkg/registry/generic"
	"k8s.io/apiserver/pkg/registry/rest"
	genericapiserver "k8s.io/apiserver/pkg/server"
	"k8s.io/apiserver/pkg/server/healthz"
	serverstorage "k8s.io/apiserver/pkg/server/storage"
	"k8s.io/apiserver/pkg/storage/storagebackend"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"

	"github.com/guildnet/guildnet/apis/guildnet"
	"github.com/guildnet/guildnet/apis/guildnet/v1alpha1"
	"github.com/guildnet/guildnet/pkg/registry/database"
	"github.com/guildnet/guildnet/pkg/registry/table"
	"github.com/guildnet/guildnet/pkg/registry/workspace"
	"github.com/guildnet/guildnet/pkg/rethinkdb"
	"github.com/guildnet/guildnet/pkg/tablewatch"
)

// ExtraConfig is what guildnet-apiserver adds to the generic server's config.
type ExtraConfig struct {
	// StorageDecorator creates the storage.Interface of each resource (RethinkDB).
	StorageDecorator generic.StorageDecorator
	// StorageReady is checked by /readyz: the server reports not ready while
	// its storage cannot serve.
	StorageReady func(ctx context.Context) error
	// RethinkDB serves the rows of tables (tables/rows).
	RethinkDB *rethinkdb.Client
	// RowsMaxBodyBytes bounds a tables/rows request body (0: the default).
	RowsMaxBodyBytes int64
	// TableWatchHub fans each watched table's changefeed out to tables/watch.
	TableWatchHub *tablewatch.Hub
	// TableWatchMaxDuration ends a tables/watch stream (with a BOOKMARK)
	// before kube-apiserver's request timeout would cut it.
	TableWatchMaxDuration time.Duration
	// Workspaces connects workspaces/proxy and workspaces/log to the cluster.
	Workspaces WorkspaceConfig
	// Reconciling is true when this server runs the reconcilers: new
	// Databases and Tables then get their RethinkDB finalizer at creation,
	// instead of through a write of the reconciler. A server that does not
	// reconcile leaves it to whoever does, so that nothing waits on a
	// finalizer nobody removes.
	Reconciling bool
}

// WorkspaceConfig is what workspaces/proxy and workspaces/log need from the
// cluster. Without Kube neither subresource is served.
type WorkspaceConfig struct {
	// Kube is guildnet-apiserver's client of kube-apiserver (pods/log).
	Kube kubernetes.Interface
	// Informers holds the EndpointSlice informer; the server starts it.
	Informers informers.SharedInformerFactory
	// EndpointSlices lists the EndpointSlices of workspace Services.
	EndpointSlices discoverylisters.EndpointSliceLister
	// Authorizer checks the extra create verb of WebSocket upgrades.
	Authorizer authorizer.Authorizer
	// Origins are the browser origins allowed through the proxy.
	Origins *workspace.OriginPolicy
	// PingInterval and ActivityMaxInterval: see the --workspace-* flags.
	PingInterval        time.Duration
	ActivityMaxInterval time.Duration
	// Assets keeps workspaces' long-lived public responses (nil: none).
	Assets *workspace.AssetCache
}

// Config is the whole configuration of guildnet-apiserver.
type Config struct {
	GenericConfig *genericapiserver.RecommendedConfig
	ExtraConfig   ExtraConfig
}

type completedConfig struct {
	GenericConfig genericapiserver.CompletedConfig
	ExtraConfig   *ExtraConfig
}

// CompletedConfig is a Config with defaults filled in; only it can build a
// server, so "forgot to call Complete" cannot compile.
type CompletedConfig struct {
	*completedConfig
}

// GuildNetServer is the running aggregated API server.
type GuildNetServer struct {
	GenericAPIServer *genericapiserver.GenericAPIServer
	// Storage is the REST storage of every v1alpha1 resource and
	// subresource, keyed by path, as NewStorage returns it: the
	// reconcilers in this process read through it.
	Storage map[string]rest.Storage
}

// Complete fills in defaults.
func (cfg *Config) Complete() CompletedConfig {
	cfg.GenericConfig.LongRunningFunc = IsLongRunning
	return CompletedConfig{&completedConfig{
		GenericConfig: cfg.GenericConfig.Complete(),
		ExtraConfig:   &cfg.ExtraConfig,
	}}
}

// New builds the server and installs the guildnet.io API group.
func (c CompletedConfig) New() (*GuildNetServer, error) {
	if c.ExtraConfig.StorageDecorator == nil {
		return nil, fmt.Errorf("no storage configured for guildnet.io resources")
	}
	genericServer, err := c.GenericConfig.New("guildnet-apiserver", genericapiserver.NewEmptyDelegate())
	if err != nil {
		return nil, err
	}
	s := &GuildNetServer{GenericAPIServer: genericServer}

	storage, err := NewStorage(Scheme, &restOptionsGetter{decorator: c.ExtraConfig.StorageDecorator}, c.ExtraConfig)
	if err != nil {
		return nil, err
	}
	// Query parameters of subresources (tables/rows, tables/watch) are guildnet.io
	// types, so the parameter codec must know this scheme.
	apiGroupInfo := genericapiserver.NewDefaultAPIGroupInfo(guildnet.GroupName, Scheme, runtime.NewParameterCodec(Scheme), Codecs)
	apiGroupInfo.VersionedResourcesStorageMap[v1alpha1.SchemeGroupVersion.Version] = storage
	s.Storage = storage
	apiGroupInfo.NegotiatedSerializer = newServedSerializers(apiGroupInfo.NegotiatedSerializer,
		&v1alpha1.Workspace{}, &v1alpha1.Database{}, &v1alpha1.Table{})
	if err := s.GenericAPIServer.InstallAPIGroup(&apiGroupInfo); err != nil {
		return nil, err
	}
	if ready := c.ExtraConfig.StorageReady; ready != nil {
		if err := s.GenericAPIServer.AddReadyzChecks(storageCheck{ready: ready}); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// NewStorage returns the REST storage of every v1alpha1 resource and
// subresource, keyed by path ("workspaces", "workspaces/status", ...).
func NewStorage(scheme *runtime.Scheme, optsGetter generic.RESTOptionsGetter, extra *ExtraConfig) (map[string]rest.Storage, error) {
	storage := map[string]rest.Storage{}
	ws, wsStatus, err := workspace.NewREST(scheme, optsGetter)
	if err != nil {
		return nil, err
	}
	storage["workspaces"], storage["workspaces/status"] = ws, wsStatus
	if wc := extra.Workspaces; wc.Kube != nil && wc.EndpointSlices != nil {
		storage["workspaces/proxy"] = workspace.NewProxyREST(ws, workspace.ProxyConfig{
			Resolver:     workspace.NewEndpointResolver(wc.EndpointSlices),
			Activity:     workspace.NewActivity(wsStatus, wc.ActivityMaxInterval),
			Authorizer:   wc.Authorizer,
			Origins:      wc.Origins,
			PingInterval: wc.PingInterval,
			Assets:       wc.Assets,
		})
		storage["workspaces/log"] = workspace.NewLogREST(ws, wc.Kube)
	}
	// A reconciling server gives new Databases and Tables the RethinkDB
	// finalizer when they are created (see ExtraConfig.Reconciling).
	var finalizers []string
	if extra.Reconciling {
		finalizers = []string{guildnet.RethinkDBFinalizer}
	}
	db, dbStatus, err := database.NewREST(scheme, optsGetter, finalizers)
	if err != nil {
		return nil, err
	}
	storage["databases"], storage["databases/status"] = db, dbStatus
	tbl, tblStatus, err := table.NewREST(scheme, optsGetter, finalizers)
	if err != nil {
		return nil, err
	}
	storage["tables"], storage["tables/status"] = tbl, tblStatus
	if extra.RethinkDB != nil {
		storage["tables/rows"] = table.NewRowsREST(tbl, extra.RethinkDB, extra.RowsMaxBodyBytes)
	}
	if extra.TableWatchHub != nil {
		storage["tables/watch"] = table.NewWatchREST(tbl, extra.TableWatchHub, extra.TableWatchMaxDuration)
	}
	return storage, nil
}

// restOptionsGetter hands every resource the RethinkDB storage decorator and
// a codec that stores objects as v1alpha1 JSON.
type restOptionsGetter struct {
	decorator generic.StorageDecorator
}

func (g *restOptionsGetter) GetRESTOptions(resource schema.GroupResource, _ runtime.Object) (generic.RESTOptions, error) {
	codec, _, err := serverstorage.NewStorageCodec(serverstorage.StorageCodecConfig{
		StorageMediaType:  runtime.ContentTypeJSON,
		StorageSerializer: Codecs,
		StorageVersion:    v1alpha1.SchemeGroupVersion,
		MemoryVersion:     guildnet.SchemeGroupVersion,
	})
	if err != nil {
		return generic.RESTOptions{}, err
	}
	prefix := "/" + resource.Group + "/" + resource.Resource
	return generic.RESTOptions{
		StorageConfig: &storagebackend.ConfigForResource{
			Config: storagebackend.Config{
				Type: "rethinkdb",
				// Keys already start with ResourcePrefix; no second prefix.
				Prefix:             "",
				Codec:              codec,
				EncodeVersioner:    v1alpha1.SchemeGroupVersion,
				HealthcheckTimeout: 2 * time.Second,
				ReadycheckTimeout:  2 * time.Second,
				// How far back the watch cache keeps events for watches that resume.
				EventsHistoryWindow: storagebackend.DefaultEventsHistoryWindow,
			},
			GroupResource: resource,
		},
		Decorator:               g.decorator,
		EnableGarbageCollection: true,
		DeleteCollectionWorkers: 1,
		ResourcePrefix:          prefix,
	}, nil
}

// storageCheck is the /readyz check that fails while RethinkDB is unreachable.
type storageCheck struct {
	ready func(ctx context.Context) error
}

func (storageCheck) Name() string { return "rethinkdb" }

func (c storageCheck) Check(r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	return c.ready(ctx)
}

var _ healthz.HealthChecker = storageCheck{}
