package workspace

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlcontroller "sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/guildnet/guildnet/apis/guildnet"
	"github.com/guildnet/guildnet/apis/guildnet/v1alpha1"
)

// maxConcurrentReconciles: a reconcile mostly waits on kube-apiserver, so
// a burst of new workspaces is served in parallel.
const maxConcurrentReconciles = 32

// Reconciler keeps each Workspace's Deployment, Service, home claim and
// password Secret in line with its spec, and its status with what they do.
type Reconciler struct {
	// Client reads Workspaces (cached) and writes everything.
	Client client.Client
	// APIReader reads a Workspace uncached, where a decision must not rest
	// on a stale copy: before suspending it for idleness, and after a
	// conflicting status write. Defaults to the manager's.
	APIReader client.Reader
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// DefaultImagePullPolicy is the pull policy of workspaces that set
	// none; empty leaves it to Kubernetes (IfNotPresent unless the tag is
	// latest). A cluster whose images are loaded onto its nodes, not pulled
	// (the local dev cluster), sets Never.
	DefaultImagePullPolicy corev1.PullPolicy

	// children caches only the objects labelled guildnet.io/workspace, so
	// the reconciler never holds every pod or Secret of the cluster.
	children client.Reader
	// applied remembers, per child object, what this process last applied
	// to it (see applyIfChanged).
	applied sync.Map // childKey -> appliedChild
}

// SetupWithManager registers the reconciler and its cache of labelled
// objects. A change of a workspace's Deployment, Service, claim, Secret or
// pods wakes the workspace, so status follows.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Client == nil {
		r.Client = mgr.GetClient()
	}
	if r.APIReader == nil {
		r.APIReader = mgr.GetAPIReader()
	}
	labelled, err := labels.NewRequirement(guildnet.WorkspaceLabel, selection.Exists, nil)
	if err != nil {
		return err
	}
	selector := labels.NewSelector().Add(*labelled)
	children, err := cache.New(mgr.GetConfig(), cache.Options{
		HTTPClient:           mgr.GetHTTPClient(),
		Scheme:               mgr.GetScheme(),
		Mapper:               mgr.GetRESTMapper(),
		DefaultLabelSelector: selector,
		DefaultTransform:     metadataTrimmed,
		ByObject: map[client.Object]cache.ByObject{
			&appsv1.Deployment{}: {Label: selector, Transform: deploymentReadyCountOnly},
			&corev1.Service{}:    {Label: selector, Transform: serviceAddressOnly},
			&corev1.Pod{}:        {Label: selector, Transform: podStatusOnly},
			&corev1.Secret{}:     {Label: selector, Transform: secretMetadataOnly},
		},
	})
	if err != nil {
		return fmt.Errorf("setting up the workspace reconciler's cache: %w", err)
	}
	if err := mgr.Add(children); err != nil {
		return err
	}
	r.children = children

	wake := handler.EnqueueRequestsFromMapFunc(workspaceOf)
	b := ctrl.NewControllerManagedBy(mgr).Named("workspace").
		For(&v1alpha1.Workspace{}).
		WithOptions(ctrlcontroller.Options{MaxConcurrentReconciles: maxConcurrentReconciles})
	for _, obj := range []client.Object{&appsv1.Deployment{}, &corev1.Service{}, &corev1.PersistentVolumeClaim{}, &corev1.Secret{}, &corev1.Pod{}} {
		b = b.WatchesRawSource(source.Kind[client.Object](children, obj, wake))
	}
	return b.Complete(r)
}

