// Command storage measures guildnet-apiserver's storage through
// kube-apiserver's aggregation layer against an equivalent CustomResource
// served by kube-apiserver itself: LIST of 500 objects and GET by name,
// p50/p99 and their ratios, then guildnet-apiserver's resident memory with
// 1,000 objects of each kind stored, at rest once its reconcilers are done
// with them (the median of samples over a few minutes of its periodic work),
// and that of a second guildnet-apiserver without reconcilers holding the
// same objects, each split into anonymous memory (what the Go heap takes,
// about twice what is live with the default GOGC) and mapped files (the
// binary's pages, the same in both).
//
// Equivalent means the same content: each widget copies a reconciled
// workspace's spec and status, so both lists carry about the same bytes
// (the sizes are printed). Requests are measured once the machine is quiet
// again after the writes, so the ratio compares the servers, not the
// controllers' work the writes started.
package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensions "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/guildnet/guildnet/apis/guildnet/v1alpha1"
	guildnetclient "github.com/guildnet/guildnet/generated/clientset/versioned"
	"github.com/guildnet/guildnet/pkg/devenv"
	"github.com/guildnet/guildnet/test/bench/benchutil"
)

var (
	objects   = flag.Int("objects", 500, "objects to list")
	lists     = flag.Int("lists", 60, "LIST requests per resource")
	gets      = flag.Int("gets", 300, "GET requests per resource")
	memObjs   = flag.Int("memory-objects", 1000, "objects of each kind stored before reading guildnet-apiserver's memory")
	restFor   = flag.Duration("rest", 6*time.Minute, "how long guildnet-apiserver's memory is sampled at rest, once the controllers have settled; long enough for the periodic work (resyncs each minute, log compaction each 5 minutes, the watch cache's consistency check each 5 to 7.5 minutes) to run")
	listRV    = flag.String("list-resource-version", "", `resourceVersion of the LISTs: "" is a consistent read (the default of kubectl and informers' relists), "0" any recent state from the watch cache`)
	namespace = "bench"
)

func main() {
	flag.Parse()
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "bench/storage: %v\n", err)
		os.Exit(1)
	}
}

var widgets = schema.GroupVersionResource{Group: "bench.guildnet.io", Version: "v1", Resource: "widgets"}

