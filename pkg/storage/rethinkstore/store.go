package rethinkstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path"
	"reflect"
	"strings"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/conversion"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apiserver/pkg/storage"
	"k8s.io/apiserver/pkg/storage/value"
	"k8s.io/apiserver/pkg/storage/value/encrypt/identity"
)

// store is the storage.Interface of one resource. All stores of one system
// database share a backend.
type store struct {
	b              *backend
	codec          runtime.Codec
	versioner      storage.Versioner
	transformer    value.Transformer
	pathPrefix     string // ends in "/"
	resourcePrefix string
	groupResource  schema.GroupResource
	newFunc        func() runtime.Object
	ttlWarning     sync.Once
}

// warnTTL logs once that TTLs are ignored. No guildnet.io resource uses them
// (only Events do in Kubernetes); objects with a TTL are kept until deleted.
func (s *store) warnTTL() {
	s.ttlWarning.Do(func() {
		s.b.logger.Info("Ignoring the TTL of objects: the RethinkDB storage does not expire objects", "resource", s.groupResource.String())
	})
}

var _ storage.Interface = (*store)(nil)

// authenticatedDataString binds stored data to its key for transformers that
// authenticate (encryption at rest), as etcd3 does.
type authenticatedDataString string

func (d authenticatedDataString) AuthenticatedData() []byte { return []byte(d) }

func newStore(b *backend, codec runtime.Codec, transformer value.Transformer, prefix, resourcePrefix string,
	gr schema.GroupResource, newFunc func() runtime.Object) (*store, error) {
	if codec == nil {
		return nil, fmt.Errorf("rethinkstore: %s: no codec", gr)
	}
	if resourcePrefix == "" || resourcePrefix == "/" || !strings.HasPrefix(resourcePrefix, "/") {
		return nil, fmt.Errorf("rethinkstore: %s: resourcePrefix %q must start with / and not be /", gr, resourcePrefix)
	}
	if transformer == nil {
		transformer = identity.NewEncryptCheckTransformer()
	}
	pathPrefix := path.Join("/", prefix)
	if !strings.HasSuffix(pathPrefix, "/") {
		pathPrefix += "/"
	}
	return &store{
		b:              b,
		codec:          codec,
		versioner:      storage.APIObjectVersioner{},
		transformer:    transformer,
		pathPrefix:     pathPrefix,
		resourcePrefix: resourcePrefix,
		groupResource:  gr,
		newFunc:        newFunc,
	}, nil
}

// Versioner implements storage.Interface.
func (s *store) Versioner() storage.Versioner { return s.versioner }

func (s *store) prepareKey(key string, recursive bool) (string, error) {
	key, err := storage.PrepareKey(s.resourcePrefix, key, recursive)
	if err != nil {
		return "", err
	}
	return s.pathPrefix + strings.TrimPrefix(key, "/"), nil
}

// encode serializes obj and transforms it for storage.
func (s *store) encode(ctx context.Context, key string, obj runtime.Object) (data, stored []byte, err error) {
	data, err = runtime.Encode(s.codec, obj)
	if err != nil {
		return nil, nil, err
	}
	stored, err = s.transformer.TransformToStorage(ctx, data, authenticatedDataString(key))
	if err != nil {
		return nil, nil, storage.NewInternalError(err)
	}
	return data, stored, nil
}

// decodeInto decodes serialized data into out and sets its resourceVersion.
func (s *store) decodeInto(data []byte, out runtime.Object, rev int64) error {
	if _, err := conversion.EnforcePtr(out); err != nil {
		return fmt.Errorf("unable to convert output object to pointer: %w", err)
	}
	if _, _, err := s.codec.Decode(data, nil, out); err != nil {
		return err
	}
	return s.versioner.UpdateObject(out, uint64(rev))
}