// podStatusOnly keeps of a cached pod what the workspace's status is made
// of: its identity, labels, creation and deletion times, whether it is
// scheduled, and its containers that wait (with why, their image and how
// they last ended). A thousand workspaces' pods otherwise hold their whole
// specs, addresses, field ownership and every container's state in this
// process for nothing. TestPodStatusOnlyKeepsWhatStatusReads holds
// podFailure to reading nothing more.
func podStatusOnly(obj any) (any, error) {
	if pod, ok := obj.(*corev1.Pod); ok {
		dropUnreadMetadata(pod)
		pod.Spec = corev1.PodSpec{}
		var scheduled []corev1.PodCondition
		for _, c := range pod.Status.Conditions {
			if c.Type == corev1.PodScheduled {
				scheduled = append(scheduled, corev1.PodCondition{Type: c.Type, Status: c.Status, Reason: c.Reason, Message: c.Message})
			}
		}
		pod.Status = corev1.PodStatus{
			Conditions:            scheduled,
			InitContainerStatuses: waitingOnly(pod.Status.InitContainerStatuses),
			ContainerStatuses:     waitingOnly(pod.Status.ContainerStatuses),
		}
	}
	return obj, nil
}

// waitingOnly keeps, of the containers that wait, what containerFailure
// reads.
func waitingOnly(statuses []corev1.ContainerStatus) []corev1.ContainerStatus {
	var out []corev1.ContainerStatus
	for _, cs := range statuses {
		if cs.State.Waiting == nil {
			continue
		}
		kept := corev1.ContainerStatus{Name: cs.Name, Image: cs.Image, State: corev1.ContainerState{Waiting: cs.State.Waiting}}
		if t := cs.LastTerminationState.Terminated; t != nil {
			kept.LastTerminationState.Terminated = &corev1.ContainerStateTerminated{ExitCode: t.ExitCode, Reason: t.Reason}
		}
		out = append(out, kept)
	}
	return out
}

// deploymentReadyCountOnly keeps of a cached Deployment its identity,
// labels, generation and ready replicas: the count is all of its status the
// workspace reports, and applyIfChanged tells a change from a status-only
// wake-up by the generation, not by the spec, which is most of a
// Deployment's memory.
func deploymentReadyCountOnly(obj any) (any, error) {
	if d, ok := obj.(*appsv1.Deployment); ok {
		dropUnreadMetadata(d)
		d.Spec = appsv1.DeploymentSpec{}
		d.Status = appsv1.DeploymentStatus{ReadyReplicas: d.Status.ReadyReplicas}
	}
	return obj, nil
}

// serviceAddressOnly keeps of a cached Service its identity, labels and
// cluster IP, which the workspace's status reports (with the DNS name made
// from the identity); applyIfChanged goes by the resourceVersion.
func serviceAddressOnly(obj any) (any, error) {
	if s, ok := obj.(*corev1.Service); ok {
		dropUnreadMetadata(s)
		s.Spec = corev1.ServiceSpec{ClusterIP: s.Spec.ClusterIP}
		s.Status = corev1.ServiceStatus{}
	}
	return obj, nil
}

// dropUnreadMetadata drops the metadata the reconciler never reads of its
// children: field ownership, annotations and owners. It finds a child's
// workspace by label, and applyIfChanged goes by version, not by content.
func dropUnreadMetadata(o metav1.Object) {
	o.SetManagedFields(nil)
	o.SetAnnotations(nil)
	o.SetOwnerReferences(nil)
}

// metadataTrimmed is the transform of the children whose spec and status
// the reconciler keeps whole (claims).
func metadataTrimmed(obj any) (any, error) {
	if o, ok := obj.(metav1.Object); ok {
		dropUnreadMetadata(o)
	}
	return obj, nil
}

// secretMetadataOnly keeps of a cached Secret its metadata: the reconciler
// only asks whether a workspace's password Secret exists, and the password
// need not sit in this process's memory.
func secretMetadataOnly(obj any) (any, error) {
	if s, ok := obj.(*corev1.Secret); ok {
		dropUnreadMetadata(s)
		s.Data, s.StringData = nil, nil
	}
	return obj, nil
}

// workspaceOf maps a labelled object to its workspace.
func workspaceOf(_ context.Context, obj client.Object) []reconcile.Request {
	name := obj.GetLabels()[guildnet.WorkspaceLabel]
	if name == "" {
		return nil
	}
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: obj.GetNamespace(), Name: name}}}
}

