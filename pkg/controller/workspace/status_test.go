package workspace

import (
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/guildnet/guildnet/apis/guildnet/v1alpha1"
)

var t0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

func ready(ws *v1alpha1.Workspace) *metav1.Condition {
	return meta.FindStatusCondition(ws.Status.Conditions, v1alpha1.ConditionReady)
}

func TestSetStatusPhases(t *testing.T) {
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "ws", Namespace: "team"}, Spec: corev1.ServiceSpec{ClusterIP: "10.0.0.7"}}
	dep := func(ready int32) *appsv1.Deployment {
		return &appsv1.Deployment{Status: appsv1.DeploymentStatus{ReadyReplicas: ready}}
	}
	waiting := func(reason string) []corev1.Pod {
		return []corev1.Pod{{Status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{
			Image: "nope:1", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: "details"}},
		}}}}}
	}
	unschedulable := []corev1.Pod{{Status: corev1.PodStatus{Conditions: []corev1.PodCondition{{
		Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonUnschedulable, Message: "0/3 nodes: Insufficient cpu",
	}}}}}
	for _, tc := range []struct {
		name   string
		obs    Observed
		phase  v1alpha1.WorkspacePhase
		reason string
	}{
		{"nothing could be created", Observed{ApplyErrors: []string{"Deployment ws: forbidden"}}, v1alpha1.WorkspacePending, ReasonApplyFailed},
		{"created, not ready", Observed{Deployment: dep(0), Service: svc}, v1alpha1.WorkspaceStarting, ReasonStarting},
		{"ready", Observed{Deployment: dep(1), Service: svc}, v1alpha1.WorkspaceRunning, ReasonRunning},
		{"suspended", Observed{Suspended: true, Deployment: dep(0), Service: svc}, v1alpha1.WorkspaceStopped, ReasonSuspended},
		{"image pull", Observed{Deployment: dep(0), Service: svc, Pods: waiting("ImagePullBackOff")}, v1alpha1.WorkspaceFailed, ReasonImagePullBackOff},
		{"err image pull", Observed{Deployment: dep(0), Service: svc, Pods: waiting("ErrImagePull")}, v1alpha1.WorkspaceFailed, ReasonImagePullBackOff},
		{"image not on the node", Observed{Deployment: dep(0), Service: svc, Pods: waiting("ErrImageNeverPull")}, v1alpha1.WorkspaceFailed, ReasonImageNotPresent},
		{"invalid image", Observed{Deployment: dep(0), Service: svc, Pods: waiting("InvalidImageName")}, v1alpha1.WorkspaceFailed, ReasonInvalidImageName},
		{"crash loop", Observed{Deployment: dep(1), Service: svc, Pods: waiting("CrashLoopBackOff")}, v1alpha1.WorkspaceFailed, ReasonCrashLoopBackOff},
		{"unschedulable", Observed{Deployment: dep(0), Service: svc, Pods: unschedulable}, v1alpha1.WorkspaceFailed, ReasonUnschedulable},
		{"still creating a container", Observed{Deployment: dep(0), Service: svc, Pods: waiting("ContainerCreating")}, v1alpha1.WorkspaceStarting, ReasonStarting},
		{"claim cannot change", Observed{Deployment: dep(1), Service: svc, ApplyErrors: []string{"PersistentVolumeClaim ws-home: invalid"}}, v1alpha1.WorkspaceRunning, ReasonApplyFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ws := newWorkspace("nginx")
			ws.Generation = 3
			tc.obs.Generation = 3
			SetStatus(ws, &tc.obs, t0)
			c := ready(ws)
			if ws.Status.Phase != tc.phase || c == nil || c.Reason != tc.reason {
				t.Fatalf("phase %s, Ready %+v; want %s/%s", ws.Status.Phase, c, tc.phase, tc.reason)
			}
			if (c.Status == metav1.ConditionTrue) != (tc.reason == ReasonRunning) || c.ObservedGeneration != 3 || ws.Status.ObservedGeneration != 3 {
				t.Errorf("Ready %+v, observedGeneration %d", c, ws.Status.ObservedGeneration)
			}
			if c.Message == "" {
				t.Errorf("Ready has no message")
			}
		})
	}
}