func run() error {
	ctx := context.Background()
	env, err := benchutil.StartCluster(ctx, devenv.Options{}, namespace)
	if err != nil {
		return err
	}
	defer env.Stop()
	cfg, kube, gn := env.AdminConfig(), env.Kube, env.GN
	dyn := dynamic.NewForConfigOrDie(cfg)
	if err := createCRD(ctx, apiextensions.NewForConfigOrDie(cfg)); err != nil {
		return err
	}

	fmt.Printf("creating %d workspaces ...\n", *objects)
	for i := range *objects {
		if _, err := gn.GuildnetV1alpha1().Workspaces(namespace).Create(ctx, workspace(i), metav1.CreateOptions{}); err != nil {
			return err
		}
	}
	// The workspaces set the reconciler and kube-controller-manager to
	// work (Deployments, ReplicaSets, pods, Secrets); requests measured
	// meanwhile would compare that load, not the servers.
	if err := benchutil.Settle(ctx); err != nil {
		return err
	}
	// Each widget carries its workspace's spec and status as the
	// reconciler left them, written the same way (create, then the status
	// subresource under another field manager), so both lists hold the
	// same fields and about the same bytes.
	fmt.Printf("creating %d widgets, each with its workspace's spec and status ...\n", *objects)
	for i := range *objects {
		ws, err := gn.GuildnetV1alpha1().Workspaces(namespace).Get(ctx, fmt.Sprintf("ws-%d", i), metav1.GetOptions{})
		if err != nil {
			return err
		}
		w, err := widget(i, ws)
		if err != nil {
			return err
		}
		status := w.Object["status"]
		created, err := dyn.Resource(widgets).Namespace(namespace).Create(ctx, w, metav1.CreateOptions{})
		if err != nil {
			return err
		}
		created.Object["status"] = status
		if _, err := dyn.Resource(widgets).Namespace(namespace).UpdateStatus(ctx, created, metav1.UpdateOptions{FieldManager: "widget-status"}); err != nil {
			return err
		}
	}
	if err := benchutil.Settle(ctx); err != nil {
		return err
	}

	// Both sides are read as raw bytes by the same REST client, so the
	// ratio compares the servers (and the aggregation hop), not client-side
	// decoding, which differs between typed and unstructured clients and
	// costs more than the server for 500 objects.
	raw := kube.CoreV1().RESTClient()
	fetch := func(path string, wantItems int) func() error {
		return func() error {
			req := raw.Get().AbsPath(path)
			if *listRV != "" && wantItems > 0 {
				req = req.Param("resourceVersion", *listRV)
			}
			body, err := req.DoRaw(ctx)
			if err == nil && wantItems > 0 {
				if got := strings.Count(string(body), `"uid":"`); got != wantItems {
					err = fmt.Errorf("GET %s returned %d objects, want %d", path, got, wantItems)
				}
			}
			return err
		}
	}
	gnList := "/apis/guildnet.io/v1alpha1/namespaces/" + namespace + "/workspaces"
	crdList := "/apis/bench.guildnet.io/v1/namespaces/" + namespace + "/widgets"
	listGN, listCRD := fetch(gnList, *objects), fetch(crdList, *objects)
	n := 0
	getGN := func() error {
		n++
		return fetch(fmt.Sprintf("/apis/guildnet.io/v1alpha1/namespaces/%s/workspaces/ws-%d", namespace, n%*objects), 0)()
	}
	m := 0
	getCRD := func() error {
		m++
		return fetch(fmt.Sprintf("/apis/bench.guildnet.io/v1/namespaces/%s/widgets/w-%d", namespace, m%*objects), 0)()
	}

	gnBytes, err := raw.Get().AbsPath(gnList).DoRaw(ctx)
	if err != nil {
		return err
	}
	crdBytes, err := raw.Get().AbsPath(crdList).DoRaw(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("LIST response bodies (uncompressed JSON): workspaces %d KiB, widgets %d KiB\n", len(gnBytes)>>10, len(crdBytes)>>10)

	fmt.Println("measuring (sequential, one REST client reading raw bytes, admin certificate, gzip on) ...")
	lGN, lCRD, err := interleave(*lists, listGN, listCRD)
	if err != nil {
		return err
	}
	gGN, gCRD, err := interleave(*gets, getGN, getCRD)
	if err != nil {
		return err
	}

	// A second guildnet-apiserver on the same RethinkDB, without
	// reconcilers, holds the same objects and the same watch history (both
	// follow RethinkDB's revision log), so its memory is the storage and API
	// serving alone, and the difference to the main server's is what the
	// reconcilers hold. The objects are created as users create them,
	// through kube-apiserver, which sends them to the main server: the one
	// that reconciles, and so sets the finalizers of databases and tables
	// at creation.
	serving, err := env.StartReplica(ctx, "serving-only", "--reconcile=false")
	if err != nil {
		return err
	}
	defer serving.Stop()
	servingGN, err := guildnetclient.NewForConfig(serving.Config())
	if err != nil {
		return err
	}
	fmt.Printf("storing %d workspaces, databases and tables ...\n", *memObjs)
	for i := range *memObjs {
		if i >= *objects {
			if _, err := gn.GuildnetV1alpha1().Workspaces(namespace).Create(ctx, workspace(i), metav1.CreateOptions{}); err != nil {
				return err
			}
		}
		if _, err := gn.GuildnetV1alpha1().Databases(namespace).Create(ctx, &v1alpha1.Database{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("db-%d", i)}}, metav1.CreateOptions{}); err != nil {
			return err
		}
		if _, err := gn.GuildnetV1alpha1().Tables(namespace).Create(ctx, &v1alpha1.Table{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("db-%d.items", i)}}, metav1.CreateOptions{}); err != nil {
			return err
		}
	}
	// One list of each from each server, so both have served them all.
	for _, c := range []guildnetclient.Interface{env.GN, servingGN} {
		if err := listAll(ctx, c); err != nil {
			return err
		}
	}
	stored, err := residentMB(env.GuildNetAPIServerPID())
	if err != nil {
		return err
	}
	// The reconcilers are still making each workspace's Deployment and
	// Service and counting tables; what a user's server holds is what is
	// left once they are done.
	if err := benchutil.Settle(ctx); err != nil {
		return err
	}
	mem, err := memoryOf(env.GuildNetAPIServerPID())
	if err != nil {
		return err
	}
	rss := mem["VmRSS"]
	servingMem, err := memoryOf(serving.PID())
	if err != nil {
		return err
	}
	servingRSS := servingMem["VmRSS"]
	heap, err := goHeap(ctx, env.DirectConfig())
	if err != nil {
		return err
	}
	atRest, err := sampleAtRest(ctx, *restFor, env.DirectConfig(), env.GuildNetAPIServerPID(), serving.PID())
	if err != nil {
		return err
	}

	fmt.Println()
	fmt.Printf("%-28s %12s %12s %12s %12s\n", "request", "guildnet p50", "CRD p50", "ratio p50", "goal")
	printRow("LIST "+fmt.Sprint(*objects), lGN, lCRD, 0.5, 50)
	printRow("GET by name", gGN, gCRD, 1.7, 50)
	fmt.Printf("%-28s %12s %12s %12s\n", "", "guildnet p99", "CRD p99", "ratio p99")
	printRow("LIST "+fmt.Sprint(*objects), lGN, lCRD, 0, 99)
	printRow("GET by name", gGN, gCRD, 0, 99)
	median := atRest.median(0)
	memVerdict := "met"
	if median["VmRSS"] > 150 {
		memVerdict = "MISSED"
	}
	fmt.Printf("\nguildnet-apiserver resident memory with %d workspaces, databases and tables, at rest (median of %d samples over %s): %.0f MB (goal <= 150 MB: %s)\n",
		*memObjs, len(atRest[0]), *restFor, median["VmRSS"], memVerdict)
	fmt.Printf("  of which anonymous (Go heap, stacks, runtime) %.0f MB, mapped files (the binary's code and data) %.0f MB; highest sample %.0f MB, lowest %.0f MB\n",
		median["RssAnon"], median["RssFile"], atRest.max(0), atRest.min(0))
	fmt.Printf("  right after storing them %.0f MB; once settled %.0f MB (anonymous %.0f, mapped files %.0f); Go heap once settled: %s\n",
		stored, rss, mem["RssAnon"], mem["RssFile"], heap)
	servingMedian := atRest.median(1)
	fmt.Printf("  without reconcilers (--reconcile=false, same objects and watch history), at rest: %.0f MB (anonymous %.0f MB, mapped files %.0f MB; once settled %.0f MB); the reconcilers add %.0f MB\n",
		servingMedian["VmRSS"], servingMedian["RssAnon"], servingMedian["RssFile"], servingRSS, median["VmRSS"]-servingMedian["VmRSS"])
	return nil
}