func (r *Reconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// Reconcile implements reconcile.Reconciler.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	log := ctrl.LoggerFrom(ctx)
	var ws v1alpha1.Workspace
	if err := r.Client.Get(ctx, req.NamespacedName, &ws); err != nil {
		if apierrors.IsNotFound(err) {
			r.forget(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !ws.DeletionTimestamp.IsZero() {
		// The garbage collector deletes what the workspace owns.
		r.forget(req.NamespacedName)
		return ctrl.Result{}, nil
	}

	var result ctrl.Result
	obs := &Observed{}
	if remaining, ok := IdleRemaining(&ws, r.now()); ok {
		if remaining > 0 {
			result.RequeueAfter = remaining
		} else {
			suspended, again, err := r.suspendIfIdle(ctx, &ws)
			if err != nil {
				return ctrl.Result{}, err
			}
			if suspended {
				log.Info("Suspended idle workspace", "idleTimeout", ws.Spec.IdleTimeout.Duration)
				obs.IdleSuspended, obs.IdleTimeout = true, ws.Spec.IdleTimeout.Duration
			}
			result.RequeueAfter = again
		}
	}
	obs.Generation, obs.Suspended = ws.Generation, ws.Spec.Suspend

	obs.ApplyErrors = r.apply(ctx, &ws)
	if err := r.observe(ctx, &ws, obs); err != nil {
		return ctrl.Result{}, err
	}
	if err := r.writeStatus(ctx, &ws, obs); err != nil {
		return ctrl.Result{}, err
	}
	if len(obs.ApplyErrors) > 0 {
		// Retried with backoff: most causes (RBAC, quota, a webhook) are
		// fixed outside the spec; a spec change wakes the workspace anyway.
		return ctrl.Result{}, fmt.Errorf("workspace %s/%s: %s", ws.Namespace, ws.Name, strings.Join(obs.ApplyErrors, "; "))
	}
	return result, nil
}

// suspendIfIdle suspends ws when an uncached read confirms it is idle: the
// cached copy may miss an activity recorded a moment ago. The patch carries
// the resourceVersion read, so activity recorded in between makes it
// conflict and the decision is made again. On return ws is the latest
// object; again is when to look next if it turned out not to be idle.
func (r *Reconciler) suspendIfIdle(ctx context.Context, ws *v1alpha1.Workspace) (suspended bool, again time.Duration, err error) {
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var fresh v1alpha1.Workspace
		if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(ws), &fresh); err != nil {
			return err
		}
		*ws = fresh
		remaining, ok := IdleRemaining(ws, r.now())
		if !ok || remaining > 0 {
			again = max(remaining, 0)
			return nil
		}
		before := ws.DeepCopy()
		ws.Spec.Suspend = true
		if err := r.Client.Patch(ctx, ws, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}), client.FieldOwner(FieldOwner)); err != nil {
			return err
		}
		suspended = true
		return nil
	})
	if err != nil {
		return false, 0, fmt.Errorf("suspending idle workspace %s/%s: %w", ws.Namespace, ws.Name, err)
	}
	return suspended, again, nil
}

