package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"

	"github.com/guildnet/guildnet/apis/guildnet"
	"github.com/guildnet/guildnet/apis/guildnet/v1alpha1"
	guildnetclient "github.com/guildnet/guildnet/generated/clientset/versioned"
	guildnetinformers "github.com/guildnet/guildnet/generated/informers/externalversions"
	"github.com/guildnet/guildnet/pkg/controller/workspace"
)

const (
	// benchInFlight bounds the concurrent Create (and Delete) calls of a burst.
	benchInFlight = 10
	// benchWaitLimit bounds the wait for every workspace's objects, so a
	// stuck reconciler ends the run with an error instead of a hang.
	benchWaitLimit = 5 * time.Minute
	// benchImage is what the workspaces run: code-server, the default use,
	// so each reconcile also generates a password Secret.
	benchImage = "codercom/code-server:4.100.3"
)

// benchBurst creates n workspaces in namespace in a burst (at most
// benchInFlight Create calls at a time) and measures, for each, the time
// from its Create call returning until both its Deployment and its Service
// exist, as seen by informers started before the burst. The durations are
// in creation order. What the burst made is deleted before it returns, also
// after an error.
//
// With floor set, the bench plays a reconciler that costs nothing: each
// Create is a dry run (the same path through kube-apiserver to
// guildnet-apiserver, but nothing is stored, so the real reconciler never
// sees it), and the moment it returns the bench sends the very writes the
// reconciler would (the password Secret, the Deployment and Service
// server-side applies, at once), without owner references. No queue, cache
// or status write sits in between, so no reconciler that makes these
// objects can do better on the same machine.
func benchBurst(ctx context.Context, cfg *rest.Config, namespace string, n int, floor bool) (createToReady []time.Duration, err error) {
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	gn, err := guildnetclient.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	workspaces := gn.GuildnetV1alpha1().Workspaces(namespace)
	t := newReadyTracker(n)

	// Informers on what the reconciler makes, started and synced first so
	// that no object of the burst is missed.
	informerCtx, stopInformers := context.WithCancel(ctx)
	factory := informers.NewSharedInformerFactoryWithOptions(kube, 0,
		informers.WithNamespace(namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = guildnet.WorkspaceLabel }))
	defer func() {
		stopInformers()
		factory.Shutdown()
	}()
	for _, inf := range []struct {
		informer toolscache.SharedIndexInformer
		seen     map[string]time.Time
	}{
		{factory.Apps().V1().Deployments().Informer(), t.deployment},
		{factory.Core().V1().Services().Informer(), t.service},
	} {
		seen := inf.seen
		if _, err := inf.informer.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
			AddFunc: func(obj any) { t.saw(seen, workspaceOf(obj)) },
		}); err != nil {
			return nil, err
		}
	}
	// When each workspace's ADDED event reaches a watcher: the part of the
	// latency that is guildnet-apiserver's storage and watch, before the
	// reconciler can act. The floor's dry-run creates store nothing, so
	// there is nothing to watch then.
	if !floor {
		gnFactory := guildnetinformers.NewSharedInformerFactoryWithOptions(gn, 0, guildnetinformers.WithNamespace(namespace))
		defer func() {
			stopInformers() // Shutdown waits for the informers to stop
			gnFactory.Shutdown()
		}()
		if _, err := gnFactory.Guildnet().V1alpha1().Workspaces().Informer().AddEventHandler(toolscache.ResourceEventHandlerFuncs{
			AddFunc: func(obj any) { t.sawWatch(obj.(*v1alpha1.Workspace).Name) },
		}); err != nil {
			return nil, err
		}
		gnFactory.Start(informerCtx.Done())
		for typ, ok := range gnFactory.WaitForCacheSync(informerCtx.Done()) {
			if !ok {
				return nil, fmt.Errorf("the %v informer in namespace %s did not sync: %w", typ, namespace, context.Cause(informerCtx))
			}
		}
	}
	factory.Start(informerCtx.Done())
	for typ, ok := range factory.WaitForCacheSync(informerCtx.Done()) {
		if !ok {
			return nil, fmt.Errorf("the %v informer in namespace %s did not sync: %w", typ, namespace, context.Cause(informerCtx))
		}
	}

	// The burst.
	var (
		mu        sync.Mutex
		names     []string
		createErr []error
		wg        sync.WaitGroup
		slots     = make(chan struct{}, benchInFlight)
		opts      metav1.CreateOptions
	)
	failed := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		createErr = append(createErr, err)
	}
	if floor {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	for i := 0; i < n; i++ {
		slots <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-slots; wg.Done() }()
			ws, err := workspaces.Create(ctx, &v1alpha1.Workspace{
				ObjectMeta: metav1.ObjectMeta{GenerateName: "bench-"},
				Spec:       v1alpha1.WorkspaceSpec{Image: benchImage},
			}, opts)
			if err != nil {
				failed(err)
				return
			}
			t.created(ws.Name)
			mu.Lock()
			names = append(names, ws.Name)
			mu.Unlock()
			if floor {
				// Like the reconciler's writes, these do not hold up the
				// next Create.
				wg.Go(func() {
					took, err := writeChildren(ctx, kube, ws)
					if err != nil {
						failed(fmt.Errorf("writing the objects of workspace %s: %w", ws.Name, err))
						return
					}
					mu.Lock()
					defer mu.Unlock()
					for kind, d := range took {
						floorWrites[kind] = append(floorWrites[kind], d)
					}
				})
			}
		}()
	}
	wg.Wait()
	defer func() {
		cleanup := deleteWorkspaces
		if floor {
			cleanup = deleteChildren
		}
		if derr := cleanup(ctx, kube, gn, namespace, names); derr != nil {
			err = errors.Join(err, derr)
		}
	}()
	if len(createErr) > 0 {
		return nil, fmt.Errorf("%d writes of the burst of %d workspaces failed, the first: %w", len(createErr), n, createErr[0])
	}

	waitCtx, cancel := context.WithTimeout(ctx, benchWaitLimit)
	defer cancel()
	for ready := 0; ready < len(names); ready++ {
		select {
		case <-t.complete:
		case <-waitCtx.Done():
			hint := "is the workspace reconciler running (guildnet-apiserver --reconcile)?"
			if floor {
				hint = "kube-apiserver accepted the writes but its watch did not deliver them"
			}
			return nil, fmt.Errorf("only %d of %d workspaces got their Deployment and Service within %s: %s %w",
				ready, len(names), benchWaitLimit, hint, context.Cause(waitCtx))
		}
	}
	if !floor {
		watchDelay = append(watchDelay, t.watchDelays(names)...)
	}
	return t.durations(names), nil
}

