// Package table reconciles Tables: each "<database>.<table>" becomes a
// RethinkDB table in its Database's RethinkDB database, with the spec's
// primary key, secondary indexes and durability; its deletion honours
// spec.deletionPolicy.
package table

import (
	"context"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
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

// Reconciler keeps RethinkDB tables in line with Table objects.
type Reconciler struct {
	Client    client.Client
	RethinkDB *rethinkdb.Client
	// Resync is how often a Ready table is counted again.
	Resync time.Duration
}

// SetupWithManager registers the reconciler; a Database change wakes the
// Tables that belong to it, so a Table waiting for its Database becomes
// ready as soon as the Database is.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &v1alpha1.Table{}, databaseIndex, databaseOf); err != nil {
		return fmt.Errorf("indexing tables by database: %w", err)
	}
	return ctrl.NewControllerManagedBy(mgr).Named("table").
		For(&v1alpha1.Table{}).
		Watches(&v1alpha1.Database{}, handler.EnqueueRequestsFromMapFunc(r.tablesOf)).
		Complete(r)
}

// databaseIndex indexes the cached Tables by the Database their name
// starts with. Every Database event looks its tables up: listing the whole
// namespace instead cost a copy of every table per event, which with a
// thousand databases and tables was most of the process's allocation.
const databaseIndex = "guildnet.io/database"

func databaseOf(obj client.Object) []string {
	if db, _, ok := guildnet.SplitTableName(obj.GetName()); ok {
		return []string{db}
	}
	return nil
}

func (r *Reconciler) tablesOf(ctx context.Context, obj client.Object) []reconcile.Request {
	var tables v1alpha1.TableList
	// Only names are read, so the cached objects need no copy.
	if err := r.Client.List(ctx, &tables, client.InNamespace(obj.GetNamespace()),
		client.MatchingFields{databaseIndex: obj.GetName()}, client.UnsafeDisableDeepCopy); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Listing the tables of a database", "database", client.ObjectKeyFromObject(obj))
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(tables.Items))
	for _, t := range tables.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: t.Namespace, Name: t.Name}})
	}
	return reqs
}

// Reconcile implements reconcile.Reconciler.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var t v1alpha1.Table
	if err := r.Client.Get(ctx, req.NamespacedName, &t); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	dbName, tableName, ok := guildnet.SplitTableName(t.Name)
	if !ok {
		return ctrl.Result{}, nil // validation refuses such names; nothing to do
	}
	rdb := guildnet.RethinkDBDatabaseName(t.Namespace, dbName)
	rtable := guildnet.RethinkDBTableName(tableName)
	sess := r.RethinkDB.Session()

	if done, err := controller.Finalize(ctx, r.Client, &t, t.Spec.DeletionPolicy, rdb+"."+rtable, func() error {
		return r.RethinkDB.WrapError(rethinkops.DropTable(ctx, sess, rdb, rtable))
	}); done || err != nil {
		return ctrl.Result{}, err
	}

	before := t.Status.DeepCopy()
	t.Status.ObservedGeneration = t.Generation
	t.Status.Database = dbName
	t.Status.RethinkDBName = rdb + "." + rtable
	t.Status.PrimaryKey = t.Spec.PrimaryKey
	result, reconcileErr := r.ensure(ctx, &t, dbName, rdb, rtable)
	if !equality.Semantic.DeepEqual(before, &t.Status) {
		if err := r.Client.Status().Update(ctx, &t); err != nil && !apierrors.IsNotFound(err) {
			return ctrl.Result{}, err
		}
	}
	return result, reconcileErr
}

// ensure creates what is missing and sets the Ready condition. A missing
// or unready Database is not an error: the Database watch brings us back.
func (r *Reconciler) ensure(ctx context.Context, t *v1alpha1.Table, dbName, rdb, rtable string) (ctrl.Result, error) {
	var db v1alpha1.Database
	if err := r.Client.Get(ctx, types.NamespacedName{Namespace: t.Namespace, Name: dbName}, &db); err != nil {
		if apierrors.IsNotFound(err) {
			controller.SetReady(&t.Status.Conditions, t.Generation, false, controller.ReasonDatabaseNotFound,
				fmt.Sprintf("Database %q does not exist in namespace %s; create it and this table follows", dbName, t.Namespace))
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	if !meta.IsStatusConditionTrue(db.Status.Conditions, v1alpha1.ConditionReady) || !db.DeletionTimestamp.IsZero() {
		controller.SetReady(&t.Status.Conditions, t.Generation, false, controller.ReasonDatabaseNotReady,
			fmt.Sprintf("Database %q is not ready", dbName))
		return ctrl.Result{}, nil
	}
	indexes := make([]rethinkops.Index, 0, len(t.Spec.Indexes))
	for _, idx := range t.Spec.Indexes {
		indexes = append(indexes, rethinkops.Index{Name: idx.Name, Fields: idx.Fields, Multi: idx.Multi})
	}
	sess := r.RethinkDB.Session()
	rows, err := rethinkops.EnsureTable(ctx, sess, rdb, rtable, t.Spec.PrimaryKey, string(t.Spec.Durability), indexes)
	if mismatch, ok := err.(*rethinkops.PrimaryKeyMismatchError); ok {
		controller.SetReady(&t.Status.Conditions, t.Generation, false, controller.ReasonPrimaryKeyMismatch, mismatch.Error())
		return ctrl.Result{}, nil
	}
	if err != nil {
		err = r.RethinkDB.WrapError(err)
		controller.SetReady(&t.Status.Conditions, t.Generation, false, controller.ReasonRethinkDBError,
			fmt.Sprintf("cannot create RethinkDB table %s.%s: %v", rdb, rtable, err))
		return ctrl.Result{}, err
	}
	t.Status.ApproximateRows = rows
	controller.SetReady(&t.Status.Conditions, t.Generation, true, controller.ReasonCreated,
		fmt.Sprintf("RethinkDB table %s.%s exists", rdb, rtable))
	return ctrl.Result{RequeueAfter: controller.ResyncAfter(r.Resync)}, nil
}
