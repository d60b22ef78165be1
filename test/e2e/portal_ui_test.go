package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"

	"github.com/guildnet/guildnet/apis/guildnet/v1alpha1"
	guildnetclient "github.com/guildnet/guildnet/generated/clientset/versioned"
	"github.com/guildnet/guildnet/portal/join"
	"github.com/guildnet/guildnet/test/framework"
	"github.com/guildnet/guildnet/test/workspacetest"
)

const (
	portalScript = "portal-e2e.js"
	// scriptTimeout bounds the whole browser run; the script's own
	// --timeout-ms is shorter, so that it reports the step it was in
	// rather than being killed.
	scriptTimeout = 6 * time.Minute
	scriptBudget  = 5 * time.Minute
	// stepTimeout bounds each wait of the script. Generous: the machine
	// runs the control plane and Chromium on two shared cores.
	stepTimeout = 60 * time.Second
)

// TestPortalUI walks through the portal's UI as a newcomer would (issue #6,
// "What it must show"), in headless Chromium against the local control
// plane:
//
//  1. open the URL that guildnet-portal serve printed (token → session);
//  2. join the cluster by uploading a ServiceAccount-based join file (the
//     device acts as a normal user with edit rights in one namespace) and
//     see it listed;
//  3. create a database and a table and see both become Ready;
//  4. open the row browser and insert a row;
//  5. see a row inserted by another client (this test, through
//     kube-apiserver as the admin) appear without a reload;
//  6. create a workspace, see its phase and reason (Starting: there is no
//     kubelet), then play the kubelet and see it Running;
//  7. keep a screenshot of each step in framework.ArtifactsDir.
//
// The browser side is hack/browser/portal-e2e.js; it prints one JSON line
// per step and says when it waits for this side to act.
func TestPortalUI(t *testing.T) {
	if skipBrowser() {
		t.Skip("GUILDNET_SKIP_BROWSER=1")
	}
	env := framework.Env(t)
	admin := kubernetes.NewForConfigOrDie(env.AdminConfig())
	gn := guildnetclient.NewForConfigOrDie(env.AdminConfig())
	artifacts := framework.ArtifactsDir(t)
	preflight(t, portalScript)

	ns, err := admin.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "e2e-"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	namespace := ns.Name

	// The join file an admin would hand to a newcomer's device
	// (guildnet-portal make-join-config).
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	made, err := join.MakeJoinConfig(ctx, admin, join.MakeOptions{
		Namespace: namespace, Name: "browser", ClusterName: "guildnet-dev",
		Server: env.KubeAPIServerURL, CertificateAuthorityData: env.AdminConfig().CAData,
	})
	if err != nil {
		t.Fatal(err)
	}
	joinFile := filepath.Join(t.TempDir(), "guildnet.config")
	if err := os.WriteFile(joinFile, made.Data, 0o600); err != nil {
		t.Fatal(err)
	}
	// The edit role's guildnet.io rules arrive through ClusterRole
	// aggregation, a controller's work: wait for them, so that a slow
	// aggregation does not read as a UI failure.
	waitDeviceAllowed(t, made, namespace)

	p := startPortal(t, filepath.Join(t.TempDir(), "portal-state"))

	const (
		database  = "shop"
		table     = "items"
		workspace = "ide"
		liveKey   = "from-other-client"
	)
	start := time.Now()
	run := startBrowserScript(t, scriptTimeout, portalScript,
		"--url", p.URL,
		"--join-file", joinFile,
		"--screenshots", artifacts,
		"--namespace", namespace,
		"--cluster-name", "local",
		"--database", database,
		"--table", table,
		"--workspace", workspace,
		"--step-timeout-ms", fmt.Sprint(stepTimeout.Milliseconds()),
		"--timeout-ms", fmt.Sprint(scriptBudget.Milliseconds()),
	)

	var (
		done     *event
		failed   *event
		steps    []event
		lastStep = "launch"
		facts    = map[string]event{}
	)
	// Any one step may take up to 1.5 step timeouts in the script; add room
	// for the screenshot and Chromium on a busy machine.
	progress := 2*stepTimeout + 30*time.Second
	for {
		ev, ok := run.next(progress, lastStep)
		if !ok {
			break
		}
		lastStep = ev.Step
		switch {
		case ev.Status == "start":
			continue
		case ev.Status == "failed":
			e := ev
			failed = &e
			continue
		case ev.Step == "done":
			e := ev
			done = &e
			continue
		}
		switch ev.Step {
		case "waiting-for-live-row":
			t.Logf("browser waits for a row from another client; inserting %s into %s.%s", liveKey, database, table)
			insertRow(t, gn, namespace, database+"."+table, fmt.Sprintf(`{"id":%q,"name":"inserted by another client","source":"go test"}`, liveKey))
		case "waiting-for-workspace-running":
			t.Logf("browser waits for workspace %s to run; playing the kubelet", workspace)
			markWorkspacePodReady(t, admin, namespace, workspace)
		default:
			t.Logf("step %-18s ok in %6d ms %s", ev.Step, ev.MS, summary(ev))
			steps = append(steps, ev)
			facts[ev.Step] = ev
		}
	}
	exitErr := run.wait(30 * time.Second)
	if failed != nil {
		more := ""
		if len(failed.JSErrors) > 0 {
			more += "\n  uncaught JavaScript errors:" + bullets(failed.JSErrors)
		}
		if len(failed.ConsoleErrors) > 0 {
			more += "\n  last console errors (4xx answers log one each):" + bullets(failed.ConsoleErrors)
		}
		t.Fatalf("browser step %q failed: %s\n  errors the page shows:%s\n  screenshot: %s\n  page: %s%s",
			failed.Step, failed.Error, bullets(failed.VisibleErrors), failed.Screenshot, failed.URL, more)
	}
	if exitErr != nil || done == nil {
		t.Fatalf("%s ended without finishing (after step %q): %v: %s", portalScript, lastStep, exitErr, run.lastLine())
	}

	// What the browser reported, checked against the cluster: the UI did
	// what it showed.
	if got := facts["join"].str("server"); got != env.KubeAPIServerURL {
		t.Errorf("the joined cluster's row shows server %q, want %s", got, env.KubeAPIServerURL)
	}
	if got := facts["join"].str("defaults"); !strings.Contains(got, "namespace "+namespace) {
		t.Errorf("the joined cluster's defaults read %q, want the join file's namespace %s", got, namespace)
	}
	if got := facts["open-cluster"].str("namespace"); got != namespace {
		t.Errorf("the UI opened namespace %q, want the join file's %q", got, namespace)
	}
	checkRowsViaAPI(t, gn, namespace, database+"."+table, "from-ui", liveKey)
	ws, err := gn.GuildnetV1alpha1().Workspaces(namespace).Get(context.Background(), workspace, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the workspace created in the UI: %v", err)
	}
	if ws.Status.Phase != v1alpha1.WorkspaceRunning {
		t.Errorf("workspace %s is %s in the cluster, the UI showed Running", workspace, ws.Status.Phase)
	}
	t.Logf("workspace before the kubelet: phase %q, reason %q", facts["workspace"].str("phase"), facts["workspace"].str("reason"))

	// The timings and screenshots, for the report.
	var names []string
	for _, ev := range steps {
		names = append(names, fmt.Sprintf("%s %d ms", ev.Step, ev.MS))
	}
	t.Logf("browser run: %s in total; %s", time.Since(start).Round(100*time.Millisecond), strings.Join(names, ", "))
	sort.Strings(done.Screenshots)
	t.Logf("screenshots in %s: %s", artifacts, strings.Join(baseNames(done.Screenshots), ", "))
	if len(done.Screenshots) != 9 {
		t.Errorf("%d screenshots, want one per step (9): %v", len(done.Screenshots), done.Screenshots)
	}
}