// Create implements storage.Interface.
func (s *store) Create(ctx context.Context, key string, obj, out runtime.Object, ttl uint64) error {
	preparedKey, err := s.prepareKey(key, false)
	if err != nil {
		return err
	}
	if ttl != 0 {
		s.warnTTL()
	}
	if version, err := s.versioner.ObjectResourceVersion(obj); err == nil && version != 0 {
		return storage.ErrResourceVersionSetOnCreate
	}
	if err := s.versioner.PrepareObjectForStorage(obj); err != nil {
		return fmt.Errorf("PrepareObjectForStorage failed: %w", err)
	}
	data, stored, err := s.encode(ctx, preparedKey, obj)
	if err != nil {
		return err
	}
	if err := s.b.waitReady(ctx); err != nil {
		return err
	}
	for {
		st, err := s.b.currentForWrite(ctx, preparedKey)
		if err != nil {
			return err
		}
		if st.exists {
			return storage.NewKeyExistsError(preparedKey, 0)
		}
		rev, err := s.b.commit(ctx, preparedKey, st, stored, false)
		if errors.Is(err, errConflict) {
			continue
		}
		if err != nil {
			return err
		}
		if out != nil {
			return s.decodeInto(data, out, rev)
		}
		return nil
	}
}

// objState is what Delete and GuaranteedUpdate work on, as in etcd3.
type objState struct {
	obj   runtime.Object
	meta  *storage.ResponseMeta
	rev   int64
	data  []byte // serialized, before the transformer
	stale bool
	st    state // the committed state the write is based on
}

// getState reads the current state of key; a missing key is an error unless ignoreNotFound.
func (s *store) getState(ctx context.Context, key string, v reflect.Value, ignoreNotFound bool) (*objState, error) {
	st, err := s.b.currentForWrite(ctx, key)
	if err != nil {
		return nil, err
	}
	os := &objState{meta: &storage.ResponseMeta{}, st: st}
	if u, ok := v.Addr().Interface().(runtime.Unstructured); ok {
		os.obj = u.NewEmptyInstance()
	} else {
		os.obj = reflect.New(v.Type()).Interface().(runtime.Object)
	}
	if !st.exists {
		if !ignoreNotFound {
			return nil, storage.NewKeyNotFoundError(key, 0)
		}
		if err := runtime.SetZeroValue(os.obj); err != nil {
			return nil, err
		}
		return os, nil
	}
	os.rev = st.rev
	os.meta.ResourceVersion = uint64(st.rev)
	data, stale, err := s.transformer.TransformFromStorage(ctx, st.data, authenticatedDataString(key))
	if err != nil {
		return nil, storage.NewInternalError(err)
	}
	os.data, os.stale = data, stale
	if err := s.decodeInto(data, os.obj, st.rev); err != nil {
		return nil, err
	}
	return os, nil
}

// stateFromObject builds an objState from an object the caller has cached.
func (s *store) stateFromObject(ctx context.Context, key string, obj runtime.Object) (*objState, error) {
	rv, err := s.versioner.ObjectResourceVersion(obj)
	if err != nil {
		return nil, fmt.Errorf("couldn't get resource version: %w", err)
	}
	os := &objState{obj: obj, meta: &storage.ResponseMeta{ResourceVersion: rv}, rev: int64(rv)}
	// The serialized form is computed without the resourceVersion, which is
	// not stored.
	if err := s.versioner.PrepareObjectForStorage(obj); err != nil {
		return nil, fmt.Errorf("PrepareObjectForStorage failed: %w", err)
	}
	data, stored, err := s.encode(ctx, key, obj)
	if err != nil {
		return nil, err
	}
	if err := s.versioner.UpdateObject(obj, rv); err != nil {
		return nil, err
	}
	os.data = data
	os.st = state{exists: true, rev: int64(rv), data: stored}
	return os, nil
}

