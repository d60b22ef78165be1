package controller

import (
	"context"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metainternalversion "k8s.io/apimachinery/pkg/apis/meta/internalversion"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/registry/rest"
	toolscache "k8s.io/client-go/tools/cache"

	"github.com/guildnet/guildnet/apis/guildnet"
	"github.com/guildnet/guildnet/apis/guildnet/v1alpha1"
	"github.com/guildnet/guildnet/pkg/apiserver"
)

// fakeRegistry answers as a registry does: a list, or a watch that starts
// with the current state when asked to (informers ask first).
type fakeRegistry struct {
	rest.Lister                      // only List is called
	items       []guildnet.Workspace // internal objects, as the registry returns them

	mu         sync.Mutex
	namespaces []string // of each request's context; "<none>" when unset
	selectors  []string
	watcher    *watch.FakeWatcher
}

func (f *fakeRegistry) record(ctx context.Context, opts *metainternalversion.ListOptions) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ns, ok := genericapirequest.NamespaceFrom(ctx)
	if !ok {
		ns = "<none>"
	}
	f.namespaces = append(f.namespaces, ns)
	f.selectors = append(f.selectors, opts.LabelSelector.String())
}

func (f *fakeRegistry) List(ctx context.Context, opts *metainternalversion.ListOptions) (runtime.Object, error) {
	f.record(ctx, opts)
	return &guildnet.WorkspaceList{ListMeta: metav1.ListMeta{ResourceVersion: "10"}, Items: f.items}, nil
}

func (f *fakeRegistry) Watch(ctx context.Context, opts *metainternalversion.ListOptions) (watch.Interface, error) {
	f.record(ctx, opts)
	w := watch.NewFakeWithChanSize(len(f.items)+1, false)
	if opts.SendInitialEvents != nil && *opts.SendInitialEvents {
		for i := range f.items {
			w.Add(f.items[i].DeepCopy())
		}
		end := &guildnet.Workspace{ObjectMeta: metav1.ObjectMeta{ResourceVersion: "10",
			Annotations: map[string]string{metav1.InitialEventsAnnotationKey: "true"}}}
		w.Action(watch.Bookmark, end)
	}
	f.mu.Lock()
	f.watcher = w
	f.mu.Unlock()
	return w, nil
}

func (f *fakeRegistry) currentWatcher() *watch.FakeWatcher {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.watcher
}

// cacheable wraps an object the way the watch cache does for its watchers.
type cacheable struct {
	runtime.Object
}

func (c cacheable) CacheEncode(_ runtime.Identifier, encode func(runtime.Object, io.Writer) error, w io.Writer) error {
	return encode(c.Object, w)
}

func (c cacheable) GetObject() runtime.Object { return c.Object.DeepCopyObject() }

// The reconcilers' informers of guildnet.io kinds read this process's
// registry, in all namespaces and with the informer's selector, and hold
// the objects themselves in their version, not the watch cache's wrappers
// of internal objects; informers of other kinds keep the ListerWatcher
// they were given (kube-apiserver).
func TestInformersOfOwnKindsReadTheRegistry(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	reg := &fakeRegistry{items: []guildnet.Workspace{
		{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "one", ResourceVersion: "9"}},
	}}
	kube := &toolscache.ListWatch{
		ListWithContextFunc: func(context.Context, metav1.ListOptions) (runtime.Object, error) {
			t.Error("the Workspace informer listed through the ListerWatcher it was given")
			return &v1alpha1.WorkspaceList{}, nil
		},
		WatchFuncWithContext: func(context.Context, metav1.ListOptions) (watch.Interface, error) {
			t.Error("the Workspace informer watched through the ListerWatcher it was given")
			return watch.NewFake(), nil
		},
	}
	newInformer := newInformerFunc(Scheme(), Registries{
		Kinds:     map[schema.GroupVersionKind]Registry{v1alpha1.SchemeGroupVersion.WithKind("Workspace"): reg},
		Convertor: apiserver.Scheme,
	})

	informer := newInformer(kube, &v1alpha1.Workspace{}, 0, toolscache.Indexers{})
	go informer.RunWithContext(ctx)
	if !toolscache.WaitForCacheSync(ctx.Done(), informer.HasSynced) {
		t.Fatal("the Workspace informer never synced")
	}
	if _, ok, _ := informer.GetStore().GetByKey("a/one"); !ok {
		t.Fatalf("the informer does not hold a/one; it holds %v", informer.GetStore().ListKeys())
	}

	// An update arrives wrapped, as from the watch cache.
	changed := reg.items[0].DeepCopy()
	changed.ResourceVersion, changed.Labels = "11", map[string]string{"changed": "yes"}
	reg.currentWatcher().Modify(cacheable{changed})
	if err := wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		obj, _, _ := informer.GetStore().GetByKey("a/one")
		ws, ok := obj.(*v1alpha1.Workspace)
		if !ok {
			t.Fatalf("the informer holds a %T, want *v1alpha1.Workspace", obj)
		}
		return ws.Labels["changed"] == "yes", nil
	}); err != nil {
		t.Fatalf("the informer never saw the update: %v", err)
	}

	reg.mu.Lock()
	for i, ns := range reg.namespaces {
		if ns != metav1.NamespaceAll {
			t.Errorf("request %d read namespace %q, want all namespaces", i, ns)
		}
	}
	reg.mu.Unlock()

	// Another kind keeps the given ListerWatcher.
	listed := make(chan struct{}, 1)
	other := &toolscache.ListWatch{
		ListWithContextFunc: func(context.Context, metav1.ListOptions) (runtime.Object, error) {
			select {
			case listed <- struct{}{}:
			default:
			}
			return &corev1.ConfigMapList{ListMeta: metav1.ListMeta{ResourceVersion: "1"}}, nil
		},
		WatchFuncWithContext: func(_ context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			select {
			case listed <- struct{}{}:
			default:
			}
			w := watch.NewFakeWithChanSize(1, false)
			if opts.SendInitialEvents != nil && *opts.SendInitialEvents {
				w.Action(watch.Bookmark, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{ResourceVersion: "1",
					Annotations: map[string]string{metav1.InitialEventsAnnotationKey: "true"}}})
			}
			return w, nil
		},
	}
	configMaps := newInformer(other, &corev1.ConfigMap{}, 0, toolscache.Indexers{})
	go configMaps.RunWithContext(ctx)
	select {
	case <-listed:
	case <-time.After(10 * time.Second):
		t.Fatal("the ConfigMap informer never used the ListerWatcher it was given")
	}
}

