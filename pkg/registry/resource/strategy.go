// Package resource implements the create, update, delete and status rules
// that every guildnet.io resource shares: status is ignored on the main
// resource and spec on the status subresource, metadata.generation moves only
// when the spec changes, and validation comes from apis/guildnet/validation.
// Each resource supplies its typed pieces through Funcs; NewStores builds its
// REST storage and status subresource from them.
package resource

import (
	"context"
	"slices"

	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apiserver/pkg/registry/rest"
	"k8s.io/apiserver/pkg/storage"
	"k8s.io/apiserver/pkg/storage/names"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"
)

// Funcs are the typed pieces of one resource's strategy.
type Funcs[T runtime.Object] struct {
	// Validate checks a new object.
	Validate func(obj T) field.ErrorList
	// ValidateUpdate checks an update of the spec.
	ValidateUpdate func(obj, old T) field.ErrorList
	// ValidateStatusUpdate checks an update through the status subresource.
	ValidateStatusUpdate func(obj, old T) field.ErrorList
	// Spec and Status return pointers to the object's spec and status.
	Spec, Status func(obj T) any
	// SetStatus copies src's status into dst; SetSpec copies src's spec.
	SetStatus, SetSpec func(dst, src T)
	// ResetStatus clears the status of a new object.
	ResetStatus func(obj T)
	// Finalizers are set on every new object, so that none exists, even
	// for a moment, without them; the reconciler would otherwise add them
	// with a write of its own.
	Finalizers []string
}

// Strategy is the create/update/delete strategy of a namespaced resource.
type Strategy[T runtime.Object] struct {
	runtime.ObjectTyper
	names.NameGenerator
	f Funcs[T]
}

// New returns the strategy for a resource.
func New[T runtime.Object](typer runtime.ObjectTyper, f Funcs[T]) Strategy[T] {
	return Strategy[T]{ObjectTyper: typer, NameGenerator: names.SimpleNameGenerator, f: f}
}

// NamespaceScoped is true: every guildnet.io resource lives in a namespace.
func (Strategy[T]) NamespaceScoped() bool { return true }

// GetResetFields says that writes to the main resource never set status.
func (Strategy[T]) GetResetFields() map[fieldpath.APIVersion]*fieldpath.Set {
	return map[fieldpath.APIVersion]*fieldpath.Set{
		"guildnet.io/v1alpha1": fieldpath.NewSet(fieldpath.MakePathOrDie("status")),
	}
}

// PrepareForCreate drops any status a client sent, starts the generation
// and adds the resource's finalizers.
func (s Strategy[T]) PrepareForCreate(_ context.Context, obj runtime.Object) {
	o := obj.(T)
	s.f.ResetStatus(o)
	if m, err := meta.Accessor(obj); err == nil {
		m.SetGeneration(1)
		for _, f := range s.f.Finalizers {
			if !slices.Contains(m.GetFinalizers(), f) {
				m.SetFinalizers(append(m.GetFinalizers(), f))
			}
		}
	}
}

// PrepareForUpdate keeps the stored status and bumps the generation when
// the spec changed.
func (s Strategy[T]) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	n, o := obj.(T), old.(T)
	s.f.SetStatus(n, o)
	if !apiequality.Semantic.DeepEqual(s.f.Spec(n), s.f.Spec(o)) {
		if m, err := meta.Accessor(obj); err == nil {
			m.SetGeneration(m.GetGeneration() + 1)
		}
	}
}

// Validate checks a new object.
func (s Strategy[T]) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	return s.f.Validate(obj.(T))
}

// ValidateUpdate checks an update.
func (s Strategy[T]) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	return s.f.ValidateUpdate(obj.(T), old.(T))
}

// WarningsOnCreate returns no warnings.
func (Strategy[T]) WarningsOnCreate(context.Context, runtime.Object) []string { return nil }

// WarningsOnUpdate returns no warnings.
func (Strategy[T]) WarningsOnUpdate(context.Context, runtime.Object, runtime.Object) []string {
	return nil
}

// Canonicalize does nothing: the types have no alternative spellings.
func (Strategy[T]) Canonicalize(runtime.Object) {}

// AllowCreateOnUpdate is false: PUT of a missing object is a 404.
func (Strategy[T]) AllowCreateOnUpdate(context.Context) bool { return false }

// AllowUnconditionalUpdate is true, like most built-in resources.
func (Strategy[T]) AllowUnconditionalUpdate(context.Context) bool { return true }

// StatusStrategy is the strategy of the status subresource.
type StatusStrategy[T runtime.Object] struct {
	Strategy[T]
}

// NewStatus returns the status subresource strategy for a resource.
func NewStatus[T runtime.Object](s Strategy[T]) StatusStrategy[T] {
	return StatusStrategy[T]{Strategy: s}
}

// GetResetFields says that writes to status never set spec or metadata
// other than labels and annotations.
func (StatusStrategy[T]) GetResetFields() map[fieldpath.APIVersion]*fieldpath.Set {
	return map[fieldpath.APIVersion]*fieldpath.Set{
		"guildnet.io/v1alpha1": fieldpath.NewSet(fieldpath.MakePathOrDie("spec")),
	}
}

// PrepareForUpdate keeps the stored spec: the status subresource writes status only.
func (s StatusStrategy[T]) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	s.f.SetSpec(obj.(T), old.(T))
}

// ValidateUpdate checks a status update.
func (s StatusStrategy[T]) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	return s.f.ValidateStatusUpdate(obj.(T), old.(T))
}

// GetAttrs returns labels and fields of an object for selectors.
func GetAttrs(obj runtime.Object) (labels.Set, fields.Set, error) {
	m, err := meta.Accessor(obj)
	if err != nil {
		return nil, nil, err
	}
	return labels.Set(m.GetLabels()), objectFields(m.GetNamespace(), m.GetName()), nil
}

// MatchAll is the selection predicate for label and field selectors on
// metadata.name and metadata.namespace.
func MatchAll(label labels.Selector, field fields.Selector) storage.SelectionPredicate {
	return storage.SelectionPredicate{Label: label, Field: field, GetAttrs: GetAttrs}
}

var (
	_ rest.RESTCreateStrategy  = Strategy[runtime.Object]{}
	_ rest.RESTUpdateStrategy  = Strategy[runtime.Object]{}
	_ rest.RESTDeleteStrategy  = Strategy[runtime.Object]{}
	_ rest.ResetFieldsStrategy = Strategy[runtime.Object]{}
)