// Delete implements storage.Interface.
func (s *store) Delete(ctx context.Context, key string, out runtime.Object, preconditions *storage.Preconditions,
	validateDeletion storage.ValidateObjectFunc, cachedExistingObject runtime.Object, _ storage.DeleteOptions) error {
	preparedKey, err := s.prepareKey(key, false)
	if err != nil {
		return err
	}
	v, err := conversion.EnforcePtr(out)
	if err != nil {
		return fmt.Errorf("unable to convert output object to pointer: %w", err)
	}
	if err := s.b.waitReady(ctx); err != nil {
		return err
	}
	getCurrent := func() (*objState, error) { return s.getState(ctx, preparedKey, v, false) }

	var orig *objState
	var origIsCurrent bool
	if cachedExistingObject != nil {
		orig, err = s.stateFromObject(ctx, preparedKey, cachedExistingObject)
	} else {
		orig, err = getCurrent()
		origIsCurrent = true
	}
	if err != nil {
		return err
	}
	for {
		if preconditions != nil {
			if err := preconditions.Check(preparedKey, orig.obj); err != nil {
				if origIsCurrent {
					return err
				}
				// The cached object may be stale: check against the current one.
				cachedRev := orig.rev
				if orig, err = getCurrent(); err != nil {
					return err
				}
				origIsCurrent = true
				if cachedRev == orig.rev {
					return err
				}
				continue
			}
		}
		if err := validateDeletion(ctx, orig.obj); err != nil {
			if origIsCurrent {
				return err
			}
			cachedRev, cachedErr := orig.rev, err
			if orig, err = getCurrent(); err != nil {
				return err
			}
			origIsCurrent = true
			if cachedRev == orig.rev {
				return cachedErr
			}
			continue
		}
		rev, err := s.b.commit(ctx, preparedKey, orig.st, nil, true)
		if errors.Is(err, errConflict) {
			if orig, err = getCurrent(); err != nil {
				return err
			}
			origIsCurrent = true
			continue
		}
		if err != nil {
			return err
		}
		return s.decodeInto(orig.data, out, rev)
	}
}

// GuaranteedUpdate implements storage.Interface. It follows etcd3's loop:
// tryUpdate runs on the current (or cached) object, and the write succeeds
// only if the object is still at the revision tryUpdate saw.
func (s *store) GuaranteedUpdate(ctx context.Context, key string, destination runtime.Object, ignoreNotFound bool,
	preconditions *storage.Preconditions, tryUpdate storage.UpdateFunc, cachedExistingObject runtime.Object) error {
	preparedKey, err := s.prepareKey(key, false)
	if err != nil {
		return err
	}
	v, err := conversion.EnforcePtr(destination)
	if err != nil {
		return fmt.Errorf("unable to convert output object to pointer: %w", err)
	}
	if err := s.b.waitReady(ctx); err != nil {
		return err
	}
	getCurrent := func() (*objState, error) { return s.getState(ctx, preparedKey, v, ignoreNotFound) }

	var orig *objState
	var origIsCurrent bool
	if cachedExistingObject != nil {
		orig, err = s.stateFromObject(ctx, preparedKey, cachedExistingObject)
	} else {
		orig, err = getCurrent()
		origIsCurrent = true
	}
	if err != nil {
		return err
	}
	for {
		if err := preconditions.Check(preparedKey, orig.obj); err != nil {
			if origIsCurrent {
				return err
			}
			if orig, err = getCurrent(); err != nil {
				return err
			}
			origIsCurrent = true
			continue
		}

		ret, ttl, err := tryUpdate(orig.obj, *orig.meta)
		if err == nil && ttl != nil && *ttl != 0 {
			s.warnTTL()
		}
		if err == nil {
			err = s.versioner.PrepareObjectForStorage(ret)
		}
		if err != nil {
			if origIsCurrent {
				return err
			}
			cachedRev, cachedErr := orig.rev, err
			if orig, err = getCurrent(); err != nil {
				return err
			}
			origIsCurrent = true
			if cachedRev == orig.rev {
				return cachedErr
			}
			continue
		}

		data, stored, err := s.encode(ctx, preparedKey, ret)
		if err != nil {
			return err
		}
		if !orig.stale && orig.st.exists && bytes.Equal(data, orig.data) {
			// No change: do not write, but make sure the data we compared
			// with is current.
			if !origIsCurrent {
				if orig, err = getCurrent(); err != nil {
					return err
				}
				origIsCurrent = true
				if !bytes.Equal(data, orig.data) {
					continue
				}
			}
			if !orig.stale {
				return s.decodeInto(orig.data, destination, orig.rev)
			}
		}

		rev, err := s.b.commit(ctx, preparedKey, orig.st, stored, false)
		if errors.Is(err, errConflict) {
			if orig, err = getCurrent(); err != nil {
				return err
			}
			origIsCurrent = true
			continue
		}
		if err != nil {
			return err
		}
		return s.decodeInto(data, destination, rev)
	}
}

