// Package versionshare makes consecutive versions of an object share the
// memory of what did not change between them.
//
// k8s.io/apiserver's watch cache keeps, besides the current version of every
// object, each version written in the last 75 seconds at least (its event
// history, for watches that resume from an older resourceVersion), and it
// keeps them until newer events push them out: a quiet server holds the
// versions of its last burst indefinitely. Each version is decoded on its
// own, so a status update that changes one condition costs a whole copy of
// the object: its name, labels, spec and managed fields included. With
// Storage in front of the storage the watch cache reads, a version shares
// every string, byte slice, map, slice and pointer that is equal in the
// version before it.
//
// The watch also makes equal managed-field sets of different objects share
// one copy: objects written by the same clients record the same fields (a
// thousand Databases created by one script and given status by one
// reconciler hold a handful of distinct sets between them), and these sets are
// often the largest part of a small object.
//
// Sharing is safe where objects are not changed in place, which is the
// watch cache's rule: it hands out shallow copies of what it holds (a GET's
// or LIST's objects share their maps and slices with the cache already) and
// deep copies where they are to be changed.
package versionshare

import (
	"bytes"
	"context"
	"hash/maphash"
	"reflect"
	"sync"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/apiserver/pkg/storage"

	"github.com/guildnet/guildnet/pkg/boundedmap"
)

// maxDepth bounds the walk; API objects are trees a few levels deep, so it
// is only reached by something that is not one.
const maxDepth = 32

// Share makes cur use prev's memory wherever the two hold equal values.
// Neither object's value changes. prev and cur must be pointers to the same
// type; otherwise Share does nothing.
func Share(prev, cur runtime.Object) {
	p, c := reflect.ValueOf(prev), reflect.ValueOf(cur)
	if !p.IsValid() || !c.IsValid() || p.Type() != c.Type() || c.Kind() != reflect.Pointer || p.IsNil() || c.IsNil() || p.Pointer() == c.Pointer() {
		return
	}
	share(p.Elem(), c.Elem(), 0)
}

// share reports whether prev and cur hold equal values and, where they do
// and cur can be set, points cur at prev's memory.
func share(prev, cur reflect.Value, depth int) bool {
	if depth > maxDepth {
		return false
	}
	switch cur.Kind() {
	case reflect.String:
		return setIf(prev.String() == cur.String(), prev, cur)
	case reflect.Bool:
		return prev.Bool() == cur.Bool()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return prev.Int() == cur.Int()
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return prev.Uint() == cur.Uint()
	case reflect.Float32, reflect.Float64:
		return prev.Float() == cur.Float()
	case reflect.Complex64, reflect.Complex128:
		return prev.Complex() == cur.Complex()
	case reflect.Pointer:
		if prev.IsNil() || cur.IsNil() {
			return prev.IsNil() && cur.IsNil()
		}
		if prev.Pointer() == cur.Pointer() {
			return true
		}
		return setIf(share(prev.Elem(), cur.Elem(), depth+1), prev, cur)
	case reflect.Slice:
		if prev.IsNil() || cur.IsNil() {
			return prev.IsNil() == cur.IsNil() && prev.Len() == cur.Len()
		}
		if cur.Type().Elem().Kind() == reflect.Uint8 {
			return setIf(bytes.Equal(prev.Bytes(), cur.Bytes()), prev, cur)
		}
		// Equal elements are shared even when the lengths differ (a
		// condition added to a list); the slice itself only when all are.
		equal := prev.Len() == cur.Len()
		for i := range min(prev.Len(), cur.Len()) {
			if !share(prev.Index(i), cur.Index(i), depth+1) {
				equal = false
			}
		}
		return setIf(equal, prev, cur)
	case reflect.Array:
		equal := true
		for i := range cur.Len() {
			if !share(prev.Index(i), cur.Index(i), depth+1) {
				equal = false
			}
		}
		return equal
	case reflect.Struct:
		equal := true
		for i := range cur.NumField() {
			if !share(prev.Field(i), cur.Field(i), depth+1) {
				equal = false
			}
		}
		return equal
	case reflect.Map, reflect.Interface:
		if prev.IsNil() || cur.IsNil() {
			return prev.IsNil() && cur.IsNil()
		}
		// Map values cannot be set in place: the map is shared whole or
		// not at all. Unexported ones cannot be read for comparing.
		if !prev.CanInterface() || !cur.CanInterface() {
			return false
		}
		return setIf(reflect.DeepEqual(prev.Interface(), cur.Interface()), prev, cur)
	default: // funcs, channels and unsafe pointers are not data
		return false
	}
}

