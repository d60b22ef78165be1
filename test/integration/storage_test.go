package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/retry"

	"github.com/guildnet/guildnet/apis/guildnet"
	"github.com/guildnet/guildnet/apis/guildnet/v1alpha1"
	guildnetclient "github.com/guildnet/guildnet/generated/clientset/versioned"
	informers "github.com/guildnet/guildnet/generated/informers/externalversions"
	"github.com/guildnet/guildnet/test/framework"
)

func writeManifest(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "manifest.yaml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// The three kinds behave like any Kubernetes resource in kubectl: create,
// get with printer columns, patch, server-side apply, optimistic
// concurrency, watch and delete.
func TestKubectlLifecycle(t *testing.T) {
	env := framework.Env(t)
	admin := kubernetes.NewForConfigOrDie(env.AdminConfig())
	ns := createNamespace(t, admin, "kubectl")
	kc := env.AdminKubeconfig
	k := func(args ...string) string {
		return framework.MustKubectl(t, kc, append([]string{"-n", ns}, args...)...)
	}

	// A watch per kind, started before the changes, sees them all.
	watchCtx, stopWatch := context.WithCancel(context.Background())
	kinds := map[string]string{"databases": "orders", "tables": "orders.items", "workspaces": "dev"}
	watchOut := map[string]*framework.LockedBuffer{}
	var watchers []*exec.Cmd
	for resource := range kinds {
		cmd := exec.CommandContext(watchCtx, framework.Kubectl(t), "--kubeconfig", kc, "-n", ns, "get", resource, "-w", "--output-watch-events")
		watchOut[resource] = &framework.LockedBuffer{}
		cmd.Stdout = watchOut[resource]
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		watchers = append(watchers, cmd)
	}
	defer func() {
		stopWatch()
		for _, cmd := range watchers {
			_ = cmd.Wait()
		}
	}()

	// The database is created by server-side apply, so alice owns its fields.
	apply := writeManifest(t, "apiVersion: guildnet.io/v1alpha1\nkind: Database\nmetadata: {name: orders, labels: {team: a}}\nspec: {deletionPolicy: Delete}\n")
	k("apply", "--server-side", "--field-manager=alice", "-f", apply)
	k("create", "-f", writeManifest(t, `
apiVersion: guildnet.io/v1alpha1
kind: Table
metadata: {name: orders.items}
spec: {indexes: [{name: customer}]}
---
apiVersion: guildnet.io/v1alpha1
kind: Workspace
metadata: {name: dev}
spec: {image: codercom/code-server:4.99.0}
`))

	// Printer columns. The reconciler creates the workspace's Deployment; with
	// no node to run it, the workspace stays Starting.
	k("wait", "--for=jsonpath={.status.phase}=Starting", "--timeout=60s", "workspace/dev")
	checkColumns(t, k("get", "workspaces"), []string{"NAME", "PHASE", "READY", "IMAGE", "AGE"}, []string{"dev", "Starting", "0/1", "codercom/code-server:4.99.0"})
	// The reconciler makes the database and table; kubectl wait sees it.
	k("wait", "--for=condition=Ready", "--timeout=60s", "database/orders", "table/orders.items")
	checkColumns(t, k("get", "databases"), []string{"NAME", "RETHINKDB NAME", "TABLES", "READY", "AGE"},
		[]string{"orders", guildnet.RethinkDBDatabaseName(ns, "orders"), "1", "True"})
	checkColumns(t, k("get", "tables"), []string{"NAME", "DATABASE", "PRIMARY KEY", "ROWS", "READY", "AGE"}, []string{"orders.items", "orders", "id", "0", "True"})

	// Defaults were applied and status is not writable through the main resource.
	if got := k("get", "table", "orders.items", "-o", "jsonpath={.spec.primaryKey} {.spec.durability} {.spec.indexes[0].fields[0]}"); got != "id hard customer" {
		t.Errorf("table defaults: got %q", got)
	}

	// patch and the generation.
	k("patch", "workspace", "dev", "--type=merge", "-p", `{"spec":{"suspend":true}}`)
	if got := k("get", "workspace", "dev", "-o", "jsonpath={.spec.suspend} {.metadata.generation}"); got != "true 2" {
		t.Errorf("after patch: suspend and generation = %q, want \"true 2\"", got)
	}
	// Validation errors name the field.
	r := framework.RunKubectl(t, kc, "-n", ns, "patch", "table", "orders.items", "--type=merge", "-p", `{"spec":{"primaryKey":"sku"}}`)
	if r.Err == nil || !strings.Contains(r.Stderr, "spec.primaryKey: Invalid value: \"sku\": field is immutable") {
		t.Errorf("changing the primary key: want an immutable-field error, got %v: %s", r.Err, r.Stderr)
	}

	// Server-side apply: alice's fields are set; bob changing one conflicts.
	if got := k("get", "database", "orders", "-o", "jsonpath={.metadata.labels.team} {.spec.deletionPolicy}"); got != "a Delete" {
		t.Errorf("after server-side apply: %q", got)
	}
	conflicting := writeManifest(t, "apiVersion: guildnet.io/v1alpha1\nkind: Database\nmetadata: {name: orders}\nspec: {deletionPolicy: Retain}\n")
	r = framework.RunKubectl(t, kc, "-n", ns, "apply", "--server-side", "--field-manager=bob", "-f", conflicting)
	if r.Err == nil || !strings.Contains(r.Stderr, "conflict") {
		t.Errorf("server-side apply of a field alice owns: want a conflict, got %v: %s", r.Err, r.Stderr)
	}

	// A stale resourceVersion gets 409 Conflict.
	gn := guildnetclient.NewForConfigOrDie(env.AdminConfig())
	ctx := context.Background()
	db, err := gn.GuildnetV1alpha1().Databases(ns).Get(ctx, "orders", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	stale := db.DeepCopy()
	db.Labels["step"] = "1"
	if _, err := gn.GuildnetV1alpha1().Databases(ns).Update(ctx, db, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	stale.Labels["step"] = "stale"
	_, err = gn.GuildnetV1alpha1().Databases(ns).Update(ctx, stale, metav1.UpdateOptions{})
	if !apierrors.IsConflict(err) {
		t.Fatalf("update with a stale resourceVersion: want 409 Conflict, got %v", err)
	}
	if !strings.Contains(err.Error(), "the object has been modified") {
		t.Errorf("409 message: %v", err)
	}

	// Every kind: list, label (an update), delete, NotFound after.
	for resource, name := range kinds {
		if out := k("get", resource, "-o", "name"); !strings.Contains(out, "/"+name) {
			t.Errorf("kubectl get %s does not list %s:\n%s", resource, name, out)
		}
		k("label", resource, name, "checked=yes")
		k("delete", resource, name)
		r = framework.RunKubectl(t, kc, "-n", ns, "get", resource, name)
		if r.Err == nil || !strings.Contains(r.Stderr, resource+`.guildnet.io "`+name+`" not found`) {
			t.Errorf("get %s after delete: want NotFound, got %v: %s", resource, r.Err, r.Stderr)
		}
	}

	for resource, name := range kinds {
		framework.Eventually(t, 30*time.Second, "kubectl get "+resource+" -w shows the create, update and delete", func(context.Context) error {
			out := watchOut[resource].String()
			for _, event := range []string{"ADDED", "MODIFIED", "DELETED"} {
				if !regexp.MustCompile(`(?m)^` + event + `\s+` + regexp.QuoteMeta(name) + `\s`).MatchString(out) {
					return fmt.Errorf("watch output lacks %s %s:\n%s", event, name, out)
				}
			}
			return nil
		})
	}
}

var spaces = regexp.MustCompile(`\s{2,}`)

// checkColumns checks the header of `kubectl get` and the first cells of its first row.
func checkColumns(t *testing.T, out string, header, row []string) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 2 {
		t.Fatalf("kubectl get printed no rows:\n%s", out)
	}
	if got := spaces.Split(strings.TrimSpace(lines[0]), -1); strings.Join(got, "|") != strings.Join(header, "|") {
		t.Errorf("columns = %q, want %q", got, header)
	}
	cells := spaces.Split(strings.TrimSpace(lines[1]), -1)
	for i, want := range row {
		if i >= len(cells) || cells[i] != want {
			t.Errorf("row = %q, want it to start with %q", cells, row)
			return
		}
	}
}

// A client-go informer built from generated/ sees exactly what a fresh list
// sees after a burst of concurrent creates, updates and deletes.
func TestInformerStaysInSync(t *testing.T) {
	env := framework.Env(t)
	admin := kubernetes.NewForConfigOrDie(env.AdminConfig())
	ns := createNamespace(t, admin, "informer")
	gn := guildnetclient.NewForConfigOrDie(env.AdminConfig())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	factory := informers.NewSharedInformerFactoryWithOptions(gn, 0, informers.WithNamespace(ns))
	inf := factory.Guildnet().V1alpha1().Workspaces()
	lister := inf.Lister()
	informer := inf.Informer()
	factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), informer.HasSynced) {
		t.Fatal("informer did not sync")
	}

	const workers, perWorker = 4, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := gn.GuildnetV1alpha1().Workspaces(ns)
			for i := range perWorker {
				name := fmt.Sprintf("w%d-%d", w, i)
				ws := &v1alpha1.Workspace{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1alpha1.WorkspaceSpec{Image: "nginx"}}
				if _, err := client.Create(ctx, ws, metav1.CreateOptions{}); err != nil {
					errs <- err
					return
				}
				patch := fmt.Appendf(nil, `{"metadata":{"labels":{"step":"%d"}}}`, i)
				if _, err := client.Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
					errs <- err
					return
				}
				if i%3 == 0 {
					if err := client.Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
						errs <- err
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	// The workspace reconciler keeps writing status for a while after the
	// burst, so each attempt compares the informer with a list taken then:
	// they must come to agree, object by object and resourceVersion by
	// resourceVersion.
	wantCount := workers * (perWorker - (perWorker+2)/3)
	framework.Eventually(t, 30*time.Second, "informer cache equals a fresh list", func(ctx context.Context) error {
		fresh, err := gn.GuildnetV1alpha1().Workspaces(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		if len(fresh.Items) != wantCount {
			return fmt.Errorf("server lists %d workspaces, want %d", len(fresh.Items), wantCount)
		}
		want := map[string]string{}
		for _, ws := range fresh.Items {
			want[ws.Name] = ws.ResourceVersion
		}
		cached, err := lister.Workspaces(ns).List(labelsEverything())
		if err != nil {
			return err
		}
		got := map[string]string{}
		for _, ws := range cached {
			got[ws.Name] = ws.ResourceVersion
		}
		if len(got) != len(want) {
			return fmt.Errorf("informer has %d objects, list has %d", len(got), len(want))
		}
		for name, rv := range want {
			if got[name] != rv {
				return fmt.Errorf("%s: informer has resourceVersion %q, list has %q", name, got[name], rv)
			}
		}
		return nil
	})
}

// Objects live in RethinkDB, not in guildnet-apiserver's memory.
func TestObjectsSurviveAPIServerRestart(t *testing.T) {
	env := framework.Env(t)
	admin := kubernetes.NewForConfigOrDie(env.AdminConfig())
	ns := createNamespace(t, admin, "restart")
	gn := guildnetclient.NewForConfigOrDie(env.AdminConfig())
	ctx := context.Background()
	created, err := gn.GuildnetV1alpha1().Databases(ns).Create(ctx, newDatabase("keep"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := env.RestartGuildNetAPIServer(ctx); err != nil {
		t.Fatal(err)
	}
	framework.Eventually(t, 60*time.Second, "the database is served again after the restart", func(ctx context.Context) error {
		got, err := gn.GuildnetV1alpha1().Databases(ns).Get(ctx, "keep", metav1.GetOptions{})
		if err != nil {
			return err
		}
		// The reconciler may write the database's status (finalizer, Ready)
		// around the restart, so the resourceVersion may move on, never back.
		gotRV, _ := strconv.ParseUint(got.ResourceVersion, 10, 64)
		createdRV, _ := strconv.ParseUint(created.ResourceVersion, 10, 64)
		if got.UID != created.UID || gotRV < createdRV {
			return fmt.Errorf("after restart: uid %s rv %s, want uid %s rv >= %s", got.UID, got.ResourceVersion, created.UID, created.ResourceVersion)
		}
		return nil
	})
}

// kube-controller-manager's namespace controller finds guildnet.io objects
// through discovery and its metadata client (protobuf first) and deletes
// them, so the namespace goes away.
func TestNamespaceDeletionCompletes(t *testing.T) {
	env := framework.Env(t)
	admin := kubernetes.NewForConfigOrDie(env.AdminConfig())
	ns := createNamespace(t, admin, "nsdelete")
	gn := guildnetclient.NewForConfigOrDie(env.AdminConfig())
	ctx := context.Background()
	if _, err := gn.GuildnetV1alpha1().Databases(ns).Create(ctx, newDatabase("orders"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := gn.GuildnetV1alpha1().Tables(ns).Create(ctx, &v1alpha1.Table{ObjectMeta: metav1.ObjectMeta{Name: "orders.items"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := gn.GuildnetV1alpha1().Workspaces(ns).Create(ctx, &v1alpha1.Workspace{ObjectMeta: metav1.ObjectMeta{Name: "dev"}, Spec: v1alpha1.WorkspaceSpec{Image: "nginx"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := admin.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	framework.Eventually(t, 2*time.Minute, "namespace "+ns+" is deleted", func(ctx context.Context) error {
		got, err := admin.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		return fmt.Errorf("still %s: %v", got.Status.Phase, namespaceConditions(got))
	})
	// And the objects are gone from guildnet-apiserver too.
	dbs, err := gn.GuildnetV1alpha1().Databases(ns).List(ctx, metav1.ListOptions{})
	if err != nil || len(dbs.Items) != 0 {
		t.Fatalf("databases left in the deleted namespace: %v %v", dbs, err)
	}
}

func namespaceConditions(ns *corev1.Namespace) string {
	var parts []string
	for _, c := range ns.Status.Conditions {
		if c.Status == corev1.ConditionTrue {
			parts = append(parts, string(c.Type)+": "+c.Message)
		}
	}
	return strings.Join(parts, "; ")
}

// Two guildnet-apiserver processes on one RethinkDB, as two replicas of the
// Deployment: concurrent read-modify-write through both loses no update, and
// a watcher on each sees every change once, in increasing resourceVersion.
func TestTwoReplicasWriteConcurrently(t *testing.T) {
	env := framework.Env(t)
	admin := kubernetes.NewForConfigOrDie(env.AdminConfig())
	ns := createNamespace(t, admin, "replicas")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	second, err := env.StartReplica(ctx, "second")
	if err != nil {
		t.Fatal(err)
	}
	defer second.Stop()

	clients := []guildnetclient.Interface{
		guildnetclient.NewForConfigOrDie(env.DirectConfig()),
		guildnetclient.NewForConfigOrDie(second.Config()),
	}
	created, err := clients[0].GuildnetV1alpha1().Databases(ns).Create(ctx, &v1alpha1.Database{
		ObjectMeta: metav1.ObjectMeta{Name: "counter", Annotations: map[string]string{"count": "0"}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}

	// One watcher per replica, from the creation's resourceVersion.
	type seen struct {
		rvs    []uint64
		counts []int
	}
	watched := make([]*seen, len(clients))
	var watchers sync.WaitGroup
	const writers, increments = 4, 15
	total := writers * increments
	for i, c := range clients {
		w, err := c.GuildnetV1alpha1().Databases(ns).Watch(ctx, metav1.ListOptions{ResourceVersion: created.ResourceVersion})
		if err != nil {
			t.Fatal(err)
		}
		watched[i] = &seen{}
		watchers.Add(1)
		go func(s *seen) {
			defer watchers.Done()
			defer w.Stop()
			for ev := range w.ResultChan() {
				if ev.Type != watch.Modified {
					continue
				}
				db := ev.Object.(*v1alpha1.Database)
				rv, _ := strconv.ParseUint(db.ResourceVersion, 10, 64)
				n, _ := strconv.Atoi(db.Annotations["count"])
				if len(s.counts) > 0 && n == s.counts[len(s.counts)-1] || len(s.counts) == 0 && n == 0 {
					// The reconciler's own writes (finalizer, status) leave the count alone.
					continue
				}
				s.rvs = append(s.rvs, rv)
				s.counts = append(s.counts, n)
				if n == total {
					return
				}
			}
		}(watched[i])
	}

	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dbs := clients[w%len(clients)].GuildnetV1alpha1().Databases(ns)
			for range increments {
				// Conflicts are the point: every writer retries until its increment lands.
				err := retry.RetryOnConflict(wait.Backoff{Steps: 100, Duration: 5 * time.Millisecond, Factor: 1.2, Jitter: 1, Cap: 200 * time.Millisecond}, func() error {
					db, err := dbs.Get(ctx, "counter", metav1.GetOptions{})
					if err != nil {
						return err
					}
					n, _ := strconv.Atoi(db.Annotations["count"])
					db.Annotations["count"] = strconv.Itoa(n + 1)
					_, err = dbs.Update(ctx, db, metav1.UpdateOptions{})
					return err
				})
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	final, err := clients[1].GuildnetV1alpha1().Databases(ns).Get(ctx, "counter", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if final.Annotations["count"] != strconv.Itoa(total) {
		t.Fatalf("lost updates: count is %s after %d increments", final.Annotations["count"], total)
	}

	done := make(chan struct{})
	go func() { watchers.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatal("watchers did not see the last increment")
	}
	for i, s := range watched {
		if len(s.counts) != total {
			t.Errorf("watcher on replica %d saw %d updates, want %d: %v", i, len(s.counts), total, s.counts)
		}
		for j := range s.counts {
			if s.counts[j] != j+1 {
				t.Errorf("watcher on replica %d: update %d carries count %d (missed or repeated an event)", i, j, s.counts[j])
				break
			}
			if j > 0 && s.rvs[j] <= s.rvs[j-1] {
				t.Errorf("watcher on replica %d: resourceVersion went from %d to %d", i, s.rvs[j-1], s.rvs[j])
				break
			}
		}
	}
}
