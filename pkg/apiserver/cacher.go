package apiserver

import (
	"context"
	"sync"

	clientv3 "go.etcd.io/etcd/client/v3"
	etcdfeature "k8s.io/apiserver/pkg/storage/feature"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apiserver/pkg/registry/generic"
	"k8s.io/apiserver/pkg/storage"
	cacherstorage "k8s.io/apiserver/pkg/storage/cacher"
	"k8s.io/apiserver/pkg/storage/storagebackend"
	"k8s.io/apiserver/pkg/storage/storagebackend/factory"
	"k8s.io/client-go/tools/cache"

	"github.com/guildnet/guildnet/pkg/storage/versionshare"
)

// WithWatchCache puts k8s.io/apiserver's watch cache (the Cacher) in front
// of the storage inner creates, as kube-apiserver does for etcd: LIST, GET
// with resourceVersion and watches are then served from memory, fed by one
// watch on RethinkDB per resource, and consistent reads wait for the cache
// to catch up with the storage's current resourceVersion.
func WithWatchCache(inner generic.StorageDecorator) generic.StorageDecorator {
	return func(
		config *storagebackend.ConfigForResource,
		resourcePrefix string,
		keyFunc func(obj runtime.Object) (string, error),
		newFunc func() runtime.Object,
		newListFunc func() runtime.Object,
		getAttrsFunc storage.AttrFunc,
		triggerFuncs storage.IndexerFuncs,
		indexers *cache.Indexers,
	) (storage.Interface, factory.DestroyFunc, error) {
		s, destroy, err := inner(config, resourcePrefix, keyFunc, newFunc, newListFunc, getAttrsFunc, triggerFuncs, indexers)
		if err != nil {
			return s, destroy, err
		}
		cacher, err := cacherstorage.NewCacherFromConfig(cacherstorage.Config{
			// The cache keeps recent versions of each object besides the
			// current one; fed through versionshare they share what did not
			// change between them.
			Storage:             versionshare.Storage(s),
			Versioner:           storage.APIObjectVersioner{},
			GroupResource:       config.GroupResource,
			EventsHistoryWindow: config.EventsHistoryWindow,
			ResourcePrefix:      resourcePrefix,
			KeyFunc:             keyFunc,
			NewFunc:             newFunc,
			NewListFunc:         newListFunc,
			GetAttrsFunc:        getAttrsFunc,
			IndexerFuncs:        triggerFuncs,
			Indexers:            indexers,
			Codec:               config.Codec,
		})
		if err != nil {
			destroy()
			return nil, func() {}, err
		}
		delegator := cacherstorage.NewCacheDelegator(cacher, s)
		var once sync.Once
		return delegator, func() {
			once.Do(func() {
				delegator.Stop()
				cacher.Stop()
				destroy()
			})
		}, nil
	}
}

// EnableConsistentReadsFromCache tells k8s.io/apiserver that this server's
// storage answers progress requests, so consistent LISTs (no
// resourceVersion) are served from the watch cache once it has caught up
// with the storage's current revision, instead of going to RethinkDB.
//
// The library decides this once per process by asking etcd for its version
// (etcd >= 3.4 answers progress requests); there is no etcd here, and the
// RethinkDB storage implements RequestWatchProgress itself, so we answer
// that question for it with a stand-in that reports a capable version.
func EnableConsistentReadsFromCache(ctx context.Context) {
	etcdfeature.DefaultFeatureSupportChecker.CheckClient(ctx, progressCapable{}, storage.RequestWatchProgress)
}

type progressCapable struct{}

func (progressCapable) Endpoints() []string { return []string{"rethinkdb"} }

func (progressCapable) Status(context.Context, string) (*clientv3.StatusResponse, error) {
	return &clientv3.StatusResponse{Version: "3.6.0"}, nil
}