// memorySamples holds, per process, its memory (memoryOf) sampled over time.
type memorySamples [][]map[string]float64

// sampleAtRest samples the processes' memory every 5 seconds for d. A
// single reading depends on when it is taken: right after a burst of writes
// the Go heap has not yet been returned to the system, and the server's
// periodic work (resyncs, compaction, the watch cache's consistency check)
// raises it for a while. The median over a window covering that work is the
// memory the server holds at rest.
// Every 30 seconds it prints the first process's memory and Go heap (read
// from cfg's server), to show what moves it.
func sampleAtRest(ctx context.Context, d time.Duration, cfg *rest.Config, pids ...int) (memorySamples, error) {
	fmt.Printf("sampling resident memory at rest for %s ...\n", d)
	samples := make(memorySamples, len(pids))
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	start := time.Now()
	for n := 0; ; n++ {
		for i, pid := range pids {
			m, err := memoryOf(pid)
			if err != nil {
				return nil, err
			}
			samples[i] = append(samples[i], m)
		}
		if n%6 == 0 {
			m := samples[0][len(samples[0])-1]
			heap, err := goHeap(ctx, cfg)
			if err != nil {
				return nil, err
			}
			fmt.Printf("  %4.0fs: %.0f MB (anonymous %.0f); Go heap %s\n", time.Since(start).Seconds(), m["VmRSS"], m["RssAnon"], heap)
		}
		if time.Since(start) >= d {
			return samples, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-tick.C:
		}
	}
}

// median returns process i's sample with the median VmRSS.
func (s memorySamples) median(i int) map[string]float64 {
	sorted := slices.SortedFunc(slices.Values(s[i]), byRSS)
	return sorted[len(sorted)/2]
}

func (s memorySamples) max(i int) float64 { return slices.MaxFunc(s[i], byRSS)["VmRSS"] }

func (s memorySamples) min(i int) float64 { return slices.MinFunc(s[i], byRSS)["VmRSS"] }

func byRSS(a, b map[string]float64) int { return cmp.Compare(a["VmRSS"], b["VmRSS"]) }

// listAll lists each kind once.
func listAll(ctx context.Context, gn guildnetclient.Interface) error {
	if _, err := gn.GuildnetV1alpha1().Workspaces(namespace).List(ctx, metav1.ListOptions{}); err != nil {
		return err
	}
	if _, err := gn.GuildnetV1alpha1().Databases(namespace).List(ctx, metav1.ListOptions{}); err != nil {
		return err
	}
	_, err := gn.GuildnetV1alpha1().Tables(namespace).List(ctx, metav1.ListOptions{})
	return err
}

// interleave runs a and b alternately n times each (after a short warm-up),
// so drift in the machine's load affects both alike.
func interleave(n int, a, b func() error) (da, db []time.Duration, err error) {
	for range 5 {
		if err := a(); err != nil {
			return nil, nil, err
		}
		if err := b(); err != nil {
			return nil, nil, err
		}
	}
	for range n {
		start := time.Now()
		if err := a(); err != nil {
			return nil, nil, err
		}
		da = append(da, time.Since(start))
		start = time.Now()
		if err := b(); err != nil {
			return nil, nil, err
		}
		db = append(db, time.Since(start))
	}
	return da, db, nil
}

