package rethinkstore

import (
	"fmt"
	"sync"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apiserver/pkg/registry/generic"
	"k8s.io/apiserver/pkg/storage"
	"k8s.io/apiserver/pkg/storage/storagebackend"
	"k8s.io/apiserver/pkg/storage/storagebackend/factory"
	"k8s.io/client-go/tools/cache"

	"github.com/guildnet/guildnet/pkg/rethinkdb"
)

// NewStorageDecorator returns a generic.StorageDecorator that stores a
// resource in the system database of c (rethinkdb.Options.Database), with the
// default Options. Use it as the Decorator of the RESTOptions the
// genericregistry.Store gets; the codec, transformer, prefix and compaction
// interval come from the resource's storagebackend.ConfigForResource.
func NewStorageDecorator(c *rethinkdb.Client) generic.StorageDecorator {
	return NewStorageDecoratorWithOptions(c, Options{})
}

// NewStorageDecoratorWithOptions is NewStorageDecorator with tuned Options.
// All resources stored through one Client share one revision log and tailer;
// the Options of the first resource set them up.
func NewStorageDecoratorWithOptions(c *rethinkdb.Client, o Options) generic.StorageDecorator {
	return func(config *storagebackend.ConfigForResource, resourcePrefix string,
		_ func(obj runtime.Object) (string, error), newFunc, _ func() runtime.Object,
		_ storage.AttrFunc, _ storage.IndexerFuncs, _ *cache.Indexers) (storage.Interface, factory.DestroyFunc, error) {
		if c == nil {
			return nil, nil, fmt.Errorf("rethinkstore: %s: no RethinkDB client", config.GroupResource)
		}
		opts := o
		if opts.CompactionInterval == 0 {
			opts.CompactionInterval = config.CompactionInterval
		}
		return New(c, opts, config, resourcePrefix, newFunc)
	}
}

// New returns the storage of one resource. newFunc makes an empty object of
// the resource (for bookmarks); resourcePrefix is the registry's key prefix,
// e.g. "/guildnet.io/workspaces". The DestroyFunc releases it; the shared
// machinery stops with the last resource of the Client.
func New(c *rethinkdb.Client, o Options, config *storagebackend.ConfigForResource, resourcePrefix string,
	newFunc func() runtime.Object) (storage.Interface, factory.DestroyFunc, error) {
	b, release := acquireBackend(c, o)
	s, err := newStore(b, config.Codec, config.Transformer, config.Prefix, resourcePrefix, config.GroupResource, newFunc)
	if err != nil {
		release()
		return nil, nil, err
	}
	var once sync.Once
	return s, func() { once.Do(release) }, nil
}

// backends holds the running backend of each Client, so every resource in
// the process shares one tailer, window and compactor.
var (
	backendsMu sync.Mutex
	backends   = map[*rethinkdb.Client]*backend{}
)

func acquireBackend(c *rethinkdb.Client, o Options) (*backend, func()) {
	backendsMu.Lock()
	defer backendsMu.Unlock()
	b, ok := backends[c]
	if !ok {
		if o.CompactionInterval == 0 {
			o.CompactionInterval = defaultCompactionInterval
		}
		if o.CompactionInterval < 0 {
			o.CompactionInterval = 0
		}
		b = newBackend(c, c.Database(), o)
		b.start()
		backends[c] = b
	}
	b.refs++
	return b, func() {
		backendsMu.Lock()
		b.refs--
		last := b.refs == 0
		if last {
			delete(backends, c)
		}
		backendsMu.Unlock()
		if last {
			b.stop()
		}
	}
}
