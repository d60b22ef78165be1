package server

import (
	"fmt"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	genericapiserver "k8s.io/apiserver/pkg/server"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"

	"github.com/guildnet/guildnet/apis/guildnet"
	"github.com/guildnet/guildnet/pkg/apiserver"
	"github.com/guildnet/guildnet/pkg/registry/workspace"
)

// WorkspaceProxyOptions are the flags of workspaces/proxy.
type WorkspaceProxyOptions struct {
	AllowedOrigins      []string
	PingInterval        time.Duration
	ActivityMaxInterval time.Duration
	AssetCacheSize      resource.QuantityValue
}

// NewWorkspaceProxyOptions returns the defaults.
func NewWorkspaceProxyOptions() *WorkspaceProxyOptions {
	return &WorkspaceProxyOptions{
		PingInterval:        workspace.DefaultPingInterval,
		ActivityMaxInterval: workspace.DefaultActivityMaxInterval,
		// A code-server release's scripts and styles take ~5.5 MB gzipped:
		// room for several releases.
		AssetCacheSize: resource.QuantityValue{Quantity: resource.MustParse("64Mi")},
	}
}

// AddFlags adds the --workspace-proxy-* flags.
func (o *WorkspaceProxyOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringSliceVar(&o.AllowedOrigins, "workspace-proxy-allowed-origins", o.AllowedOrigins,
		"Browser origins, besides loopback and *.localhost, that may use workspaces/proxy: https://host[:port] or *.domain (e.g. the portal's tailnet name). Requests and WebSockets from other origins get 403, so other web sites cannot drive a workspace through a local kubectl proxy.")
	fs.DurationVar(&o.PingInterval, "workspace-proxy-ping-interval", o.PingInterval,
		"How often workspaces/proxy pings both ends of an open WebSocket, so idle connections survive load balancers and NATs; a client that does not answer for three intervals is disconnected.")
	fs.DurationVar(&o.ActivityMaxInterval, "workspace-activity-interval", o.ActivityMaxInterval,
		"Longest time between two writes of a busy workspace's status.lastActivityTime (workspaces with a spec.idleTimeout are written every quarter of it, at least every second).")
	fs.Var(&o.AssetCacheSize, "workspace-proxy-asset-cache-size",
		"Memory for workspaces/proxy to keep gzipped copies, by content, of files that workspaces mark public with a max-age of a day or more (such as a code-server release's scripts), so a workspace does not compress them again for every page load; files of up to half of it are kept, larger ones are compressed on the way. 0 turns the cache off.")
}

// Validate names the flag that is wrong.
func (o *WorkspaceProxyOptions) Validate() []error {
	var errs []error
	if _, err := workspace.NewOriginPolicy(o.AllowedOrigins); err != nil {
		errs = append(errs, fmt.Errorf("--workspace-proxy-allowed-origins: %w", err))
	}
	if o.PingInterval < time.Second {
		errs = append(errs, fmt.Errorf("--workspace-proxy-ping-interval must be at least 1s, got %s", o.PingInterval))
	}
	if o.ActivityMaxInterval < time.Second {
		errs = append(errs, fmt.Errorf("--workspace-activity-interval must be at least 1s, got %s", o.ActivityMaxInterval))
	}
	if o.AssetCacheSize.Sign() < 0 {
		errs = append(errs, fmt.Errorf("--workspace-proxy-asset-cache-size must not be negative, got %s (0 turns the cache off)", o.AssetCacheSize.String()))
	}
	return errs
}

// workspaceConfig wires workspaces/proxy and workspaces/log to the
// cluster: endpoints come from an informer on the EndpointSlices of
// workspace Services only (labelled guildnet.io/workspace), each without
// what the resolver does not read, so the cache stays small in a large
// cluster.
func (o *Options) workspaceConfig(cfg *genericapiserver.RecommendedConfig, kube kubernetes.Interface) (apiserver.WorkspaceConfig, error) {
	origins, err := workspace.NewOriginPolicy(o.WorkspaceProxy.AllowedOrigins)
	if err != nil {
		return apiserver.WorkspaceConfig{}, err
	}
	wc := apiserver.WorkspaceConfig{
		Kube:                kube,
		Authorizer:          cfg.Authorization.Authorizer,
		Origins:             origins,
		PingInterval:        o.WorkspaceProxy.PingInterval,
		ActivityMaxInterval: o.WorkspaceProxy.ActivityMaxInterval,
		Assets:              workspace.NewAssetCache(o.WorkspaceProxy.AssetCacheSize.Value()),
	}
	if kube != nil {
		wc.Informers = informers.NewSharedInformerFactoryWithOptions(kube, 0,
			informers.WithTweakListOptions(func(lo *metav1.ListOptions) { lo.LabelSelector = guildnet.WorkspaceLabel }),
			informers.WithTransform(workspace.EndpointsOnly))
		wc.EndpointSlices = wc.Informers.Discovery().V1().EndpointSlices().Lister()
	}
	return wc, nil
}