// setIf points cur at prev's value when equal and cur can be set (exported
// and reached through pointers), and returns equal.
func setIf(equal bool, prev, cur reflect.Value) bool {
	if equal && cur.CanSet() {
		cur.Set(prev)
	}
	return equal
}

// Storage wraps s so that the objects of each watch it serves share memory
// with the previous version of the same object the watch delivered. It is
// meant for the watch cache's own watch on its storage, where every
// delivered object is kept anyway: the watch holds the latest version of each
// object, which the cache holds too.
func Storage(s storage.Interface) storage.Interface {
	return sharingStorage{Interface: s}
}

type sharingStorage struct {
	storage.Interface
}

func (s sharingStorage) Watch(ctx context.Context, key string, opts storage.ListOptions) (watch.Interface, error) {
	w, err := s.Interface.Watch(ctx, key, opts)
	if err != nil {
		return nil, err
	}
	return Watch(w), nil
}

// Watch returns a watch that delivers w's events, each ADDED or MODIFIED
// object sharing memory with the previous version of it (by namespace and
// name) that the watch delivered.
func Watch(w watch.Interface) watch.Interface {
	sw := &sharingWatch{inner: w, result: make(chan watch.Event), done: make(chan struct{}), fields: newFieldSets(fieldSetsPerGeneration)}
	go sw.run()
	return sw
}

type sharingWatch struct {
	inner    watch.Interface
	result   chan watch.Event
	done     chan struct{}
	stopOnce sync.Once
	fields   *fieldSets // only used by run
}

type objectKey struct{ namespace, name string }

func (w *sharingWatch) ResultChan() <-chan watch.Event { return w.result }

func (w *sharingWatch) Stop() {
	w.stopOnce.Do(func() {
		close(w.done)
		w.inner.Stop()
	})
}

func (w *sharingWatch) run() {
	defer close(w.result)
	latest := map[objectKey]runtime.Object{}
	in := w.inner.ResultChan()
	for {
		var ev watch.Event
		var ok bool
		select {
		case ev, ok = <-in:
			if !ok {
				return
			}
		case <-w.done:
			return
		}
		switch ev.Type {
		case watch.Added, watch.Modified:
			if obj := unwrap(ev.Object); obj != nil {
				if m, err := meta.Accessor(obj); err == nil {
					// Before Share: obj is still this watch's alone, and
					// what Share compares then holds the shared sets.
					w.fields.share(m)
					k := objectKey{m.GetNamespace(), m.GetName()}
					if prev, found := latest[k]; found {
						Share(prev, obj)
					}
					latest[k] = obj
				}
			}
		case watch.Deleted:
			if obj := unwrap(ev.Object); obj != nil {
				if m, err := meta.Accessor(obj); err == nil {
					delete(latest, objectKey{m.GetNamespace(), m.GetName()})
				}
			}
		}
		select {
		case w.result <- ev:
		case <-w.done:
			return
		}
	}
}

// unwrap returns the object a storage event carries inside a wrapper (the
// RethinkDB storage wraps objects to carry the time they were read).
func unwrap(obj runtime.Object) runtime.Object {
	if u, ok := obj.(interface{ Unwrap() runtime.Object }); ok {
		return u.Unwrap()
	}
	return obj
}

// fieldSetsPerGeneration bounds one generation of a watch's managed-field
// sets; two are kept.
const fieldSetsPerGeneration = 1024

// fieldSets maps the content of managed-field sets a watch delivered to one
// copy of each, by hash. The table (a pkg/boundedmap) holds pointers to
// sets that objects hold anyway, plus a hash each, and drops sets no
// object uses any more once newer ones fill a generation.
type fieldSets struct {
	seed maphash.Seed
	sets *boundedmap.Map[uint64, *metav1.FieldsV1]
}

func newFieldSets(limit int) *fieldSets {
	return &fieldSets{seed: maphash.MakeSeed(), sets: boundedmap.New[uint64, *metav1.FieldsV1](limit, nil)}
}

// share points each of m's managed-field entries at the copy of its set
// seen first, where the content is equal.
func (f *fieldSets) share(m metav1.Object) {
	entries := m.GetManagedFields()
	for i := range entries {
		set := entries[i].FieldsV1
		if set == nil {
			continue
		}
		h := maphash.Bytes(f.seed, set.Raw)
		known, ok := f.sets.Get(h)
		if !ok {
			f.sets.Put(h, set)
			continue
		}
		if known != set && bytes.Equal(known.Raw, set.Raw) {
			entries[i].FieldsV1 = known
		}
	}
}