// watchDelay is added to by benchBurst: Create → ADDED event per workspace.
var watchDelay []time.Duration

// floorWrites is added to by the floor's bursts: per kind, how long each
// workspace's write of it took to return. The slowest kind bounds the most
// lenient reading of "exists".
var floorWrites = map[string][]time.Duration{}

// workspaceOf is the workspace an informer's object belongs to.
func workspaceOf(obj any) string {
	switch o := obj.(type) {
	case *appsv1.Deployment:
		return o.Labels[guildnet.WorkspaceLabel]
	case *corev1.Service:
		return o.Labels[guildnet.WorkspaceLabel]
	}
	return ""
}

// readyTracker records when each workspace's Create returned and when its
// Deployment and Service were first seen, in whichever order they come.
type readyTracker struct {
	mu                             sync.Mutex
	createdAt, deployment, service map[string]time.Time
	watched                        map[string]time.Time
	done                           map[string]bool
	// complete receives each workspace once all three are known.
	complete chan string
}

func newReadyTracker(n int) *readyTracker {
	return &readyTracker{
		createdAt: map[string]time.Time{}, deployment: map[string]time.Time{}, service: map[string]time.Time{}, watched: map[string]time.Time{},
		done: map[string]bool{}, complete: make(chan string, n),
	}
}

func (t *readyTracker) created(name string) { t.saw(t.createdAt, name) }

func (t *readyTracker) sawWatch(name string) {
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.watched[name]; !ok {
		t.watched[name] = now
	}
}

// watchDelays are, per name, from Create returning to a watcher getting
// the workspace's ADDED event (zero if it came first).
func (t *readyTracker) watchDelays(names []string) []time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []time.Duration
	for _, name := range names {
		if w, ok := t.watched[name]; ok {
			out = append(out, max(w.Sub(t.createdAt[name]), 0))
		}
	}
	return out
}

func (t *readyTracker) saw(m map[string]time.Time, name string) {
	if name == "" {
		return
	}
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := m[name]; !ok {
		m[name] = now
	}
	_, c := t.createdAt[name]
	_, d := t.deployment[name]
	_, s := t.service[name]
	// Only workspaces of this burst have a creation time, so at most n
	// names complete and the send never blocks.
	if c && d && s && !t.done[name] {
		t.done[name] = true
		t.complete <- name
	}
}

// durations are, per name, from Create returning to the later of the
// Deployment and the Service; zero if both were seen before Create returned.
func (t *readyTracker) durations(names []string) []time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]time.Duration, 0, len(names))
	for _, name := range names {
		last := t.deployment[name]
		if s := t.service[name]; s.After(last) {
			last = s
		}
		out = append(out, max(last.Sub(t.createdAt[name]), 0))
	}
	return out
}

