package apiserver

import (
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"sync"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/guildnet/guildnet/pkg/boundedmap"
)

// defaultItemJSONBytes bounds one generation of the item JSON cache. Two
// generations are kept, so the cache holds at most twice this. 8 MiB is
// several thousand objects of each kind; past that, LISTs encode the
// objects that fell out again, as they would without the cache.
const defaultItemJSONBytes = 8 << 20

// servedSerializers is the NegotiatedSerializer of the guildnet.io group:
// the scheme's codecs without protobuf (the types have no protobuf
// encoding, so a client that lists protobuf first, such as the namespace
// controller's metadata client, must get JSON, its next choice, rather than
// 406), and with JSON lists encoded through an item cache.
//
// A LIST's cost in this server is almost all JSON encoding: encoding/json
// walks each object by reflection and re-validates what every Marshaler
// (times, managedFields) returns. An object's JSON only changes when its
// resourceVersion does, so the list encoder keeps each item's bytes keyed
// by UID and resourceVersion, and a LIST of objects already listed
// unchanged copies bytes.
type servedSerializers struct {
	runtime.NegotiatedSerializer
	infos []runtime.SerializerInfo
}

// newServedSerializers wraps inner (the group's codec factory); lists whose
// items have the type of one of cached are encoded through the item cache.
func newServedSerializers(inner runtime.NegotiatedSerializer, cached ...runtime.Object) servedSerializers {
	items := newItemJSONCache(defaultItemJSONBytes)
	itemTypes := map[reflect.Type]bool{}
	for _, obj := range cached {
		itemTypes[reflect.TypeOf(obj)] = true
	}
	var infos []runtime.SerializerInfo
	for _, info := range inner.SupportedMediaTypes() {
		switch info.MediaType {
		case runtime.ContentTypeProtobuf:
			continue
		case runtime.ContentTypeJSON:
			// Only the compact serializer: pretty output (?pretty=true)
			// is for people reading a response, not worth caching.
			info.Serializer = &listJSONSerializer{Serializer: info.Serializer, items: items, types: itemTypes}
		}
		infos = append(infos, info)
	}
	return servedSerializers{NegotiatedSerializer: inner, infos: infos}
}

func (s servedSerializers) SupportedMediaTypes() []runtime.SerializerInfo { return s.infos }

// listJSONSerializer is the JSON serializer, except that it writes lists of
// the cached item types itself. Its output is byte for byte what the
// wrapped serializer writes (k8s.io/apimachinery's streaming list encoding:
// kind, apiVersion, metadata, then items, each as encoding/json marshals
// it); TestListJSONMatchesTheStandardSerializer holds it to that.
type listJSONSerializer struct {
	runtime.Serializer
	items *itemJSONCache
	types map[reflect.Type]bool
}

func (s *listJSONSerializer) Identifier() runtime.Identifier {
	return s.Serializer.Identifier() + "+itemcache"
}

func (s *listJSONSerializer) Encode(obj runtime.Object, w io.Writer) error {
	if _, ok := obj.(runtime.CacheableObject); ok || !meta.IsListType(obj) {
		return s.Serializer.Encode(obj, w)
	}
	items, err := meta.ExtractList(obj)
	if err != nil || len(items) == 0 || !s.types[reflect.TypeOf(items[0])] {
		return s.Serializer.Encode(obj, w)
	}
	typeMeta, err := meta.TypeAccessor(obj)
	if err != nil {
		return s.Serializer.Encode(obj, w)
	}
	list, err := meta.ListAccessor(obj)
	if err != nil {
		return s.Serializer.Encode(obj, w)
	}
	listMeta, err := json.Marshal(metav1.ListMeta{
		SelfLink:           list.GetSelfLink(),
		ResourceVersion:    list.GetResourceVersion(),
		Continue:           list.GetContinue(),
		RemainingItemCount: list.GetRemainingItemCount(),
	})
	if err != nil {
		return err
	}

	out := &errWriter{w: w}
	out.write([]byte("{"))
	if kind := typeMeta.GetKind(); kind != "" {
		out.field("kind", kind)
	}
	if apiVersion := typeMeta.GetAPIVersion(); apiVersion != "" {
		out.field("apiVersion", apiVersion)
	}
	out.write([]byte(`"metadata":`))
	out.write(listMeta)
	out.write([]byte(`,"items":[`))
	for i, item := range items {
		if i > 0 {
			out.write([]byte(","))
		}
		b, err := s.items.encode(item)
		if err != nil {
			return err
		}
		out.write(b)
	}
	out.write([]byte("]}\n"))
	return out.err
}