// apply creates or updates what ws owns. It returns what went wrong, each
// with what to do about it, and carries on past a failure: a claim that
// cannot change must not keep the Deployment from following the spec.
func (r *Reconciler) apply(ctx context.Context, ws *v1alpha1.Workspace) []string {
	// The objects do not need each other to exist first (a pod waits for
	// its Secret and claim; the Service selects pods whenever they come),
	// so they are written at once: a new workspace costs one round trip to
	// kube-apiserver, not four.
	var (
		mu   sync.Mutex
		errs []string
		wg   sync.WaitGroup
	)
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		errs = append(errs, fmt.Sprintf(format, args...))
	}
	key := func(name string) types.NamespacedName {
		return types.NamespacedName{Namespace: ws.Namespace, Name: name}
	}
	if secret, generated := PasswordSecret(ws); generated {
		wg.Go(func() {
			if err := r.ensurePasswordSecret(ctx, ws, secret); err != nil {
				fail("Secret %s: %v%s", secret, err, forbiddenHint(err))
			}
		})
	}
	if claim := HomeClaim(ws); claim != nil {
		wg.Go(func() {
			if err := r.applyIfChanged(ctx, "PersistentVolumeClaim", claim, &corev1.PersistentVolumeClaim{}, key(*claim.Name), byResourceVersion(func() *string { return claim.ResourceVersion })); err != nil {
				msg := fmt.Sprintf("PersistentVolumeClaim %s: %v%s", *claim.Name, err, forbiddenHint(err))
				if apierrors.IsInvalid(err) {
					msg += " (a claim's storage class cannot change and its size can only grow, if the storage class allows it; " +
						"put spec.storage back, or suspend the workspace and delete the claim to start over with an empty volume)"
				}
				fail("%s", msg)
			}
		})
	}
	dep, svc := Deployment(ws), Service(ws)
	if ws.Spec.ImagePullPolicy == "" && r.DefaultImagePullPolicy != "" {
		dep.Spec.Template.Spec.Containers[0].WithImagePullPolicy(r.DefaultImagePullPolicy)
	}
	wg.Go(func() {
		// A Deployment's status changes far more often than its spec.
		if err := r.applyIfChanged(ctx, "Deployment", dep, &appsv1.Deployment{}, key(*dep.Name), byGeneration(func() *int64 { return dep.Generation })); err != nil {
			fail("Deployment %s: %v%s", *dep.Name, err, forbiddenHint(err))
		}
	})
	wg.Go(func() {
		if err := r.applyIfChanged(ctx, "Service", svc, &corev1.Service{}, key(*svc.Name), byResourceVersion(func() *string { return svc.ResourceVersion })); err != nil {
			fail("Service %s: %v%s", *svc.Name, err, forbiddenHint(err))
		}
	})
	wg.Wait()
	// A stable order keeps the status message from changing between reconciles.
	sort.Strings(errs)
	return errs
}

func forbiddenHint(err error) string {
	if !apierrors.IsForbidden(err) {
		return ""
	}
	return " (a ResourceQuota or policy of the namespace refuses it, or guildnet-apiserver lacks the rules of artifacts/base/rbac-apiserver.yaml)"
}

// childKey names a child object in Reconciler.applied.
type childKey struct {
	kind string
	types.NamespacedName
}

// appliedChild is what a child was last applied with (a digest of the
// apply configuration) and its version in the apply's answer.
type appliedChild struct {
	config  [sha256.Size]byte
	version string
}

// childVersion reads the version of a child that tells whether anybody
// changed it: from the apply configuration, once the apply's answer is
// decoded into it, and from the cached object.
type childVersion struct {
	applied func() string
	cached  func(client.Object) string
}

// byGeneration is the version of objects whose generation counts spec
// changes (Deployments): status changes, the frequent ones, do not count.
// applied reads the generation of the apply configuration.
func byGeneration(applied func() *int64) childVersion {
	return childVersion{
		applied: func() string { return strconv.FormatInt(ptr.Deref(applied(), 0), 10) },
		cached:  func(o client.Object) string { return strconv.FormatInt(o.GetGeneration(), 10) },
	}
}

// byResourceVersion is the version of objects without a generation
// (Services, claims): every change counts. applied reads the
// resourceVersion of the apply configuration.
func byResourceVersion(applied func() *string) childVersion {
	return childVersion{
		applied: func() string { return ptr.Deref(applied(), "") },
		cached:  func(o client.Object) string { return o.GetResourceVersion() },
	}
}