// waitDeviceAllowed waits (at most 30 s) until the device's ServiceAccount
// may use guildnet.io resources in its namespace.
func waitDeviceAllowed(t *testing.T, made *join.Made, namespace string) {
	t.Helper()
	cfg, err := join.Parse(made.Data, join.Options{})
	if err != nil {
		t.Fatal(err)
	}
	rc, err := cfg.RESTConfig()
	if err != nil {
		t.Fatal(err)
	}
	device := guildnetclient.NewForConfigOrDie(rc)
	framework.Eventually(t, 30*time.Second, "the device may list tables in "+namespace+" (edit role aggregated)", func(ctx context.Context) error {
		_, err := device.GuildnetV1alpha1().Tables(namespace).List(ctx, metav1.ListOptions{})
		return err
	})
}

// insertRow is the other client: a POST to tables/NAME/rows through
// kube-apiserver as the admin, not through the portal.
func insertRow(t *testing.T, gn guildnetclient.Interface, ns, table, row string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	raw, err := gn.GuildnetV1alpha1().RESTClient().Verb(http.MethodPost).
		AbsPath("/apis/guildnet.io/v1alpha1/namespaces", ns, "tables", table, "rows").
		SetHeader("Content-Type", "application/json").Body([]byte(row)).DoRaw(ctx)
	if err != nil {
		t.Fatalf("inserting a row as another client: %v: %s", err, raw)
	}
	if !strings.Contains(string(raw), `"inserted":1`) {
		t.Fatalf("inserting a row as another client: %s", raw)
	}
}

