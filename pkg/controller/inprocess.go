package controller

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metainternalversion "k8s.io/apimachinery/pkg/apis/meta/internalversion"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/registry/rest"
	toolscache "k8s.io/client-go/tools/cache"

	"github.com/guildnet/guildnet/apis/guildnet/v1alpha1"
)

// Registry is the part of a resource's REST storage (this server's
// genericregistry.Store) the reconcilers' informers read through.
type Registry interface {
	rest.Lister
	rest.Watcher
}

// Registries are this process's guildnet.io resources.
type Registries struct {
	// Kinds maps each kind to its registry.
	Kinds map[schema.GroupVersionKind]Registry
	// Convertor turns what the registries return, internal objects, into
	// the kind's version, which informers hold (the API server's scheme).
	Convertor *runtime.Scheme
}

// OwnRegistries takes the registry of each guildnet.io kind from the API
// server's REST storage, keyed by resource as the server installs it.
func OwnRegistries(storage map[string]rest.Storage, convertor *runtime.Scheme) (Registries, error) {
	own := Registries{Kinds: map[schema.GroupVersionKind]Registry{}, Convertor: convertor}
	for _, kind := range ownKinds {
		gvk := v1alpha1.SchemeGroupVersion.WithKind(kind)
		resource, _ := meta.UnsafeGuessKindToResource(gvk)
		reg, ok := storage[resource.Resource].(Registry)
		if !ok {
			return Registries{}, fmt.Errorf("the %s storage cannot be listed and watched (%T)", resource.Resource, storage[resource.Resource])
		}
		own.Kinds[gvk] = reg
	}
	return own, nil
}

// newInformerFunc returns the reconcilers' informer constructor: informers
// of kinds in own list and watch the registry in this process; all others
// use the ListerWatcher controller-runtime built (kube-apiserver).
//
// Over the loopback connection, every object the server already holds
// decoded in its watch cache was encoded to JSON for each watch event,
// sent, and decoded again into the informer: a second copy of each object,
// down to every string. In process, a watch event's object is a deep copy
// whose strings are the watch cache's own (Go strings are immutable), and
// nothing is encoded. Writes still go over loopback, through admission and
// server-side apply like anyone's.
func newInformerFunc(scheme *runtime.Scheme, own Registries) func(toolscache.ListerWatcher, runtime.Object, time.Duration, toolscache.Indexers) toolscache.SharedIndexInformer {
	return func(lw toolscache.ListerWatcher, obj runtime.Object, resync time.Duration, indexers toolscache.Indexers) toolscache.SharedIndexInformer {
		if gvk, reg, ok := registryFor(scheme, own, obj); ok {
			lw = registryListerWatcher{reg: reg, convertor: own.Convertor, version: gvk.GroupVersion()}
		}
		return toolscache.NewSharedIndexInformer(lw, obj, resync, indexers)
	}
}

func registryFor(scheme *runtime.Scheme, own Registries, obj runtime.Object) (schema.GroupVersionKind, Registry, bool) {
	gvks, _, err := scheme.ObjectKinds(obj)
	if err != nil {
		return schema.GroupVersionKind{}, nil, false
	}
	for _, gvk := range gvks {
		if reg, ok := own.Kinds[gvk]; ok {
			return gvk, reg, true
		}
	}
	return schema.GroupVersionKind{}, nil, false
}

// registryListerWatcher lists and watches one resource in all namespaces
// through its registry, as an authorized client would through the API:
// same options, same selectors, same watch semantics (including a watch
// that starts with the current state, which informers ask for first).
type registryListerWatcher struct {
	reg       Registry
	convertor *runtime.Scheme
	version   schema.GroupVersion
}

var _ toolscache.ListerWatcherWithContext = registryListerWatcher{}

// ListWithContext returns the registry's list in the informer's version.
// Its items are copies of the watch cache's objects that still share their
// maps, slices and strings with them (the conversion, between types of the
// same layout, shares them too); informers only replace fields of the
// top-level object (the managed-fields transform), and controller-runtime
// hands out deep copies.
func (lw registryListerWatcher) ListWithContext(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
	internal, err := internalListOptions(opts)
	if err != nil {
		return nil, err
	}
	list, err := lw.reg.List(genericapirequest.WithNamespace(ctx, metav1.NamespaceAll), internal)
	if err != nil {
		return nil, err
	}
	return lw.convertor.UnsafeConvertToVersion(list, lw.version)
}

// WatchWithContext returns the registry's watch with each event's object
// unwrapped and converted to the informer's version: the watch cache sends
// objects wrapped to cache their encodings (runtime.CacheableObject), whose
// GetObject returns the object to own. An object that does not convert
// ends the watch with an error event, and the informer watches again.
func (lw registryListerWatcher) WatchWithContext(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
	internal, err := internalListOptions(opts)
	if err != nil {
		return nil, err
	}
	w, err := lw.reg.Watch(genericapirequest.WithNamespace(ctx, metav1.NamespaceAll), internal)
	if err != nil {
		return nil, err
	}
	return watch.Filter(w, func(e watch.Event) (watch.Event, bool) {
		if e.Type == watch.Error {
			return e, true
		}
		if c, ok := e.Object.(runtime.CacheableObject); ok {
			e.Object = c.GetObject()
		}
		obj, err := lw.convertor.UnsafeConvertToVersion(e.Object, lw.version)
		if err != nil {
			return watch.Event{Type: watch.Error, Object: &apierrors.NewInternalError(fmt.Errorf("converting a watch event to %s: %w", lw.version, err)).ErrStatus}, true
		}
		e.Object = obj
		return e, true
	}), nil
}

// The informer interface without context; the reflector uses the
// context-aware methods above.

func (lw registryListerWatcher) List(opts metav1.ListOptions) (runtime.Object, error) {
	return lw.ListWithContext(context.Background(), opts)
}

func (lw registryListerWatcher) Watch(opts metav1.ListOptions) (watch.Interface, error) {
	return lw.WatchWithContext(context.Background(), opts)
}

func internalListOptions(opts metav1.ListOptions) (*metainternalversion.ListOptions, error) {
	var internal metainternalversion.ListOptions
	if err := metainternalversion.Convert_v1_ListOptions_To_internalversion_ListOptions(&opts, &internal, nil); err != nil {
		return nil, fmt.Errorf("converting the informer's list options: %w", err)
	}
	return &internal, nil
}
