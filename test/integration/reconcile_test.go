package integration

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	r "gopkg.in/rethinkdb/rethinkdb-go.v6"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/guildnet/guildnet/apis/guildnet"
	"github.com/guildnet/guildnet/apis/guildnet/v1alpha1"
	guildnetclient "github.com/guildnet/guildnet/generated/clientset/versioned"
	"github.com/guildnet/guildnet/test/framework"
)

func rethinkSession(t *testing.T, addr string) *r.Session {
	t.Helper()
	s, err := r.Connect(r.ConnectOpts{Address: addr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func readyCondition(conds []metav1.Condition) string {
	c := meta.FindStatusCondition(conds, v1alpha1.ConditionReady)
	if c == nil {
		return "no Ready condition"
	}
	return fmt.Sprintf("%s/%s: %s", c.Status, c.Reason, c.Message)
}

// A Table created before its Database says so in its condition and becomes
// Ready once the Database is; both exist in RethinkDB with the spec's
// primary key and index; deletion honours deletionPolicy.
func TestDatabasesAndTablesAreReconciled(t *testing.T) {
	env := framework.Env(t)
	admin := kubernetes.NewForConfigOrDie(env.AdminConfig())
	ns := createNamespace(t, admin, "reconcile")
	gn := guildnetclient.NewForConfigOrDie(env.AdminConfig()).GuildnetV1alpha1()
	rs := rethinkSession(t, env.RethinkDBAddr)
	ctx := context.Background()

	tbl := &v1alpha1.Table{
		ObjectMeta: metav1.ObjectMeta{Name: "orders.line-items"},
		Spec: v1alpha1.TableSpec{PrimaryKey: "sku", Indexes: []v1alpha1.TableIndex{{Name: "by_customer", Fields: []string{"customer"}}},
			DeletionPolicy: v1alpha1.DeletionPolicyRetain},
	}
	createdTable, err := gn.Tables(ns).Create(ctx, tbl, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// The deletion policy holds from the first write: the server sets the
	// finalizer, not a later write of the reconciler.
	if !slices.Contains(createdTable.Finalizers, guildnet.RethinkDBFinalizer) {
		t.Errorf("created table has finalizers %v, want %s", createdTable.Finalizers, guildnet.RethinkDBFinalizer)
	}
	framework.Eventually(t, 30*time.Second, "the table reports its missing database", func(ctx context.Context) error {
		got, err := gn.Tables(ns).Get(ctx, tbl.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		c := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionReady)
		if c == nil || c.Status != metav1.ConditionFalse || c.Reason != "DatabaseNotFound" {
			return fmt.Errorf("Ready condition: %s", readyCondition(got.Status.Conditions))
		}
		return nil
	})
	// The reconcilers' informer holds the table now, read from the server's
	// watch cache in process and without its field ownership; what the
	// watch cache serves still has it.
	cached, err := gn.Tables(ns).Get(ctx, tbl.Name, metav1.GetOptions{ResourceVersion: "0"})
	if err != nil {
		t.Fatal(err)
	}
	if len(cached.ManagedFields) == 0 {
		t.Error("the table served from the watch cache has no managedFields: the reconcilers' informer changed the cached object")
	}

	db := &v1alpha1.Database{ObjectMeta: metav1.ObjectMeta{Name: "orders"}, Spec: v1alpha1.DatabaseSpec{DeletionPolicy: v1alpha1.DeletionPolicyDelete}}
	createdDB, err := gn.Databases(ns).Create(ctx, db, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(createdDB.Finalizers, guildnet.RethinkDBFinalizer) {
		t.Errorf("created database has finalizers %v, want %s", createdDB.Finalizers, guildnet.RethinkDBFinalizer)
	}
	var rdbName string
	framework.Eventually(t, 60*time.Second, "the database is Ready and counts its table", func(ctx context.Context) error {
		got, err := gn.Databases(ns).Get(ctx, "orders", metav1.GetOptions{})
		if err != nil {
			return err
		}
		rdbName = got.Status.RethinkDBName
		if !meta.IsStatusConditionTrue(got.Status.Conditions, v1alpha1.ConditionReady) || got.Status.ObservedGeneration != got.Generation {
			return fmt.Errorf("database: %s", readyCondition(got.Status.Conditions))
		}
		if got.Status.Tables != 1 {
			return fmt.Errorf("database counts %d tables, want 1", got.Status.Tables)
		}
		return nil
	})
	framework.Eventually(t, 60*time.Second, "the table becomes Ready", func(ctx context.Context) error {
		got, err := gn.Tables(ns).Get(ctx, tbl.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if !meta.IsStatusConditionTrue(got.Status.Conditions, v1alpha1.ConditionReady) {
			return fmt.Errorf("table: %s", readyCondition(got.Status.Conditions))
		}
		if got.Status.RethinkDBName != rdbName+".line_items" || got.Status.Database != "orders" || got.Status.PrimaryKey != "sku" {
			return fmt.Errorf("table status: %+v", got.Status)
		}
		return nil
	})

	// What RethinkDB holds.
	var info struct {
		PrimaryKey string `rethinkdb:"primary_key"`
	}
	if err := r.DB(rdbName).Table("line_items").Info().ReadOne(&info, rs); err != nil {
		t.Fatalf("RethinkDB table %s.line_items: %v", rdbName, err)
	}
	if info.PrimaryKey != "sku" {
		t.Errorf("RethinkDB primary key = %q, want sku", info.PrimaryKey)
	}
	var indexes []string
	if err := r.DB(rdbName).Table("line_items").IndexList().ReadAll(&indexes, rs); err != nil || !slices.Contains(indexes, "by_customer") {
		t.Errorf("RethinkDB indexes = %v (%v), want by_customer", indexes, err)
	}

	// Rows are counted.
	if _, err := r.DB(rdbName).Table("line_items").Insert([]map[string]any{{"sku": "a"}, {"sku": "b"}}).RunWrite(rs); err != nil {
		t.Fatal(err)
	}

	// Retain keeps the table's data; Delete drops the database.
	if err := gn.Tables(ns).Delete(ctx, tbl.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	framework.Eventually(t, 60*time.Second, "the table object is gone", func(ctx context.Context) error {
		if _, err := gn.Tables(ns).Get(ctx, tbl.Name, metav1.GetOptions{}); err == nil {
			return fmt.Errorf("still there")
		}
		return nil
	})
	var n int
	if err := r.DB(rdbName).Table("line_items").Count().ReadOne(&n, rs); err != nil || n != 2 {
		t.Fatalf("after deleting a Retain table: RethinkDB rows = %d (%v), want the 2 rows kept", n, err)
	}
	if err := gn.Databases(ns).Delete(ctx, "orders", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	framework.Eventually(t, 60*time.Second, "the Delete database is dropped from RethinkDB", func(ctx context.Context) error {
		var names []string
		if err := r.DBList().ReadAll(&names, rs); err != nil {
			return err
		}
		if slices.Contains(names, rdbName) {
			return fmt.Errorf("RethinkDB still has %s", rdbName)
		}
		return nil
	})
}