func TestSetStatusServiceFields(t *testing.T) {
	ws := newWorkspace("nginx")
	ws.Spec.Ports = []v1alpha1.WorkspacePort{{Name: "http", Port: 3000}}
	activity := metav1.NewTime(t0.Add(-time.Minute))
	ws.Status.LastActivityTime = &activity
	SetStatus(ws, &Observed{
		Deployment: &appsv1.Deployment{Status: appsv1.DeploymentStatus{ReadyReplicas: 1}},
		Service:    &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "ws", Namespace: "team"}, Spec: corev1.ServiceSpec{ClusterIP: "10.0.0.7"}},
	}, t0)
	st := ws.Status
	if st.ServiceDNS != "ws.team.svc" || st.ServiceIP != "10.0.0.7" || st.ProxyTarget != "http://ws.team.svc:3000" || st.ReadyReplicas != 1 {
		t.Errorf("status: %+v", st)
	}
	if st.LastActivityTime == nil || !st.LastActivityTime.Equal(&activity) {
		t.Errorf("lastActivityTime changed to %v", st.LastActivityTime)
	}
	// Without a Service there is nothing to proxy to.
	SetStatus(ws, &Observed{}, t0)
	if ws.Status.ProxyTarget != "" || ws.Status.ServiceDNS != "" {
		t.Errorf("no Service: status %+v", ws.Status)
	}
}

func TestSuspendResumeAndIdleClock(t *testing.T) {
	ws := newWorkspace("nginx")
	ws.CreationTimestamp = metav1.NewTime(t0)
	ws.Spec.IdleTimeout = &metav1.Duration{Duration: time.Hour}

	// Never used: idle one hour after creation.
	if rem, ok := IdleRemaining(ws, t0.Add(20*time.Minute)); !ok || rem != 40*time.Minute {
		t.Errorf("remaining = %v, %v; want 40m", rem, ok)
	}
	// Activity moves the clock.
	a := metav1.NewTime(t0.Add(50 * time.Minute))
	ws.Status.LastActivityTime = &a
	if rem, _ := IdleRemaining(ws, t0.Add(70*time.Minute)); rem != 40*time.Minute {
		t.Errorf("after activity: remaining = %v, want 40m", rem)
	}

	// Suspended for idleness at 2h: IdleTimeout, sticky through later reconciles.
	suspendedAt := t0.Add(2 * time.Hour)
	ws.Spec.Suspend = true
	SetStatus(ws, &Observed{Suspended: true, IdleSuspended: true, IdleTimeout: time.Hour}, suspendedAt)
	if c := ready(ws); ws.Status.Phase != v1alpha1.WorkspaceStopped || c.Reason != ReasonIdleTimeout ||
		c.Message != "suspended after 1h of inactivity; set spec.suspend=false to resume" {
		t.Fatalf("after idle suspend: phase %s, Ready %+v", ws.Status.Phase, c)
	}
	SetStatus(ws, &Observed{Suspended: true}, suspendedAt.Add(time.Minute))
	if c := ready(ws); c.Reason != ReasonIdleTimeout {
		t.Errorf("a later reconcile lost the reason: %+v", c)
	}
	if _, ok := IdleRemaining(ws, suspendedAt.Add(time.Minute)); ok {
		t.Errorf("a suspended workspace has an idle clock")
	}

	// Resumed a day later: a full hour from the resume, not suspended at once.
	resumedAt := suspendedAt.Add(24 * time.Hour)
	ws.Spec.Suspend = false
	if rem, ok := IdleRemaining(ws, resumedAt); !ok || rem != time.Hour {
		t.Errorf("being resumed: remaining = %v, %v; want 1h", rem, ok)
	}
	SetStatus(ws, &Observed{}, resumedAt)
	s := meta.FindStatusCondition(ws.Status.Conditions, ConditionSuspended)
	if s == nil || s.Status != metav1.ConditionFalse || s.Reason != ReasonResumed || !s.LastTransitionTime.Time.Equal(resumedAt) {
		t.Fatalf("Suspended after resume: %+v", s)
	}
	if rem, _ := IdleRemaining(ws, resumedAt.Add(10*time.Minute)); rem != 50*time.Minute {
		t.Errorf("10m after resume: remaining = %v, want 50m", rem)
	}
	// Suspended by hand: reason Suspended.
	ws.Spec.Suspend = true
	SetStatus(ws, &Observed{Suspended: true}, resumedAt.Add(time.Hour))
	if c := ready(ws); c.Reason != ReasonSuspended || !strings.Contains(c.Message, "spec.suspend=false") {
		t.Errorf("manual suspend: %+v", c)
	}
}

func TestHumanDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		3 * time.Second: "3s", time.Hour: "1h", 90 * time.Minute: "1h30m", 90 * time.Second: "1m30s", 2 * time.Minute: "2m",
	} {
		if got := HumanDuration(d); got != want {
			t.Errorf("HumanDuration(%v) = %q, want %q", d, got, want)
		}
	}
}
