// Package database reconciles Databases: each becomes a RethinkDB database
// named from its namespace and name, and its deletion honours
// spec.deletionPolicy.
package database

import (
	"context"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/guildnet/guildnet/apis/guildnet"
	"github.com/guildnet/guildnet/apis/guildnet/v1alpha1"
	"github.com/guildnet/guildnet/pkg/controller"
	"github.com/guildnet/guildnet/pkg/controller/rethinkops"
	"github.com/guildnet/guildnet/pkg/rethinkdb"
)

// Reconciler keeps RethinkDB databases in line with Database objects.
type Reconciler struct {
	Client    client.Client
	RethinkDB *rethinkdb.Client
	// Resync is how often a Ready database is looked at again (tables count).
	Resync time.Duration
}

// SetupWithManager registers the reconciler. A Table change wakes its
// Database, whose status counts the tables.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).Named("database").
		For(&v1alpha1.Database{}).
		Watches(&v1alpha1.Table{}, handler.EnqueueRequestsFromMapFunc(databaseOf)).
		Complete(r)
}

func databaseOf(_ context.Context, obj client.Object) []reconcile.Request {
	db, _, ok := guildnet.SplitTableName(obj.GetName())
	if !ok {
		return nil
	}
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: obj.GetNamespace(), Name: db}}}
}

// Reconcile implements reconcile.Reconciler.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var db v1alpha1.Database
	if err := r.Client.Get(ctx, req.NamespacedName, &db); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	name := guildnet.RethinkDBDatabaseName(db.Namespace, db.Name)
	sess := r.RethinkDB.Session()

	if done, err := controller.Finalize(ctx, r.Client, &db, db.Spec.DeletionPolicy, name, func() error {
		return r.RethinkDB.WrapError(rethinkops.DropDatabase(ctx, sess, name))
	}); done || err != nil {
		return ctrl.Result{}, err
	}

	before := db.Status.DeepCopy()
	db.Status.ObservedGeneration = db.Generation
	db.Status.RethinkDBName = name
	var result ctrl.Result
	var reconcileErr error
	if tables, err := rethinkops.EnsureDatabase(ctx, sess, name); err != nil {
		reconcileErr = r.RethinkDB.WrapError(err)
		controller.SetReady(&db.Status.Conditions, db.Generation, false, controller.ReasonRethinkDBError,
			fmt.Sprintf("cannot create RethinkDB database %s: %v", name, reconcileErr))
	} else {
		db.Status.Tables = int32(tables)
		controller.SetReady(&db.Status.Conditions, db.Generation, true, controller.ReasonCreated,
			fmt.Sprintf("RethinkDB database %s exists", name))
		result.RequeueAfter = controller.ResyncAfter(r.Resync)
	}
	if !equality.Semantic.DeepEqual(before, &db.Status) {
		if err := r.Client.Status().Update(ctx, &db); err != nil && !apierrors.IsNotFound(err) {
			return ctrl.Result{}, err
		}
	}
	return result, reconcileErr
}
