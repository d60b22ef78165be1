// Package workspace is the registry of guildnet.io workspaces: storage,
// printer columns and (in later files) the proxy and log subresources.
package workspace

import (
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apiserver/pkg/registry/generic"

	"github.com/guildnet/guildnet/apis/guildnet"
	"github.com/guildnet/guildnet/apis/guildnet/validation"
	"github.com/guildnet/guildnet/pkg/registry/printers"
	"github.com/guildnet/guildnet/pkg/registry/resource"
)

type ws = *guildnet.Workspace

// NewREST returns the storage of workspaces and workspaces/status.
func NewREST(scheme *runtime.Scheme, optsGetter generic.RESTOptionsGetter) (*resource.REST, *resource.StatusREST, error) {
	return resource.NewStores(scheme, optsGetter, resource.Spec[ws]{
		Resource:   guildnet.Resource("workspaces"),
		Singular:   guildnet.Resource("workspace"),
		New:        func() runtime.Object { return &guildnet.Workspace{} },
		NewList:    func() runtime.Object { return &guildnet.WorkspaceList{} },
		ShortNames: []string{"ws"},
		Funcs: resource.Funcs[ws]{
			Validate:             validation.ValidateWorkspace,
			ValidateUpdate:       validation.ValidateWorkspaceUpdate,
			ValidateStatusUpdate: validation.ValidateWorkspaceStatusUpdate,
			Spec:                 func(o ws) any { return &o.Spec },
			Status:               func(o ws) any { return &o.Status },
			SetSpec:              func(dst, src ws) { dst.Spec = src.Spec },
			SetStatus:            func(dst, src ws) { dst.Status = src.Status },
			ResetStatus:          func(o ws) { o.Status = guildnet.WorkspaceStatus{} },
		},
		Table: printers.New(
			printers.Column[ws]{
				Def:   metav1.TableColumnDefinition{Name: "Phase", Type: "string", Description: "Where the workspace is in its life."},
				Value: func(o ws) any { return string(o.Status.Phase) },
			},
			printers.Column[ws]{
				Def:   metav1.TableColumnDefinition{Name: "Ready", Type: "string", Description: "Ready replicas out of desired."},
				Value: func(o ws) any { return readyColumn(o) },
			},
			printers.Column[ws]{
				Def:   metav1.TableColumnDefinition{Name: "Image", Type: "string", Description: "Container image."},
				Value: func(o ws) any { return o.Spec.Image },
			},
		),
	})
}

func readyColumn(o ws) string {
	desired := 1
	if o.Spec.Suspend {
		desired = 0
	}
	return fmt.Sprintf("%d/%d", o.Status.ReadyReplicas, desired)
}
