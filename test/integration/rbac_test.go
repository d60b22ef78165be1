package integration

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/guildnet/guildnet/apis/guildnet/v1alpha1"
	guildnetclient "github.com/guildnet/guildnet/generated/clientset/versioned"
	"github.com/guildnet/guildnet/test/framework"
)

// Every verb on databases, tables, tables/rows and tables/watch is allowed or denied exactly as the
// built-in roles (extended by artifacts/base/rbac-aggregated.yaml) say, for
// a user with no role, with view and with edit in the namespace. A denial is
// a 403 and carries no data.
func TestRBACMatrixForDatabasesAndTables(t *testing.T) {
	env := framework.Env(t)
	ctx := context.Background()
	admin := kubernetes.NewForConfigOrDie(env.AdminConfig())
	gnAdmin := guildnetclient.NewForConfigOrDie(env.AdminConfig()).GuildnetV1alpha1()
	ns := createNamespace(t, admin, "rbac")

	users := map[string]string{"nobody": "", "viewer": "view", "editor": "edit"}
	for user, role := range users {
		if role == "" {
			continue
		}
		_, err := admin.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: user},
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: role},
			Subjects:   []rbacv1.Subject{{Kind: "User", APIGroup: "rbac.authorization.k8s.io", Name: user}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
	}
	// Objects the verbs act on, made by the admin for each user.
	for user := range users {
		if _, err := gnAdmin.Databases(ns).Create(ctx, &v1alpha1.Database{ObjectMeta: metav1.ObjectMeta{Name: "db-" + user}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := gnAdmin.Tables(ns).Create(ctx, &v1alpha1.Table{ObjectMeta: metav1.ObjectMeta{Name: "db-" + user + ".t"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	type op func(ctx context.Context, c guildnetclient.Interface, user string) error
	patch := []byte(`{"metadata":{"labels":{"touched":"yes"}}}`)
	verbs := []struct {
		name string
		db   op
		tbl  op
		// allowed by role ("" = no role)
		allowed map[string]bool
	}{
		{"get", func(ctx context.Context, c guildnetclient.Interface, u string) error {
			_, err := c.GuildnetV1alpha1().Databases(ns).Get(ctx, "db-"+u, metav1.GetOptions{})
			return err
		}, func(ctx context.Context, c guildnetclient.Interface, u string) error {
			_, err := c.GuildnetV1alpha1().Tables(ns).Get(ctx, "db-"+u+".t", metav1.GetOptions{})
			return err
		}, map[string]bool{"view": true, "edit": true}},
		{"list", func(ctx context.Context, c guildnetclient.Interface, u string) error {
			_, err := c.GuildnetV1alpha1().Databases(ns).List(ctx, metav1.ListOptions{})
			return err
		}, func(ctx context.Context, c guildnetclient.Interface, u string) error {
			_, err := c.GuildnetV1alpha1().Tables(ns).List(ctx, metav1.ListOptions{})
			return err
		}, map[string]bool{"view": true, "edit": true}},
		{"watch", func(ctx context.Context, c guildnetclient.Interface, u string) error {
			w, err := c.GuildnetV1alpha1().Databases(ns).Watch(ctx, metav1.ListOptions{})
			if err == nil {
				w.Stop()
			}
			return err
		}, func(ctx context.Context, c guildnetclient.Interface, u string) error {
			w, err := c.GuildnetV1alpha1().Tables(ns).Watch(ctx, metav1.ListOptions{})
			if err == nil {
				w.Stop()
			}
			return err
		}, map[string]bool{"view": true, "edit": true}},
		{"patch", func(ctx context.Context, c guildnetclient.Interface, u string) error {
			_, err := c.GuildnetV1alpha1().Databases(ns).Patch(ctx, "db-"+u, types.MergePatchType, patch, metav1.PatchOptions{})
			return err
		}, func(ctx context.Context, c guildnetclient.Interface, u string) error {
			_, err := c.GuildnetV1alpha1().Tables(ns).Patch(ctx, "db-"+u+".t", types.MergePatchType, patch, metav1.PatchOptions{})
			return err
		}, map[string]bool{"edit": true}},
		{"update status", func(ctx context.Context, c guildnetclient.Interface, u string) error {
			db, err := gnAdmin.Databases(ns).Get(ctx, "db-"+u, metav1.GetOptions{})
			if err != nil {
				return err
			}
			_, err = c.GuildnetV1alpha1().Databases(ns).UpdateStatus(ctx, db, metav1.UpdateOptions{})
			return err
		}, func(ctx context.Context, c guildnetclient.Interface, u string) error {
			tb, err := gnAdmin.Tables(ns).Get(ctx, "db-"+u+".t", metav1.GetOptions{})
			if err != nil {
				return err
			}
			_, err = c.GuildnetV1alpha1().Tables(ns).UpdateStatus(ctx, tb, metav1.UpdateOptions{})
			return err
		}, map[string]bool{}}, // status is the reconciler's
		{"create", func(ctx context.Context, c guildnetclient.Interface, u string) error {
			_, err := c.GuildnetV1alpha1().Databases(ns).Create(ctx, &v1alpha1.Database{ObjectMeta: metav1.ObjectMeta{Name: "new-" + u}}, metav1.CreateOptions{})
			return err
		}, func(ctx context.Context, c guildnetclient.Interface, u string) error {
			_, err := c.GuildnetV1alpha1().Tables(ns).Create(ctx, &v1alpha1.Table{ObjectMeta: metav1.ObjectMeta{Name: "new-" + u + ".t"}}, metav1.CreateOptions{})
			return err
		}, map[string]bool{"edit": true}},
		{"delete", func(ctx context.Context, c guildnetclient.Interface, u string) error {
			return c.GuildnetV1alpha1().Databases(ns).Delete(ctx, "db-"+u, metav1.DeleteOptions{})
		}, func(ctx context.Context, c guildnetclient.Interface, u string) error {
			return c.GuildnetV1alpha1().Tables(ns).Delete(ctx, "db-"+u+".t", metav1.DeleteOptions{})
		}, map[string]bool{"edit": true}},
	}

	// tables/rows: RBAC checks the verb of the HTTP method.
	rowsOp := func(method string, key string, body string) op {
		return func(ctx context.Context, c guildnetclient.Interface, u string) error {
			if method == http.MethodDelete || method == http.MethodPut {
				// A row to replace or delete, written by the admin.
				if err := rowsRequest(gnAdminClient(env), http.MethodPost, ns, "db-"+u+".t").Param("conflict", "replace").
					Body([]byte(`{"id":"`+key+`"}`)).SetHeader("Content-Type", "application/json").Do(ctx).Error(); err != nil {
					return err
				}
			}
			req := rowsRequest(c.GuildnetV1alpha1().RESTClient(), method, ns, "db-"+u+".t")
			if key != "" {
				req = rowsRequest(c.GuildnetV1alpha1().RESTClient(), method, ns, "db-"+u+".t", key)
			}
			if body != "" {
				req = req.Param("conflict", "replace").SetHeader("Content-Type", "application/json").Body([]byte(body))
			}
			return req.Do(ctx).Error()
		}
	}
	rowVerbs := []struct {
		name    string
		do      op
		allowed map[string]bool
	}{
		{"get rows", rowsOp(http.MethodGet, "", ""), map[string]bool{"view": true, "edit": true}},
		{"create rows", rowsOp(http.MethodPost, "", `{"id":"k1"}`), map[string]bool{"edit": true}},
		{"update a row", rowsOp(http.MethodPut, "k2", `{"id":"k2"}`), map[string]bool{"edit": true}},
		{"delete a row", rowsOp(http.MethodDelete, "k3", ""), map[string]bool{"edit": true}},
		{"watch the table", func(ctx context.Context, c guildnetclient.Interface, u string) error {
			// A one-second stream that ends with a BOOKMARK.
			return c.GuildnetV1alpha1().RESTClient().Get().
				AbsPath("/apis/guildnet.io/v1alpha1/namespaces", ns, "tables", "db-"+u+".t", "watch").
				Param("timeoutSeconds", "1").Do(ctx).Error()
		}, map[string]bool{"view": true, "edit": true}},
	}

	for user, role := range users {
		cfg, err := env.UserConfig(user)
		if err != nil {
			t.Fatal(err)
		}
		c := guildnetclient.NewForConfigOrDie(cfg)
		for _, v := range rowVerbs {
			want := v.allowed[role]
			framework.Eventually(t, 30*time.Second, fmt.Sprintf("%s (role %q) %s", user, role, v.name), func(ctx context.Context) error {
				err := v.do(ctx, c, user)
				switch {
				case want && err != nil:
					return fmt.Errorf("want allowed, got %v", err)
				case !want && !apierrors.IsForbidden(err):
					return fmt.Errorf("want 403 Forbidden, got %v", err)
				}
				return nil
			})
		}
		for _, v := range verbs {
			for _, res := range []struct {
				name string
				do   op
			}{{"databases", v.db}, {"tables", v.tbl}} {
				want := v.allowed[role]
				what := fmt.Sprintf("%s (role %q) %s %s", user, role, v.name, res.name)
				// RoleBindings reach guildnet-apiserver's authorizer cache
				// within seconds; wait for the expected answer.
				framework.Eventually(t, 20*time.Second, what, func(ctx context.Context) error {
					err := res.do(ctx, c, user)
					switch {
					case want && err != nil:
						return fmt.Errorf("want allowed, got %v", err)
					case !want && !apierrors.IsForbidden(err):
						return fmt.Errorf("want 403 Forbidden, got %v", err)
					}
					return nil
				})
			}
		}
	}
}

func gnAdminClient(env interface{ AdminConfig() *rest.Config }) rest.Interface {
	return guildnetclient.NewForConfigOrDie(env.AdminConfig()).GuildnetV1alpha1().RESTClient()
}
