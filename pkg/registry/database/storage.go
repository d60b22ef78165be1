// Package database is the registry of guildnet.io databases: storage and
// printer columns.
package database

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apiserver/pkg/registry/generic"

	"github.com/guildnet/guildnet/apis/guildnet"
	"github.com/guildnet/guildnet/apis/guildnet/validation"
	"github.com/guildnet/guildnet/pkg/registry/printers"
	"github.com/guildnet/guildnet/pkg/registry/resource"
)

type db = *guildnet.Database

// NewREST returns the storage of databases and databases/status; new
// databases get finalizers.
func NewREST(scheme *runtime.Scheme, optsGetter generic.RESTOptionsGetter, finalizers []string) (*resource.REST, *resource.StatusREST, error) {
	return resource.NewStores(scheme, optsGetter, resource.Spec[db]{
		Resource:   guildnet.Resource("databases"),
		Singular:   guildnet.Resource("database"),
		New:        func() runtime.Object { return &guildnet.Database{} },
		NewList:    func() runtime.Object { return &guildnet.DatabaseList{} },
		ShortNames: []string{"gdb"},
		Funcs: resource.Funcs[db]{
			Validate:             validation.ValidateDatabase,
			ValidateUpdate:       validation.ValidateDatabaseUpdate,
			ValidateStatusUpdate: validation.ValidateDatabaseStatusUpdate,
			Spec:                 func(o db) any { return &o.Spec },
			Status:               func(o db) any { return &o.Status },
			SetSpec:              func(dst, src db) { dst.Spec = src.Spec },
			SetStatus:            func(dst, src db) { dst.Status = src.Status },
			ResetStatus:          func(o db) { o.Status = guildnet.DatabaseStatus{} },
			Finalizers:           finalizers,
		},
		Table: printers.New(
			printers.Column[db]{
				Def:   metav1.TableColumnDefinition{Name: "RethinkDB Name", Type: "string", Description: "The database's name inside RethinkDB."},
				Value: func(o db) any { return o.Status.RethinkDBName },
			},
			printers.Column[db]{
				Def:   metav1.TableColumnDefinition{Name: "Tables", Type: "integer", Description: "Number of tables."},
				Value: func(o db) any { return int64(o.Status.Tables) },
			},
			printers.Column[db]{
				Def:   metav1.TableColumnDefinition{Name: "Ready", Type: "string", Description: "Status of the Ready condition."},
				Value: func(o db) any { return printers.ConditionStatus(o.Status.Conditions, guildnet.ConditionReady) },
			},
		),
	})
}
