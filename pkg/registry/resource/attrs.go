package resource

import (
	"sync"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/guildnet/guildnet/pkg/boundedmap"
)

// sharedFieldsPerGeneration bounds one generation of sharedAttrs' table.
// Two generations are kept; objects beyond that many still get correct
// fields, only less often shared.
const sharedFieldsPerGeneration = 8192

// sharedAttrs is a store's AttrFunc: GetAttrs, except that every version of
// an object gets the same fields.Set.
//
// The watch cache keeps the labels and fields of each version it holds,
// the current ones and those of the last 75 seconds of events. An object's
// fields (its name and namespace) never change, yet each version would get
// its own map, about 300 bytes: after a burst of writes, thousands of equal
// maps. The watch cache only reads these sets, so one per object serves all
// its versions. Labels need nothing: they are the object's own map, which
// pkg/storage/versionshare already shares between versions.
//
// The table is a pkg/boundedmap, so the sets of deleted objects go without
// a sweep.
type sharedAttrs struct {
	mu     sync.Mutex
	fields *boundedmap.Map[objectName, fields.Set]
}

type objectName struct{ namespace, name string }

func newSharedAttrs(limit int) *sharedAttrs {
	return &sharedAttrs{fields: boundedmap.New[objectName, fields.Set](limit, nil)}
}

// GetAttrs returns obj's labels and its shared fields.
func (a *sharedAttrs) GetAttrs(obj runtime.Object) (labels.Set, fields.Set, error) {
	m, err := meta.Accessor(obj)
	if err != nil {
		return nil, nil, err
	}
	return labels.Set(m.GetLabels()), a.fieldsOf(m.GetNamespace(), m.GetName()), nil
}

func (a *sharedAttrs) fieldsOf(namespace, name string) fields.Set {
	key := objectName{namespace, name}
	a.mu.Lock()
	defer a.mu.Unlock()
	f, ok := a.fields.Get(key)
	if !ok {
		f = objectFields(namespace, name)
		a.fields.Put(key, f)
	}
	return f
}

// objectFields are the fields a guildnet.io field selector can name.
func objectFields(namespace, name string) fields.Set {
	return fields.Set{"metadata.name": name, "metadata.namespace": namespace}
}