// Get implements storage.Interface.
func (s *store) Get(ctx context.Context, key string, opts storage.GetOptions, out runtime.Object) error {
	preparedKey, err := s.prepareKey(key, false)
	if err != nil {
		return err
	}
	if err := s.b.waitReady(ctx); err != nil {
		return err
	}
	if opts.ResourceVersion != "" {
		c, err := s.b.counter(ctx)
		if err != nil {
			return err
		}
		if err := s.validateMinimumResourceVersion(opts.ResourceVersion, uint64(c)); err != nil {
			return err
		}
	}
	st, _, _, err := s.b.current(ctx, preparedKey)
	if err != nil {
		return err
	}
	if !st.exists {
		if opts.IgnoreNotFound {
			return runtime.SetZeroValue(out)
		}
		return storage.NewKeyNotFoundError(preparedKey, 0)
	}
	data, _, err := s.transformer.TransformFromStorage(ctx, st.data, authenticatedDataString(preparedKey))
	if err != nil {
		return storage.NewInternalError(err)
	}
	return s.decodeInto(data, out, st.rev)
}

// validateMinimumResourceVersion returns "too large resource version" when the
// caller asks for data newer than the store has.
func (s *store) validateMinimumResourceVersion(minimumResourceVersion string, actualRevision uint64) error {
	if minimumResourceVersion == "" {
		return nil
	}
	minimumRV, err := s.versioner.ParseResourceVersion(minimumResourceVersion)
	if err != nil {
		return apierrors.NewBadRequest(fmt.Sprintf("invalid resource version: %v", err))
	}
	if minimumRV > actualRevision {
		return storage.NewTooLargeResourceVersionError(minimumRV, actualRevision, 0)
	}
	return nil
}

// Stats implements storage.Interface: the number of objects of the resource.
func (s *store) Stats(ctx context.Context) (storage.Stats, error) {
	prefix, err := s.prepareKey(s.resourcePrefix, true)
	if err != nil {
		return storage.Stats{}, err
	}
	if err := s.b.waitReady(ctx); err != nil {
		return storage.Stats{}, err
	}
	n, err := s.b.count(ctx, prefix)
	if err != nil {
		return storage.Stats{}, err
	}
	return storage.Stats{ObjectCount: n}, nil
}

// ReadinessCheck implements storage.Interface: ready once the system database
// is set up and while the revision log can be read.
func (s *store) ReadinessCheck() error { return s.b.readiness() }

// RequestWatchProgress implements storage.Interface: watches that asked for
// progress notifications get a bookmark as soon as they are caught up.
func (s *store) RequestWatchProgress(context.Context) error {
	s.b.requestProgress()
	return nil
}

// GetCurrentResourceVersion implements storage.Interface. The revision covers
// every write completed before the call.
func (s *store) GetCurrentResourceVersion(ctx context.Context) (uint64, error) {
	rev, err := s.b.consistentRev(ctx)
	if err != nil {
		return 0, err
	}
	if rev == 0 {
		// Nothing was ever written; as etcd, never answer 0.
		return 0, fmt.Errorf("the current resource version must be greater than 0")
	}
	return uint64(rev), nil
}

// EnableResourceSizeEstimation implements storage.Interface. Size estimation
// is not implemented; Stats reports object counts only.
func (s *store) EnableResourceSizeEstimation(storage.KeysFunc) error { return nil }

// CompactRevision implements storage.Interface.
func (s *store) CompactRevision() int64 { return s.b.compactRevision() }

// getNewItemFunc returns a constructor of list items, as etcd3 does.
func getNewItemFunc(listObj runtime.Object, v reflect.Value) func() runtime.Object {
	if ul, ok := listObj.(*unstructured.UnstructuredList); ok {
		if apiVersion := ul.GetAPIVersion(); apiVersion != "" {
			return func() runtime.Object {
				return &unstructured.Unstructured{Object: map[string]any{"apiVersion": apiVersion}}
			}
		}
	}
	elem := v.Type().Elem()
	return func() runtime.Object { return reflect.New(elem).Interface().(runtime.Object) }
}
