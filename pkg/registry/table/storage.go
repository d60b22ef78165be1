// Package table is the registry of guildnet.io tables: storage, printer
// columns and (in later files) the rows and watch subresources.
package table

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apiserver/pkg/registry/generic"

	"github.com/guildnet/guildnet/apis/guildnet"
	"github.com/guildnet/guildnet/apis/guildnet/validation"
	"github.com/guildnet/guildnet/pkg/registry/printers"
	"github.com/guildnet/guildnet/pkg/registry/resource"
)

type tbl = *guildnet.Table

// NewREST returns the storage of tables and tables/status; new tables get
// finalizers.
func NewREST(scheme *runtime.Scheme, optsGetter generic.RESTOptionsGetter, finalizers []string) (*resource.REST, *resource.StatusREST, error) {
	return resource.NewStores(scheme, optsGetter, resource.Spec[tbl]{
		Resource:   guildnet.Resource("tables"),
		Singular:   guildnet.Resource("table"),
		New:        func() runtime.Object { return &guildnet.Table{} },
		NewList:    func() runtime.Object { return &guildnet.TableList{} },
		ShortNames: []string{"tbl"},
		Funcs: resource.Funcs[tbl]{
			Validate:             validation.ValidateTable,
			ValidateUpdate:       validation.ValidateTableUpdate,
			ValidateStatusUpdate: validation.ValidateTableStatusUpdate,
			Spec:                 func(o tbl) any { return &o.Spec },
			Status:               func(o tbl) any { return &o.Status },
			SetSpec:              func(dst, src tbl) { dst.Spec = src.Spec },
			SetStatus:            func(dst, src tbl) { dst.Status = src.Status },
			ResetStatus:          func(o tbl) { o.Status = guildnet.TableStatus{} },
			Finalizers:           finalizers,
		},
		Table: printers.New(
			printers.Column[tbl]{
				Def:   metav1.TableColumnDefinition{Name: "Database", Type: "string", Description: "The Database the table belongs to."},
				Value: func(o tbl) any { d, _, _ := guildnet.SplitTableName(o.Name); return d },
			},
			printers.Column[tbl]{
				Def:   metav1.TableColumnDefinition{Name: "Primary Key", Type: "string", Description: "The field rows are keyed by."},
				Value: func(o tbl) any { return o.Spec.PrimaryKey },
			},
			printers.Column[tbl]{
				Def:   metav1.TableColumnDefinition{Name: "Rows", Type: "integer", Description: "Approximate number of rows."},
				Value: func(o tbl) any { return o.Status.ApproximateRows },
			},
			printers.Column[tbl]{
				Def:   metav1.TableColumnDefinition{Name: "Ready", Type: "string", Description: "Status of the Ready condition."},
				Value: func(o tbl) any { return printers.ConditionStatus(o.Status.Conditions, guildnet.ConditionReady) },
			},
		),
	})
}
