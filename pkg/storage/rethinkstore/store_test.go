package rethinkstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/apitesting"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apiserver/pkg/apis/example"
	examplev1 "k8s.io/apiserver/pkg/apis/example/v1"
	"k8s.io/apiserver/pkg/storage/storagebackend"
	storagetesting "k8s.io/apiserver/pkg/storage/testing"
	"k8s.io/apiserver/pkg/storage/value"

	"github.com/guildnet/guildnet/pkg/devenv/reqlite"
	"github.com/guildnet/guildnet/pkg/rethinkdb"
)

var (
	scheme = runtime.NewScheme()
	codecs = serializer.NewCodecFactory(scheme)

	// testAddr is the reqlite server all tests of the package share; each
	// test gets its own database.
	testAddr string
	dbSeq    atomic.Int64
)

const defaultTestPrefix = "test!"

func init() {
	metav1.AddToGroupVersion(scheme, metav1.SchemeGroupVersion)
	utilruntime.Must(example.AddToScheme(scheme))
	utilruntime.Must(examplev1.AddToScheme(scheme))
}

func TestMain(m *testing.M) {
	srv, err := reqlite.Start(context.Background(), reqlite.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	testAddr = srv.Addr
	code := m.Run()
	if err := srv.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	os.Exit(code)
}

func newPod() runtime.Object { return &example.Pod{} }

// testClient connects to the shared reqlite with a fresh system database.
func testClient(t testing.TB) *rethinkdb.Client {
	t.Helper()
	o := rethinkdb.NewOptions()
	o.Address = testAddr
	o.Database = fmt.Sprintf("test_%d", dbSeq.Add(1))
	c, err := o.Connect(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// testOptions make gaps and bookmarks quick, and leave compaction to the tests.
var testOptions = Options{GapTimeout: time.Second, PollInterval: 200 * time.Millisecond, ProgressInterval: time.Second, CompactionInterval: -1}

func testSetupWith(t testing.TB, c *rethinkdb.Client, o Options) (context.Context, *store) {
	t.Helper()
	cfg := &storagebackend.ConfigForResource{
		Config: storagebackend.Config{
			Codec:       apitesting.TestCodec(codecs, examplev1.SchemeGroupVersion),
			Transformer: storagetesting.NewPrefixTransformer([]byte(defaultTestPrefix), false),
		},
		GroupResource: schema.GroupResource{Resource: "pods"},
	}
	si, destroy, err := New(c, o, cfg, "/pods/", newPod)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(destroy)
	s := si.(*store)
	ctx := context.Background()
	if err := s.b.waitReady(ctx); err != nil {
		t.Fatal(err)
	}
	return ctx, s
}

func testSetup(t testing.TB) (context.Context, *store) {
	return testSetupWith(t, testClient(t), testOptions)
}

// storeWithPrefixTransformer lets tests swap the transformer, as etcd3's tests do.
type storeWithPrefixTransformer struct{ *store }

func (s *storeWithPrefixTransformer) UpdatePrefixTransformer(modifier storagetesting.PrefixTransformerModifier) func() {
	orig := s.transformer.(*storagetesting.PrefixTransformer)
	t := *orig
	s.transformer = modifier(&t)
	return func() { s.transformer = orig }
}

// checkStorageInvariants: what is stored is the transformed object, without
// resourceVersion.
func checkStorageInvariants(s *store) storagetesting.KeyValidation {
	return func(ctx context.Context, t *testing.T, key string) {
		st, _, _, err := s.b.current(ctx, key)
		if err != nil {
			t.Fatalf("read %s: %v", key, err)
		}
		if !st.exists {
			t.Fatalf("expecting non empty result on key: %s", key)
		}
		if !strings.HasPrefix(string(st.data), defaultTestPrefix) {
			t.Fatalf("stored data of %s is not transformed: %q", key, st.data)
		}
		decoded, err := runtime.Decode(s.codec, st.data[len(defaultTestPrefix):])
		if err != nil {
			t.Fatalf("expecting successful decode of object from %v\n%v", err, string(st.data))
		}
		if obj := decoded.(*example.Pod); obj.ResourceVersion != "" {
			t.Errorf("stored object should have empty resource version")
		}
	}
}

// compactStorage compacts the revision log up to a resourceVersion.
func compactStorage(s *store) storagetesting.Compaction {
	return func(ctx context.Context, t *testing.T, resourceVersion string) {
		rv, err := s.versioner.ParseResourceVersion(resourceVersion)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.b.compact(ctx, int64(rv)); err != nil {
			t.Fatal(err)
		}
	}
}

// increaseRV writes a key outside the tested resource.
func increaseRV(s *store) storagetesting.IncreaseRVFunc {
	return func(ctx context.Context, t *testing.T) int64 {
		for {
			st, err := s.b.currentForWrite(ctx, "/increaseRV")
			if err != nil {
				t.Fatal(err)
			}
			rev, err := s.b.commit(ctx, "/increaseRV", st, []byte("ok"), false)
			if errors.Is(err, errConflict) {
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			return rev
		}
	}
}

// noCallsValidation: the call counts etcd3 checks are specific to etcd's
// paging; this storage reads a list in one streamed query.
func noCallsValidation(*testing.T, uint64, uint64) {}

// --- upstream conformance suite (k8s.io/apiserver/pkg/storage/testing) ---
//
// Not run, and why:
//   - RunTestCreateWithTTL, RunTestGuaranteedUpdateWithTTL: TTLs (leases) are
//     not supported; guildnet.io resources do not use them.
//   - RunTestGetListWithErrorAggregation, RunTestGetListWithoutErrorAggregation,
//     RunTestDeleteWithConflictAndMissingExpectedTransformOrDecodeError,
//     RunTestDeleteExpectedTransformOrDecodeError,
//     RunTestDeleteWithSuggestionAndMissingExpectedTransformOrDecodeError,
//     RunTestWatchWithUnsafeDelete: the AllowUnsafeMalformedObjectDeletion
//     feature (deleting corrupt objects) is not implemented.
//   - RunTestStats with size estimation: EnableResourceSizeEstimation is a
//     no-op; Stats counts objects only (run below without sizes).

func TestCreate(t *testing.T) {
	ctx, s := testSetup(t)
	storagetesting.RunTestCreate(ctx, t, s, checkStorageInvariants(s))
}

func TestCreateWithKeyExist(t *testing.T) {
	ctx, s := testSetup(t)
	storagetesting.RunTestCreateWithKeyExist(ctx, t, s)
}

func TestGet(t *testing.T) {
	ctx, s := testSetup(t)
	storagetesting.RunTestGet(ctx, t, s)
}

func TestUnconditionalDelete(t *testing.T) {
	ctx, s := testSetup(t)
	storagetesting.RunTestUnconditionalDelete(ctx, t, s)
}

func TestConditionalDelete(t *testing.T) {
	ctx, s := testSetup(t)
	storagetesting.RunTestConditionalDelete(ctx, t, s)
}

func TestDeleteWithSuggestion(t *testing.T) {
	ctx, s := testSetup(t)
	storagetesting.RunTestDeleteWithSuggestion(ctx, t, s)
}

func TestDeleteWithSuggestionAndConflict(t *testing.T) {
	ctx, s := testSetup(t)
	storagetesting.RunTestDeleteWithSuggestionAndConflict(ctx, t, s)
}

func TestDeleteWithSuggestionOfDeletedObject(t *testing.T) {
	ctx, s := testSetup(t)
	storagetesting.RunTestDeleteWithSuggestionOfDeletedObject(ctx, t, s)
}

func TestValidateDeletionWithSuggestion(t *testing.T) {
	ctx, s := testSetup(t)
	storagetesting.RunTestValidateDeletionWithSuggestion(ctx, t, s)
}

func TestValidateDeletionWithOnlySuggestionValid(t *testing.T) {
	ctx, s := testSetup(t)
	storagetesting.RunTestValidateDeletionWithOnlySuggestionValid(ctx, t, s)
}

func TestDeleteWithConflict(t *testing.T) {
	ctx, s := testSetup(t)
	storagetesting.RunTestDeleteWithConflict(ctx, t, s)
}

func TestPreconditionalDeleteWithSuggestion(t *testing.T) {
	ctx, s := testSetup(t)
	storagetesting.RunTestPreconditionalDeleteWithSuggestion(ctx, t, s)
}

func TestPreconditionalDeleteWithOnlySuggestionPass(t *testing.T) {
	ctx, s := testSetup(t)
	storagetesting.RunTestPreconditionalDeleteWithOnlySuggestionPass(ctx, t, s)
}

func TestGuaranteedUpdate(t *testing.T) {
	ctx, s := testSetup(t)
	storagetesting.RunTestGuaranteedUpdate(ctx, t, &storeWithPrefixTransformer{s}, checkStorageInvariants(s))
}

func TestGuaranteedUpdateChecksStoredData(t *testing.T) {
	ctx, s := testSetup(t)
	storagetesting.RunTestGuaranteedUpdateChecksStoredData(ctx, t, &storeWithPrefixTransformer{s})
}

func TestGuaranteedUpdateWithConflict(t *testing.T) {
	ctx, s := testSetup(t)
	storagetesting.RunTestGuaranteedUpdateWithConflict(ctx, t, s)
}

func TestGuaranteedUpdateWithSuggestionAndConflict(t *testing.T) {
	ctx, s := testSetup(t)
	storagetesting.RunTestGuaranteedUpdateWithSuggestionAndConflict(ctx, t, s)
}

func TestTransformationFailure(t *testing.T) {
	ctx, s := testSetup(t)
	storagetesting.RunTestTransformationFailure(ctx, t, &storeWithPrefixTransformer{s})
}

func TestList(t *testing.T) {
	ctx, s := testSetup(t)
	storagetesting.RunTestList(ctx, t, s, compactStorage(s), false, nil)
}

func TestConsistentList(t *testing.T) {
	ctx, s := testSetup(t)
	storagetesting.RunTestConsistentList(ctx, t, s, increaseRV(s), false, true, false)
}

func TestGetListNonRecursive(t *testing.T) {
	ctx, s := testSetup(t)
	storagetesting.RunTestGetListNonRecursive(ctx, t, increaseRV(s), s)
}

func TestGetListRecursivePrefix(t *testing.T) {
	ctx, s := testSetup(t)
	storagetesting.RunTestGetListRecursivePrefix(ctx, t, s)
}

func TestKeySchema(t *testing.T) {
	ctx, s := testSetup(t)
	storagetesting.RunTestKeySchema(ctx, t, s)
}

func TestListContinuation(t *testing.T) {
	ctx, s := testSetup(t)
	storagetesting.RunTestListContinuation(ctx, t, s, noCallsValidation)
}

func TestListPaginationRareObject(t *testing.T) {
	ctx, s := testSetup(t)
	storagetesting.RunTestListPaginationRareObject(ctx, t, s, noCallsValidation)
}

func TestListContinuationWithFilter(t *testing.T) {
	ctx, s := testSetup(t)
	storagetesting.RunTestListContinuationWithFilter(ctx, t, s, noCallsValidation)
}

func TestListInconsistentContinuation(t *testing.T) {
	ctx, s := testSetup(t)
	storagetesting.RunTestListInconsistentContinuation(ctx, t, s, compactStorage(s))
}

func TestListResourceVersionMatch(t *testing.T) {
	ctx, s := testSetup(t)
	storagetesting.RunTestListResourceVersionMatch(ctx, t, &storeWithPrefixTransformer{s})
}

func TestListPaging(t *testing.T) {
	ctx, s := testSetup(t)
	storagetesting.RunTestListPaging(ctx, t, s)
}

func TestNamespaceScopedList(t *testing.T) {
	ctx, s := testSetup(t)
	storagetesting.RunTestNamespaceScopedList(ctx, t, s)
}

func TestCompactRevision(t *testing.T) {
	ctx, s := testSetup(t)
	storagetesting.RunTestCompactRevision(ctx, t, s, increaseRV(s), compactStorage(s))
}

func TestStats(t *testing.T) {
	ctx, s := testSetup(t)
	storagetesting.RunTestStats(ctx, t, s, s.codec, s.transformer, false)
}

func TestWatch(t *testing.T) {
	run := func(name string, f func(ctx context.Context, t *testing.T, s *store)) {
		t.Run(name, func(t *testing.T) {
			ctx, s := testSetup(t)
			f(ctx, t, s)
		})
	}
	run("Watch", func(ctx context.Context, t *testing.T, s *store) { storagetesting.RunTestWatch(ctx, t, s) })
	run("ClusterScopedWatch", func(ctx context.Context, t *testing.T, s *store) { storagetesting.RunTestClusterScopedWatch(ctx, t, s) })
	run("NamespaceScopedWatch", func(ctx context.Context, t *testing.T, s *store) {
		storagetesting.RunTestNamespaceScopedWatch(ctx, t, s)
	})
	run("DeleteTriggerWatch", func(ctx context.Context, t *testing.T, s *store) { storagetesting.RunTestDeleteTriggerWatch(ctx, t, s) })
	run("WatchFromZero", func(ctx context.Context, t *testing.T, s *store) {
		storagetesting.RunTestWatchFromZero(ctx, t, s, compactStorage(s))
	})
	run("WatchFromNonZero", func(ctx context.Context, t *testing.T, s *store) { storagetesting.RunTestWatchFromNonZero(ctx, t, s) })
	run("DelayedWatchDelivery", func(ctx context.Context, t *testing.T, s *store) {
		storagetesting.RunTestDelayedWatchDelivery(ctx, t, s)
	})
	run("WatchError", func(ctx context.Context, t *testing.T, s *store) {
		storagetesting.RunTestWatchError(ctx, t, &storeWithPrefixTransformer{s})
	})
	run("WatchContextCancel", func(ctx context.Context, t *testing.T, s *store) { storagetesting.RunTestWatchContextCancel(ctx, t, s) })
	run("WatcherTimeout", func(ctx context.Context, t *testing.T, s *store) { storagetesting.RunTestWatcherTimeout(ctx, t, s) })
	run("WatchDeleteEventObjectHaveLatestRV", func(ctx context.Context, t *testing.T, s *store) {
		storagetesting.RunTestWatchDeleteEventObjectHaveLatestRV(ctx, t, s)
	})
	run("WatchInitializationSignal", func(ctx context.Context, t *testing.T, s *store) {
		storagetesting.RunTestWatchInitializationSignal(ctx, t, s)
	})
	run("ProgressNotify", func(ctx context.Context, t *testing.T, s *store) {
		storagetesting.RunOptionalTestProgressNotify(ctx, t, s, increaseRV(s))
	})
	run("WatchDispatchBookmarkEvents", func(ctx context.Context, t *testing.T, s *store) {
		storagetesting.RunTestWatchDispatchBookmarkEvents(ctx, t, s, true)
	})
	run("SendInitialEventsBackwardCompatibility", func(ctx context.Context, t *testing.T, s *store) {
		storagetesting.RunSendInitialEventsBackwardCompatibility(ctx, t, s)
	})
	run("WatchSemantics", func(ctx context.Context, t *testing.T, s *store) { storagetesting.RunWatchSemantics(ctx, t, s) })
	run("WatchSemanticInitialEventsExtended", func(ctx context.Context, t *testing.T, s *store) {
		storagetesting.RunWatchSemanticInitialEventsExtended(ctx, t, s)
	})
	run("WatchListMatchSingle", func(ctx context.Context, t *testing.T, s *store) { storagetesting.RunWatchListMatchSingle(ctx, t, s) })
	run("WatchErrorIsBlockingFurtherEvents", func(ctx context.Context, t *testing.T, s *store) {
		storagetesting.RunWatchErrorIsBlockingFurtherEvents(ctx, t, &storeWithPrefixTransformer{s})
	})
}

var _ value.Transformer = (*storagetesting.PrefixTransformer)(nil)