// applyIfChanged server-side applies desired (force: the reconciler owns
// these objects) unless this process applied the same configuration to
// the cached object and nobody changed it since: its version is still the
// one the apply returned. That tells a status-only wake-up from a change
// without keeping the objects' specs or field ownership in the cache. A
// change by anybody else (kubectl edit, scale) gets a new version and is
// undone by the next apply, which forces the reconciler's fields back.
// After a restart each child is applied once more, which writes nothing if
// it is as applied.
func (r *Reconciler) applyIfChanged(ctx context.Context, kind string, desired runtime.ApplyConfiguration, cached client.Object, key types.NamespacedName, version childVersion) error {
	raw, err := json.Marshal(desired)
	if err != nil {
		return err
	}
	config := sha256.Sum256(raw)
	id := childKey{kind, key}
	switch err := r.children.Get(ctx, key, cached); {
	case err == nil:
		if last, ok := r.applied.Load(id); ok && last.(appliedChild) == (appliedChild{config, version.cached(cached)}) {
			return nil
		}
	case !apierrors.IsNotFound(err):
		return err
	}
	ctrl.LoggerFrom(ctx).V(1).Info("Applying", "kind", kind, "name", key.Name)
	// The answer is decoded into desired: the object as applied.
	if err := r.Client.Apply(ctx, desired, client.FieldOwner(FieldOwner), client.ForceOwnership); err != nil {
		r.applied.Delete(id)
		return err
	}
	r.applied.Store(id, appliedChild{config, version.applied()})
	return nil
}

// forget drops what was applied to workspace ws's children: it is gone or
// going, and a workspace created again under its name starts afresh.
func (r *Reconciler) forget(ws types.NamespacedName) {
	for kind, name := range map[string]string{
		"Deployment":            guildnet.WorkspaceServiceName(ws.Name),
		"Service":               guildnet.WorkspaceServiceName(ws.Name),
		"PersistentVolumeClaim": guildnet.WorkspaceHomeClaimName(ws.Name),
	} {
		r.applied.Delete(childKey{kind, types.NamespacedName{Namespace: ws.Namespace, Name: name}})
	}
}

// ensurePasswordSecret creates the generated password Secret if it does
// not exist. It is never updated, so the password is never rotated.
func (r *Reconciler) ensurePasswordSecret(ctx context.Context, ws *v1alpha1.Workspace, name string) error {
	var s corev1.Secret
	err := r.children.Get(ctx, types.NamespacedName{Namespace: ws.Namespace, Name: name}, &s)
	if err == nil || !apierrors.IsNotFound(err) {
		return err
	}
	// The cache may not have seen a Secret created a moment ago (or one
	// without our label): AlreadyExists means there is a password already.
	if err := r.Client.Create(ctx, PasswordSecretObject(ws), client.FieldOwner(FieldOwner)); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	return nil
}

// observe reads the workspace's Deployment, Service and pods from the cache.
func (r *Reconciler) observe(ctx context.Context, ws *v1alpha1.Workspace, obs *Observed) error {
	key := types.NamespacedName{Namespace: ws.Namespace, Name: guildnet.WorkspaceServiceName(ws.Name)}
	var dep appsv1.Deployment
	switch err := r.children.Get(ctx, key, &dep); {
	case err == nil:
		obs.Deployment = &dep
	case !apierrors.IsNotFound(err):
		return err
	}
	var svc corev1.Service
	switch err := r.children.Get(ctx, key, &svc); {
	case err == nil:
		obs.Service = &svc
	case !apierrors.IsNotFound(err):
		return err
	}
	var pods corev1.PodList
	if err := r.children.List(ctx, &pods, client.InNamespace(ws.Namespace), client.MatchingLabels{guildnet.WorkspaceLabel: ws.Name}); err != nil {
		return err
	}
	obs.Pods = pods.Items
	return nil
}

// writeStatus writes the reconciler's status fields through the status
// subresource. The update carries the resourceVersion read; on a conflict
// (typically workspaces/proxy recording activity) it re-reads the object and
// sets only its own fields again, so lastActivityTime is never lost.
func (r *Reconciler) writeStatus(ctx context.Context, ws *v1alpha1.Workspace, obs *Observed) error {
	cur := ws.DeepCopy()
	first := true
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if !first {
			if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(ws), cur); err != nil {
				return err
			}
		}
		first = false
		before := cur.Status.DeepCopy()
		SetStatus(cur, obs, r.now())
		if equality.Semantic.DeepEqual(before, &cur.Status) {
			return nil
		}
		return r.Client.Status().Update(ctx, cur, client.FieldOwner(FieldOwner))
	})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("writing the status of workspace %s/%s: %w", ws.Namespace, ws.Name, err)
	}
	return nil
}
