package workspace

import (
	"fmt"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/guildnet/guildnet/apis/guildnet"
	"github.com/guildnet/guildnet/apis/guildnet/v1alpha1"
)

// ConditionSuspended is True while a workspace is suspended and False once
// it was resumed; its lastTransitionTime is when that happened. A workspace
// never suspended has no such condition.
const ConditionSuspended = "Suspended"

// Reasons of the Ready and Suspended conditions.
const (
	ReasonRunning                    = "Running"
	ReasonStarting                   = "Starting"
	ReasonSuspended                  = "Suspended"
	ReasonIdleTimeout                = "IdleTimeout"
	ReasonResumed                    = "Resumed"
	ReasonApplyFailed                = "ApplyFailed"
	ReasonImagePullBackOff           = "ImagePullBackOff"
	ReasonInvalidImageName           = "InvalidImageName"
	ReasonImageNotPresent            = "ImageNotPresent"
	ReasonCrashLoopBackOff           = "CrashLoopBackOff"
	ReasonCreateContainerConfigError = "CreateContainerConfigError"
	ReasonUnschedulable              = "Unschedulable"
)

// Observed is what one reconcile saw and did; SetStatus turns it into status.
type Observed struct {
	// Generation is the generation of the spec that was reconciled.
	Generation int64
	// Suspended is spec.suspend as the reconcile acted on it.
	Suspended bool
	// IdleSuspended is true when this reconcile suspended the workspace
	// because nobody used it for IdleTimeout.
	IdleSuspended bool
	// IdleTimeout is spec.idleTimeout, for the message of an idle suspend.
	IdleTimeout time.Duration
	// Deployment and Service are the workspace's, nil when missing.
	Deployment *appsv1.Deployment
	Service    *corev1.Service
	// Pods are the workspace's pods.
	Pods []corev1.Pod
	// ApplyErrors say what could not be created or updated, and what to do.
	ApplyErrors []string
}

// SetStatus sets the fields of ws.Status the reconciler owns from o, and
// leaves the others (lastActivityTime, conditions of other types) alone.
// It is idempotent, so it can be applied again to a re-read object.
func SetStatus(ws *v1alpha1.Workspace, o *Observed, now time.Time) {
	st := &ws.Status
	st.ObservedGeneration = o.Generation

	st.ServiceDNS, st.ServiceIP, st.ProxyTarget = "", "", ""
	if o.Service != nil {
		st.ServiceDNS = fmt.Sprintf("%s.%s.svc", o.Service.Name, o.Service.Namespace)
		if ip := o.Service.Spec.ClusterIP; ip != corev1.ClusterIPNone {
			st.ServiceIP = ip
		}
		st.ProxyTarget = fmt.Sprintf("http://%s:%d", st.ServiceDNS, Ports(&ws.Spec)[0].Port)
	}
	st.ReadyReplicas = 0
	if o.Deployment != nil {
		st.ReadyReplicas = o.Deployment.Status.ReadyReplicas
	}

	setSuspended(st, o, now)

	ready := func(status bool, reason, message string) {
		setCondition(st, v1alpha1.ConditionReady, status, reason, message, o.Generation, now)
	}
	applyFailed := "cannot create or update the workspace's objects: " + strings.Join(o.ApplyErrors, "; ")
	switch {
	case o.Suspended:
		st.Phase = v1alpha1.WorkspaceStopped
		s := meta.FindStatusCondition(st.Conditions, ConditionSuspended)
		ready(false, s.Reason, s.Message)
	case o.Deployment == nil && len(o.ApplyErrors) > 0:
		st.Phase = v1alpha1.WorkspacePending
		ready(false, ReasonApplyFailed, applyFailed)
	default:
		if f := podFailure(o.Pods); f != nil {
			st.Phase = v1alpha1.WorkspaceFailed
			ready(false, f.reason, f.message)
		} else if st.ReadyReplicas >= 1 {
			st.Phase = v1alpha1.WorkspaceRunning
			ready(true, ReasonRunning, "the workspace is ready; open it through the workspaces/proxy subresource")
		} else {
			st.Phase = v1alpha1.WorkspaceStarting
			ready(false, ReasonStarting, fmt.Sprintf("waiting for the workspace's pod to become ready; if it stays this way, "+
				"its events say why: kubectl describe pods -n %s -l %s=%s", ws.Namespace, guildnet.WorkspaceLabel, ws.Name))
		}
		if len(o.ApplyErrors) > 0 {
			ready(false, ReasonApplyFailed, applyFailed)
		}
	}
}

// setSuspended keeps the Suspended condition: True once suspended (the
// reason it got then is kept until the resume), False with Resumed when
// spec.suspend goes back to false, absent if never suspended.
func setSuspended(st *v1alpha1.WorkspaceStatus, o *Observed, now time.Time) {
	cur := meta.FindStatusCondition(st.Conditions, ConditionSuspended)
	switch {
	case o.Suspended && cur != nil && cur.Status == metav1.ConditionTrue:
		setCondition(st, ConditionSuspended, true, cur.Reason, cur.Message, o.Generation, now)
	case o.Suspended && o.IdleSuspended:
		setCondition(st, ConditionSuspended, true, ReasonIdleTimeout,
			fmt.Sprintf("suspended after %s of inactivity; set spec.suspend=false to resume", HumanDuration(o.IdleTimeout)), o.Generation, now)
	case o.Suspended:
		setCondition(st, ConditionSuspended, true, ReasonSuspended, "spec.suspend is true; set spec.suspend=false to resume", o.Generation, now)
	case cur != nil:
		setCondition(st, ConditionSuspended, false, ReasonResumed, "resumed: spec.suspend is false; the idle timeout counts from the resume", o.Generation, now)
	}
}

