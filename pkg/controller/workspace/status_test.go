package workspace

import (
	"reflect"
	"slices"
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

// The cache's pod transform keeps everything the workspace's status is
// made of: for pods as a kubelet reports them, in each state the status
// tells apart, the status from the cached pods is the status from the
// pods, and the cached pods hold no addresses, other conditions or
// containers that run.
func TestPodStatusOnlyKeepsWhatStatusReads(t *testing.T) {
	created := metav1.NewTime(t0.Add(-time.Hour))
	running := corev1.ContainerStatus{Name: "sidecar", Image: "sidecar:1", ImageID: "sha256:abc", ContainerID: "containerd://1", Ready: true,
		State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: created}}}
	pod := func(name string, age time.Duration, conds []corev1.PodCondition, statuses ...corev1.ContainerStatus) corev1.Pod {
		return corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "team", CreationTimestamp: metav1.NewTime(t0.Add(-age)),
				Labels: map[string]string{"guildnet.io/workspace": "ws"}},
			Spec: corev1.PodSpec{NodeName: "node-1", Containers: []corev1.Container{{Name: "workspace", Image: "nginx"}}},
			Status: corev1.PodStatus{Phase: corev1.PodPending, HostIP: "192.0.2.1", PodIP: "10.244.0.9", PodIPs: []corev1.PodIP{{IP: "10.244.0.9"}},
				QOSClass: corev1.PodQOSBurstable, StartTime: &created, Conditions: conds,
				InitContainerStatuses: []corev1.ContainerStatus{{Name: "init", Image: "init:1",
					State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0, Reason: "Completed"}}}},
				ContainerStatuses: append([]corev1.ContainerStatus{running}, statuses...)},
		}
	}
	scheduled := []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: created},
		{Type: corev1.PodReady, Status: corev1.ConditionFalse, Reason: "ContainersNotReady", Message: "containers with unready status: [workspace]"},
		{Type: corev1.ContainersReady, Status: corev1.ConditionFalse}, {Type: corev1.PodInitialized, Status: corev1.ConditionTrue}}
	waiting := func(reason string, last *corev1.ContainerStateTerminated) corev1.ContainerStatus {
		return corev1.ContainerStatus{Name: "workspace", Image: "nope:1", ImageID: "", RestartCount: 4,
			State:                corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: "details of " + reason}},
			LastTerminationState: corev1.ContainerState{Terminated: last}}
	}
	crashed := &corev1.ContainerStateTerminated{ExitCode: 3, Reason: "Error", Message: "boom", StartedAt: created, FinishedAt: created, ContainerID: "containerd://2"}
	cases := map[string][]corev1.Pod{
		"running":          {pod("a", time.Minute, scheduled)},
		"image pull":       {pod("a", time.Minute, scheduled, waiting("ImagePullBackOff", nil))},
		"crash loop":       {pod("a", time.Minute, scheduled, waiting("CrashLoopBackOff", crashed))},
		"creating":         {pod("a", time.Minute, scheduled, waiting("ContainerCreating", nil))},
		"config error":     {pod("a", time.Minute, scheduled, waiting("CreateContainerConfigError", nil))},
		"newest pod fails": {pod("old", time.Hour, scheduled), pod("new", time.Minute, scheduled, waiting("ErrImagePull", nil))},
		"unschedulable": {pod("a", time.Minute, []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse,
			Reason: corev1.PodReasonUnschedulable, Message: "0/3 nodes are available: 3 Insufficient cpu.", LastTransitionTime: created}})},
	}
	for name, pods := range cases {
		t.Run(name, func(t *testing.T) {
			var cached []corev1.Pod
			for i := range pods {
				p := pods[i].DeepCopy()
				if _, err := podStatusOnly(p); err != nil {
					t.Fatal(err)
				}
				if p.Status.PodIP != "" || p.Status.HostIP != "" || p.Status.StartTime != nil || len(p.Spec.Containers) != 0 {
					t.Errorf("cached pod %s keeps its spec or addresses: %+v", p.Name, p.Status)
				}
				for _, c := range p.Status.Conditions {
					if c.Type != corev1.PodScheduled {
						t.Errorf("cached pod %s keeps condition %s", p.Name, c.Type)
					}
				}
				for _, cs := range slices.Concat(p.Status.InitContainerStatuses, p.Status.ContainerStatuses) {
					if cs.State.Waiting == nil || cs.ImageID != "" {
						t.Errorf("cached pod %s keeps container %s that does not wait, or its image ID: %+v", p.Name, cs.Name, cs)
					}
				}
				cached = append(cached, *p)
			}
			want, got := newWorkspace("nginx"), newWorkspace("nginx")
			SetStatus(want, &Observed{Pods: pods}, t0)
			SetStatus(got, &Observed{Pods: cached}, t0)
			if !reflect.DeepEqual(got.Status, want.Status) {
				t.Errorf("status from the cached pods:\n%+v\nfrom the pods:\n%+v", got.Status, want.Status)
			}
		})
	}
}
