package workspace

import (
	"context"
	"fmt"
	"io"
	"sort"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apiserver/pkg/registry/rest"
	"k8s.io/client-go/kubernetes"

	"github.com/guildnet/guildnet/apis/guildnet"
)

// LogREST is the workspaces/log subresource: the workspace container's
// log, read from its pod through kube-apiserver (pods/log), streamed.
type LogREST struct {
	workspaces rest.Getter
	kube       kubernetes.Interface
}

// NewLogREST returns workspaces/log. kube is guildnet-apiserver's own
// client; its RBAC allows pods/log, and users need get on workspaces/log.
func NewLogREST(workspaces rest.Getter, kube kubernetes.Interface) *LogREST {
	return &LogREST{workspaces: workspaces, kube: kube}
}

var (
	_ rest.GetterWithOptions = &LogREST{}
	_ rest.StorageMetadata   = &LogREST{}
)

// New returns the kind the subresource belongs to.
func (r *LogREST) New() runtime.Object { return &guildnet.Workspace{} }

// Destroy has nothing to release.
func (r *LogREST) Destroy() {}

// ProducesMIMETypes: plain text lines.
func (r *LogREST) ProducesMIMETypes(string) []string { return []string{"text/plain"} }

// ProducesObject: a string, for OpenAPI.
func (r *LogREST) ProducesObject(string) any { return "" }

// NewGetOptions returns the query parameters.
func (r *LogREST) NewGetOptions() (runtime.Object, bool, string) {
	return &guildnet.WorkspaceLogOptions{}, false, ""
}

// Get returns a stream of the log of the workspace's newest pod.
func (r *LogREST) Get(ctx context.Context, name string, options runtime.Object) (runtime.Object, error) {
	opts, ok := options.(*guildnet.WorkspaceLogOptions)
	if !ok {
		return nil, fmt.Errorf("invalid options object: %#v", options)
	}
	if opts.TailLines != nil && *opts.TailLines < 0 {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("tailLines must not be negative, got %d", *opts.TailLines))
	}
	if opts.SinceSeconds != nil && *opts.SinceSeconds < 1 {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("sinceSeconds must be at least 1, got %d", *opts.SinceSeconds))
	}
	obj, err := r.workspaces.Get(ctx, name, &metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	ws := obj.(*guildnet.Workspace)
	pod, err := r.pod(ctx, ws)
	if err != nil {
		return nil, err
	}
	return &logStream{kube: r.kube, pod: pod, opts: &corev1.PodLogOptions{
		Container:    guildnet.WorkspaceContainerName,
		Follow:       opts.Follow,
		TailLines:    opts.TailLines,
		SinceSeconds: opts.SinceSeconds,
		Previous:     opts.Previous,
		Timestamps:   opts.Timestamps,
	}}, nil
}

// pod picks the pod whose log a user means: the newest running one, else
// the newest that has a node (its container may have crashed).
func (r *LogREST) pod(ctx context.Context, ws *guildnet.Workspace) (*corev1.Pod, error) {
	sel := labels.SelectorFromSet(labels.Set{guildnet.WorkspaceLabel: ws.Name}).String()
	pods, err := r.kube.CoreV1().Pods(ws.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return nil, apierrors.NewInternalError(fmt.Errorf("listing the pods of workspace %s/%s: %w", ws.Namespace, ws.Name, err))
	}
	var scheduled []corev1.Pod
	for _, p := range pods.Items {
		if p.Spec.NodeName != "" && p.DeletionTimestamp == nil {
			scheduled = append(scheduled, p)
		}
	}
	if len(scheduled) == 0 {
		why := "it has no pod on a node yet"
		if ws.Spec.Suspend {
			why = "it is stopped (spec.suspend is true), so it has no pod; resume it to get a new log"
		} else if note := readyNote(ws); note != "" {
			why += note
		}
		return nil, unavailable(ws, "has no log to show: %s", why)
	}
	sort.SliceStable(scheduled, func(i, j int) bool {
		ri, rj := scheduled[i].Status.Phase == corev1.PodRunning, scheduled[j].Status.Phase == corev1.PodRunning
		if ri != rj {
			return ri
		}
		return scheduled[j].CreationTimestamp.Before(&scheduled[i].CreationTimestamp)
	})
	return &scheduled[0], nil
}

// logStream opens the pod's log when the API server starts writing the
// response, and streams it, flushing each chunk when following.
type logStream struct {
	kube kubernetes.Interface
	pod  *corev1.Pod
	opts *corev1.PodLogOptions
}

var _ rest.ResourceStreamer = &logStream{}

func (s *logStream) GetObjectKind() schema.ObjectKind { return schema.EmptyObjectKind }
func (s *logStream) DeepCopyObject() runtime.Object {
	c := *s
	return &c
}

// InputStream opens the pod's log; kube-apiserver's errors (e.g. the node
// is unreachable) reach the user as they are.
func (s *logStream) InputStream(ctx context.Context, _, _ string) (io.ReadCloser, bool, string, error) {
	rc, err := s.kube.CoreV1().Pods(s.pod.Namespace).GetLogs(s.pod.Name, s.opts).Stream(ctx)
	if err != nil {
		if status, ok := err.(apierrors.APIStatus); ok {
			return nil, false, "", &apierrors.StatusError{ErrStatus: status.Status()}
		}
		return nil, false, "", apierrors.NewServiceUnavailable(fmt.Sprintf("reading the log of pod %s/%s: %v", s.pod.Namespace, s.pod.Name, err))
	}
	return rc, s.opts.Follow, "text/plain", nil
}