func setCondition(st *v1alpha1.WorkspaceStatus, typ string, status bool, reason, message string, generation int64, now time.Time) {
	s := metav1.ConditionFalse
	if status {
		s = metav1.ConditionTrue
	}
	meta.SetStatusCondition(&st.Conditions, metav1.Condition{
		Type: typ, Status: s, Reason: reason, Message: message, ObservedGeneration: generation,
		LastTransitionTime: metav1.NewTime(now),
	})
}

type failure struct{ reason, message string }

// podFailure finds the newest pod that cannot start and says why and what
// to do. Pods being deleted are left out: they belong to a rollout or a
// suspend that is over.
func podFailure(pods []corev1.Pod) *failure {
	pods = slices.Clone(pods)
	slices.SortFunc(pods, func(a, b corev1.Pod) int {
		return b.CreationTimestamp.Compare(a.CreationTimestamp.Time)
	})
	for i := range pods {
		p := &pods[i]
		if !p.DeletionTimestamp.IsZero() {
			continue
		}
		for _, cs := range slices.Concat(p.Status.InitContainerStatuses, p.Status.ContainerStatuses) {
			if f := containerFailure(&cs); f != nil {
				return f
			}
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
				return &failure{ReasonUnschedulable, fmt.Sprintf("no node can run the workspace (%s); lower spec.resources.requests, "+
					"or add nodes, capacity or a storage class that can provide spec.storage", orReason(c.Message, c.Reason))}
			}
		}
	}
	return nil
}

func containerFailure(cs *corev1.ContainerStatus) *failure {
	w := cs.State.Waiting
	if w == nil {
		return nil
	}
	image := cs.Image
	if image == "" {
		image = "the image"
	}
	detail := orReason(w.Message, w.Reason)
	switch w.Reason {
	case "ErrImagePull", "ImagePullBackOff":
		return &failure{ReasonImagePullBackOff, fmt.Sprintf("cannot pull image %q (%s); check spec.image, "+
			"and spec.imagePullSecrets if the registry needs credentials", image, detail)}
	case "ErrImageNeverPull":
		return &failure{ReasonImageNotPresent, fmt.Sprintf("image %q is not on the node and the pull policy is Never (%s); "+
			"load the image onto the node (make dev builds and loads its workspace image), or set spec.imagePullPolicy to pull it", image, detail)}
	case "InvalidImageName":
		return &failure{ReasonInvalidImageName, fmt.Sprintf("%q is not a valid image reference (%s); fix spec.image", image, detail)}
	case "CrashLoopBackOff":
		if t := cs.LastTerminationState.Terminated; t != nil {
			detail = fmt.Sprintf("last exit code %d", t.ExitCode)
			if t.Reason != "" {
				detail += ", " + t.Reason
			}
		}
		return &failure{ReasonCrashLoopBackOff, fmt.Sprintf("the container keeps exiting (%s); read its output through "+
			"the workspaces/log subresource and check spec.image, spec.command, spec.args and spec.env", detail)}
	case "CreateContainerConfigError":
		return &failure{ReasonCreateContainerConfigError, fmt.Sprintf("the container cannot be configured (%s); check that the "+
			"Secrets named in spec.passwordSecretName and spec.env exist in the namespace with those keys", detail)}
	}
	return nil
}

func orReason(message, reason string) string {
	if message != "" {
		return message
	}
	return reason
}

// IdleSince is when ws's idle clock started: the latest of its creation,
// status.lastActivityTime and its last resume (the Suspended condition's
// transition to False). A workspace being resumed right now (Suspended
// still True while spec.suspend is false) starts its clock now.
func IdleSince(ws *v1alpha1.Workspace, now time.Time) time.Time {
	since := ws.CreationTimestamp.Time
	if a := ws.Status.LastActivityTime; a != nil && a.After(since) {
		since = a.Time
	}
	if c := meta.FindStatusCondition(ws.Status.Conditions, ConditionSuspended); c != nil {
		if c.Status == metav1.ConditionTrue {
			return now
		}
		if c.LastTransitionTime.After(since) {
			since = c.LastTransitionTime.Time
		}
	}
	return since
}

// IdleRemaining is how long until ws counts as idle; zero or less means it
// is idle now. ok is false when idle auto-stop does not apply: no
// idleTimeout, already suspended, or being deleted.
func IdleRemaining(ws *v1alpha1.Workspace, now time.Time) (remaining time.Duration, ok bool) {
	t := ws.Spec.IdleTimeout
	if t == nil || t.Duration <= 0 || ws.Spec.Suspend || !ws.DeletionTimestamp.IsZero() {
		return 0, false
	}
	return IdleSince(ws, now).Add(t.Duration).Sub(now), true
}

// HumanDuration prints d without zero trailing units: 1h, 1h30m, 90s → 1m30s.
func HumanDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
