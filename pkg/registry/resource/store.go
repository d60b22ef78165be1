package resource

import (
	"context"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apiserver/pkg/registry/generic"
	genericregistry "k8s.io/apiserver/pkg/registry/generic/registry"
	"k8s.io/apiserver/pkg/registry/rest"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"
)

// Spec describes one guildnet.io resource for NewStores.
type Spec[T runtime.Object] struct {
	// Resource and Singular name it, e.g. guildnet.io/workspaces and guildnet.io/workspace.
	Resource, Singular schema.GroupResource
	// New and NewList return empty internal objects.
	New, NewList func() runtime.Object
	// Funcs are the typed strategy pieces.
	Funcs Funcs[T]
	// Table prints the resource for kubectl get.
	Table rest.TableConvertor
	// ShortNames are the kubectl aliases, e.g. "ws".
	ShortNames []string
}

// REST is the main storage of a resource: a genericregistry.Store with
// kubectl short names and the "guildnet" category.
type REST struct {
	*genericregistry.Store
	shortNames []string
}

// ShortNames implements rest.ShortNamesProvider.
func (r *REST) ShortNames() []string { return r.shortNames }

// Categories implements rest.CategoriesProvider: `kubectl get guildnet` lists everything.
func (r *REST) Categories() []string { return []string{"guildnet"} }

// StatusREST is the status subresource: it reads the whole object and
// writes only status.
type StatusREST struct {
	store *genericregistry.Store
}

// NewStores builds a resource's REST storage and its status subresource on
// the storage optsGetter provides.
func NewStores[T runtime.Object](typer runtime.ObjectTyper, optsGetter generic.RESTOptionsGetter, spec Spec[T]) (*REST, *StatusREST, error) {
	strategy := New(typer, spec.Funcs)
	store := &genericregistry.Store{
		NewFunc:                   spec.New,
		NewListFunc:               spec.NewList,
		PredicateFunc:             MatchAll,
		DefaultQualifiedResource:  spec.Resource,
		SingularQualifiedResource: spec.Singular,
		CreateStrategy:            strategy,
		UpdateStrategy:            strategy,
		DeleteStrategy:            strategy,
		ResetFieldsStrategy:       strategy,
		TableConvertor:            spec.Table,
	}
	// The watch cache keeps the attributes of every version it holds; see sharedAttrs.
	attrs := newSharedAttrs(sharedFieldsPerGeneration)
	if err := store.CompleteWithOptions(&generic.StoreOptions{RESTOptions: optsGetter, AttrFunc: attrs.GetAttrs}); err != nil {
		return nil, nil, err
	}
	status := NewStatus(strategy)
	statusStore := *store
	statusStore.UpdateStrategy = status
	statusStore.ResetFieldsStrategy = status
	return &REST{Store: store, shortNames: spec.ShortNames}, &StatusREST{store: &statusStore}, nil
}

// New returns an empty object.
func (r *StatusREST) New() runtime.Object { return r.store.New() }

// Destroy does nothing: the main store owns the storage.
func (r *StatusREST) Destroy() {}

// Get returns the whole object.
func (r *StatusREST) Get(ctx context.Context, name string, options *metav1.GetOptions) (runtime.Object, error) {
	return r.store.Get(ctx, name, options)
}

// Update writes the object's status.
func (r *StatusREST) Update(ctx context.Context, name string, objInfo rest.UpdatedObjectInfo, createValidation rest.ValidateObjectFunc, updateValidation rest.ValidateObjectUpdateFunc, forceAllowCreate bool, options *metav1.UpdateOptions) (runtime.Object, bool, error) {
	// Subresources never create the parent object.
	return r.store.Update(ctx, name, objInfo, createValidation, updateValidation, false, options)
}

// GetResetFields implements rest.ResetFieldsStrategy.
func (r *StatusREST) GetResetFields() map[fieldpath.APIVersion]*fieldpath.Set {
	return r.store.GetResetFields()
}

// ConvertToTable prints the object like the main resource does.
func (r *StatusREST) ConvertToTable(ctx context.Context, object runtime.Object, tableOptions runtime.Object) (*metav1.Table, error) {
	return r.store.ConvertToTable(ctx, object, tableOptions)
}

var (
	_ rest.ShortNamesProvider = &REST{}
	_ rest.CategoriesProvider = &REST{}
	_ rest.Patcher            = &StatusREST{}
)