// errWriter keeps the first write error, so the list is written without an
// error check per piece.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) write(b []byte) {
	if e.err == nil {
		_, e.err = e.w.Write(b)
	}
}

// field writes "key":"value", with value quoted as encoding/json does.
func (e *errWriter) field(key, value string) {
	v, err := json.Marshal(value)
	if err != nil && e.err == nil {
		e.err = err
	}
	e.write([]byte(`"` + key + `":`))
	e.write(v)
	e.write([]byte(","))
}

// itemJSONCache maps an object (its Go type, apiVersion and kind, UID) to
// its JSON at one resourceVersion. An object's stored form never changes
// without a new resourceVersion, and the objects a LIST returns come from
// storage or the watch cache, which nobody mutates, so equal keys mean
// equal bytes.
//
// An object's JSON is kept the second time the same version is encoded,
// not the first: a LIST that is not repeated (an informer's first list, a
// one-off kubectl get) would otherwise leave its whole response in memory
// for nothing, while a repeated one (a person or a UI looking again) pays
// the encoding once more and is then served from the cache. Until then
// only the key and version are remembered.
//
// Both are bounded by pkg/boundedmap's two generations, so objects that are
// deleted or no longer listed age out without a sweep.
type itemJSONCache struct {
	mu    sync.Mutex
	items *boundedmap.Map[itemKey, itemJSON] // up to limit bytes of JSON a generation
	// seen holds the versions encoded once and not kept.
	seen *boundedmap.Map[itemKey, string]
}

type itemKey struct {
	typ              reflect.Type
	apiVersion, kind string
	uid              types.UID
}

type itemJSON struct {
	resourceVersion string
	json            []byte
}

// seenBytesPerEntry converts the cache's byte limit to a number of
// remembered versions: about what an entry costs (key, version, map slot).
const seenBytesPerEntry = 128

func newItemJSONCache(limit int) *itemJSONCache {
	return &itemJSONCache{
		items: boundedmap.New[itemKey](limit, func(e itemJSON) int { return len(e.json) }),
		seen:  boundedmap.New[itemKey, string](max(1, limit/seenBytesPerEntry), nil),
	}
}

// encode returns obj's JSON as json.Marshal writes it, from the cache when
// obj's resourceVersion was encoded before. The bytes are shared; callers
// must not change them.
func (c *itemJSONCache) encode(obj runtime.Object) ([]byte, error) {
	o, err := meta.Accessor(obj)
	if err != nil {
		return nil, fmt.Errorf("encoding a list item of type %T: %w", obj, err)
	}
	uid, rv := o.GetUID(), o.GetResourceVersion()
	if uid == "" || rv == "" {
		// Not from storage (or not yet): nothing identifies this content.
		return json.Marshal(obj)
	}
	gvk := obj.GetObjectKind().GroupVersionKind()
	key := itemKey{typ: reflect.TypeOf(obj), apiVersion: gvk.GroupVersion().String(), kind: gvk.Kind, uid: uid}

	c.mu.Lock()
	e, ok := c.items.Get(key)
	c.mu.Unlock()
	if ok && e.resourceVersion == rv {
		return e.json, nil
	}

	b, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.seenBeforeLocked(key, rv) {
		c.items.Put(key, itemJSON{resourceVersion: rv, json: b})
	}
	c.mu.Unlock()
	return b, nil
}

// seenBeforeLocked reports whether this version of the object was encoded
// before; if not, it remembers that it now was.
func (c *itemJSONCache) seenBeforeLocked(key itemKey, rv string) bool {
	if seen, ok := c.seen.Get(key); ok && seen == rv {
		c.seen.Delete(key)
		return true
	}
	c.seen.Put(key, rv)
	return false
}