// markWorkspacePodReady plays the kubelet, which this control plane lacks:
// it waits for the workspace's pod (the replicaset controller makes it) and
// writes its status as Running and Ready, as test/integration's workspace
// tests do.
func markWorkspacePodReady(t *testing.T, kube kubernetes.Interface, ns, name string) {
	t.Helper()
	framework.Eventually(t, 60*time.Second, "workspace "+name+"'s pod is Ready", func(ctx context.Context) error {
		return retry.RetryOnConflict(retry.DefaultRetry, func() error {
			pod, err := workspacetest.LivePod(ctx, kube, ns, name)
			if err != nil {
				return err
			}
			return workspacetest.MarkPodReady(ctx, kube, pod)
		})
	})
}

// checkRowsViaAPI reads the table through kube-apiserver and expects keys.
func checkRowsViaAPI(t *testing.T, gn guildnetclient.Interface, ns, table string, keys ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, key := range keys {
		raw, err := gn.GuildnetV1alpha1().RESTClient().Get().
			AbsPath("/apis/guildnet.io/v1alpha1/namespaces", ns, "tables", table, "rows", key).DoRaw(ctx)
		if err != nil {
			t.Errorf("row %s of %s, read through kube-apiserver: %v: %s", key, table, err, raw)
			continue
		}
		var row map[string]any
		if err := json.Unmarshal(raw, &row); err != nil || row["id"] != key {
			t.Errorf("row %s of %s reads %s", key, table, raw)
		}
	}
}

// summary is a step's facts in one line, without the bookkeeping.
func summary(ev event) string {
	var parts []string
	for k, v := range ev.Fields {
		switch k {
		case "step", "status", "ms":
			continue
		case "screenshot":
			v = filepath.Base(fmt.Sprint(v))
		}
		parts = append(parts, fmt.Sprintf("%s=%v", k, v))
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

func baseNames(paths []string) []string {
	out := make([]string, len(paths))
	for i, p := range paths {
		out[i] = filepath.Base(p)
	}
	return out
}

func bullets(ss []string) string {
	if len(ss) == 0 {
		return " (none)"
	}
	return "\n    - " + strings.Join(ss, "\n    - ")
}
