package controller

import (
	"context"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/guildnet/guildnet/apis/guildnet"
	"github.com/guildnet/guildnet/apis/guildnet/v1alpha1"
)

// Finalize keeps guildnet.RethinkDBFinalizer on a live object (a
// reconciling server sets it at creation; this adds it to objects created
// through a server that does not reconcile, or whose finalizer somebody
// removed), and carries out the deletion policy of an object being
// deleted: drop runs for DeletionPolicyDelete (Retain keeps the data), then
// the finalizer goes. done is true when the object is being deleted and the
// caller has nothing more to do.
func Finalize(ctx context.Context, c client.Client, obj client.Object, policy v1alpha1.DeletionPolicy, what string, drop func() error) (done bool, err error) {
	if obj.GetDeletionTimestamp().IsZero() {
		if controllerutil.AddFinalizer(obj, guildnet.RethinkDBFinalizer) {
			return false, c.Update(ctx, obj)
		}
		return false, nil
	}
	if !controllerutil.ContainsFinalizer(obj, guildnet.RethinkDBFinalizer) {
		return true, nil
	}
	log := ctrl.LoggerFrom(ctx)
	if policy == v1alpha1.DeletionPolicyDelete {
		if err := drop(); err != nil {
			return true, err
		}
		log.Info("Dropped data (deletionPolicy Delete)", "rethinkdb", what)
	} else {
		log.Info("Kept data (deletionPolicy Retain)", "rethinkdb", what)
	}
	controllerutil.RemoveFinalizer(obj, guildnet.RethinkDBFinalizer)
	return true, client.IgnoreNotFound(c.Update(ctx, obj))
}