// The list options an informer sends reach the registry: its label
// selector selects there, as it would over HTTP.
func TestRegistryListerWatcherPassesTheSelector(t *testing.T) {
	reg := &fakeRegistry{}
	lw := registryListerWatcher{reg: reg, convertor: apiserver.Scheme, version: v1alpha1.SchemeGroupVersion}
	if _, err := lw.ListWithContext(context.Background(), metav1.ListOptions{LabelSelector: "guildnet.io/workspace"}); err != nil {
		t.Fatal(err)
	}
	if _, err := lw.WatchWithContext(context.Background(), metav1.ListOptions{LabelSelector: "x=y", ResourceVersion: "3"}); err != nil {
		t.Fatal(err)
	}
	if want := []string{"guildnet.io/workspace", "x=y"}; len(reg.selectors) != 2 || reg.selectors[0] != want[0] || reg.selectors[1] != want[1] {
		t.Errorf("the registry saw selectors %q, want %q", reg.selectors, want)
	}
	if _, err := lw.ListWithContext(context.Background(), metav1.ListOptions{LabelSelector: "=bad="}); err == nil {
		t.Error("an unparsable selector was accepted")
	}
}

// storageOnly is a REST storage that neither lists nor watches.
type storageOnly struct{}

func (storageOnly) New() runtime.Object { return &guildnet.Workspace{} }
func (storageOnly) Destroy()            {}

// registryStorage is a REST storage that lists and watches.
type registryStorage struct {
	storageOnly
	*fakeRegistry
}

// The reconcilers take each kind's registry from the server's storage by
// resource; a storage that cannot list and watch is an error naming it.
func TestOwnRegistriesFromTheServersStorage(t *testing.T) {
	storage := map[string]rest.Storage{
		"workspaces": registryStorage{fakeRegistry: &fakeRegistry{}}, "workspaces/status": storageOnly{},
		"databases": registryStorage{fakeRegistry: &fakeRegistry{}}, "tables": registryStorage{fakeRegistry: &fakeRegistry{}},
	}
	own, err := OwnRegistries(storage, apiserver.Scheme)
	if err != nil {
		t.Fatal(err)
	}
	for resource, kind := range map[string]string{"workspaces": "Workspace", "databases": "Database", "tables": "Table"} {
		if got := own.Kinds[v1alpha1.SchemeGroupVersion.WithKind(kind)]; got != storage[resource].(Registry) {
			t.Errorf("%s's registry is not the %s storage", kind, resource)
		}
	}
	if len(own.Kinds) != 3 || own.Convertor != apiserver.Scheme {
		t.Errorf("registries = %v, want the three kinds and the server's scheme", own)
	}

	storage["tables"] = storageOnly{}
	if _, err := OwnRegistries(storage, apiserver.Scheme); err == nil || !strings.Contains(err.Error(), "tables storage") {
		t.Fatalf("with a tables storage that cannot list: %v, want an error naming it", err)
	}
}