func printRow(name string, gn, crd []time.Duration, goal float64, p int) {
	a, b := benchutil.Percentile(gn, p), benchutil.Percentile(crd, p)
	ratio := float64(a) / float64(b)
	g := ""
	if goal > 0 {
		verdict := "met"
		if ratio > goal {
			verdict = "missed"
		}
		g = fmt.Sprintf("<= %.2fx %s", goal, verdict)
	}
	fmt.Printf("%-28s %12s %12s %11.2fx %12s\n", name, benchutil.Ms(a), benchutil.Ms(b), ratio, g)
}

func workspace(i int) *v1alpha1.Workspace {
	return &v1alpha1.Workspace{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("ws-%d", i), Labels: map[string]string{"team": "bench"}},
		Spec: v1alpha1.WorkspaceSpec{
			Image: "codercom/code-server:4.99.0",
			Env:   []v1alpha1.EnvVar{{Name: "EDITOR", Value: "vim"}},
		},
	}
}

// widget is the CRD twin of workspace ws: its labels, spec and status.
func widget(i int, ws *v1alpha1.Workspace) (*unstructured.Unstructured, error) {
	spec, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&ws.Spec)
	if err != nil {
		return nil, err
	}
	status, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&ws.Status)
	if err != nil {
		return nil, err
	}
	labels := map[string]any{}
	for k, v := range ws.Labels {
		labels[k] = v
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "bench.guildnet.io/v1",
		"kind":       "Widget",
		"metadata":   map[string]any{"name": fmt.Sprintf("w-%d", i), "labels": labels},
		"spec":       spec,
		"status":     status,
	}}, nil
}

func createCRD(ctx context.Context, client apiextensions.Interface) error {
	preserve := true
	crd := &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "widgets.bench.guildnet.io"},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: "bench.guildnet.io",
			Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: "widgets", Singular: "widget", Kind: "Widget", ListKind: "WidgetList"},
			Scope: apiextensionsv1.NamespaceScoped,
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{
				Name: "v1", Served: true, Storage: true,
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
					Type: "object",
					Properties: map[string]apiextensionsv1.JSONSchemaProps{
						"spec":   {Type: "object", XPreserveUnknownFields: &preserve},
						"status": {Type: "object", XPreserveUnknownFields: &preserve},
					},
				}},
				Subresources: &apiextensionsv1.CustomResourceSubresources{Status: &apiextensionsv1.CustomResourceSubresourceStatus{}},
			}},
		},
	}
	if _, err := client.ApiextensionsV1().CustomResourceDefinitions().Create(ctx, crd, metav1.CreateOptions{}); err != nil {
		return err
	}
	return wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		got, err := client.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, crd.Name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, c := range got.Status.Conditions {
			if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
				return true, nil
			}
		}
		return false, nil
	})
}

// goHeap reads guildnet-apiserver's Go heap figures from its /metrics:
// the heap in use and the size at which the next collection starts (twice
// what was live after the last one, with Go's default GOGC), which together
// with the binary's mapped pages make up most of the resident memory.
func goHeap(ctx context.Context, cfg *rest.Config) (string, error) {
	direct, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return "", err
	}
	body, err := direct.Discovery().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return "", fmt.Errorf("reading guildnet-apiserver's /metrics: %w", err)
	}
	value := func(name string) string {
		for _, line := range strings.Split(string(body), "\n") {
			if v, ok := strings.CutPrefix(line, name+" "); ok {
				if f, err := strconv.ParseFloat(v, 64); err == nil {
					return fmt.Sprintf("%.0f MB", f/(1<<20))
				}
			}
		}
		return "not reported"
	}
	return fmt.Sprintf("in use %s, next collection at %s", value("go_memstats_heap_inuse_bytes"), value("go_memstats_next_gc_bytes")), nil
}

func residentMB(pid int) (float64, error) {
	m, err := memoryOf(pid)
	return m["VmRSS"], err
}

// memoryOf reads a process's resident memory from /proc/PID/status, in MB:
// VmRSS, and its parts RssAnon (the Go heap, stacks and runtime) and
// RssFile (mapped files' pages, almost all of them the binary's).
func memoryOf(pid int) (map[string]float64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, fmt.Errorf("reading guildnet-apiserver's memory: %w", err)
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(data), "\n") {
		name, value, ok := strings.Cut(line, ":")
		if !ok || (name != "VmRSS" && name != "RssAnon" && name != "RssFile") {
			continue
		}
		var kb float64
		if _, err := fmt.Sscanf(value, "%f", &kb); err != nil {
			return nil, fmt.Errorf("reading %s in /proc/%d/status: %w", name, pid, err)
		}
		out[name] = kb / 1024
	}
	if _, ok := out["VmRSS"]; !ok {
		return nil, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
	}
	return out, nil
}