// deleteWorkspaces deletes the named workspaces, even when ctx has ended,
// and waits for the garbage collector to remove their objects.
func deleteWorkspaces(ctx context.Context, kube kubernetes.Interface, gn guildnetclient.Interface, namespace string, names []string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	var (
		mu    sync.Mutex
		errs  []error
		wg    sync.WaitGroup
		slots = make(chan struct{}, benchInFlight)
	)
	for _, name := range names {
		slots <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-slots; wg.Done() }()
			err := gn.GuildnetV1alpha1().Workspaces(namespace).Delete(ctx, name, metav1.DeleteOptions{})
			if err != nil && !apierrors.IsNotFound(err) {
				mu.Lock()
				errs = append(errs, fmt.Errorf("deleting workspace %s/%s: %w", namespace, name, err))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return waitForNone(ctx, kube, namespace, guildnet.WorkspaceLabel)
}

// waitForNone waits until no Deployment, ReplicaSet, pod or Service
// labelled with key is left in namespace: the garbage collector's deletes
// after one burst must not run during the next, measured one.
func waitForNone(ctx context.Context, kube kubernetes.Interface, namespace, key string) error {
	opts := metav1.ListOptions{LabelSelector: key}
	left := func(ctx context.Context) (int, error) {
		deps, err := kube.AppsV1().Deployments(namespace).List(ctx, opts)
		if err != nil {
			return 0, err
		}
		sets, err := kube.AppsV1().ReplicaSets(namespace).List(ctx, opts)
		if err != nil {
			return 0, err
		}
		pods, err := kube.CoreV1().Pods(namespace).List(ctx, opts)
		if err != nil {
			return 0, err
		}
		svcs, err := kube.CoreV1().Services(namespace).List(ctx, opts)
		if err != nil {
			return 0, err
		}
		return len(deps.Items) + len(sets.Items) + len(pods.Items) + len(svcs.Items), nil
	}
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, benchWaitLimit, true, func(ctx context.Context) (bool, error) {
		n, err := left(ctx)
		return n == 0, err
	})
	if err != nil {
		countCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		n, _ := left(countCtx)
		return fmt.Errorf("%d objects labelled %s are still in namespace %s after the burst: is kube-controller-manager's garbage collector running? %w", n, key, namespace, err)
	}
	return nil
}

// writeChildren sends, for a workspace the bench created as a dry run,
// the writes the reconciler sends for a new one, the way it sends them, and
// returns how long each took to return, by kind. The owner references go:
// the workspace does not exist, and the garbage collector would delete the
// objects during the burst.
func writeChildren(ctx context.Context, kube kubernetes.Interface, ws *v1alpha1.Workspace) (map[string]time.Duration, error) {
	secret := workspace.PasswordSecretObject(ws)
	secret.OwnerReferences = nil
	dep, svc := workspace.Deployment(ws), workspace.Service(ws)
	dep.OwnerReferences, svc.OwnerReferences = nil, nil
	apply := metav1.ApplyOptions{FieldManager: workspace.FieldOwner, Force: true}
	var (
		mu   sync.Mutex
		took = map[string]time.Duration{}
		errs []error
		wg   sync.WaitGroup
	)
	write := func(kind string, send func() error) {
		wg.Go(func() {
			start := time.Now()
			err := send()
			mu.Lock()
			defer mu.Unlock()
			took[kind] = time.Since(start)
			errs = append(errs, err)
		})
	}
	write("Secret", func() error {
		_, err := kube.CoreV1().Secrets(ws.Namespace).Create(ctx, secret, metav1.CreateOptions{FieldManager: workspace.FieldOwner})
		return err
	})
	write("Deployment", func() error {
		_, err := kube.AppsV1().Deployments(ws.Namespace).Apply(ctx, dep, apply)
		return err
	})
	write("Service", func() error {
		_, err := kube.CoreV1().Services(ws.Namespace).Apply(ctx, svc, apply)
		return err
	})
	wg.Wait()
	return took, errors.Join(errs...)
}

// deleteChildren deletes what writeChildren made for the named workspaces
// and waits until kube-controller-manager has removed their ReplicaSets and
// pods.
func deleteChildren(ctx context.Context, kube kubernetes.Interface, _ guildnetclient.Interface, namespace string, names []string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	var errs []error
	for _, name := range names {
		for _, err := range []error{
			kube.AppsV1().Deployments(namespace).Delete(ctx, name, metav1.DeleteOptions{}),
			kube.CoreV1().Services(namespace).Delete(ctx, name, metav1.DeleteOptions{}),
			kube.CoreV1().Secrets(namespace).Delete(ctx, guildnet.WorkspacePasswordSecretName(name), metav1.DeleteOptions{}),
		} {
			if err != nil && !apierrors.IsNotFound(err) {
				errs = append(errs, err)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("deleting the floor's objects in namespace %s: %w", namespace, err)
	}
	return waitForNone(ctx, kube, namespace, guildnet.WorkspaceLabel)
}
