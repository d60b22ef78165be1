package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/guildnet/guildnet/apis/guildnet/v1alpha1"
	guildnetclient "github.com/guildnet/guildnet/generated/clientset/versioned"
	"github.com/guildnet/guildnet/test/framework"
)

// readyTable creates Database db and Table db.tbl in ns and waits until the
// table is Ready.
func readyTable(t *testing.T, gn guildnetclient.Interface, ns, db, tbl string) {
	t.Helper()
	ctx := context.Background()
	if _, err := gn.GuildnetV1alpha1().Databases(ns).Create(ctx, &v1alpha1.Database{ObjectMeta: metav1.ObjectMeta{Name: db}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	if _, err := gn.GuildnetV1alpha1().Tables(ns).Create(ctx, &v1alpha1.Table{ObjectMeta: metav1.ObjectMeta{Name: db + "." + tbl}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	framework.Eventually(t, 60*time.Second, "table "+db+"."+tbl+" is Ready", func(ctx context.Context) error {
		got, err := gn.GuildnetV1alpha1().Tables(ns).Get(ctx, db+"."+tbl, metav1.GetOptions{})
		if err != nil {
			return err
		}
		return conditionTrue(got.Status.Conditions)
	})
}

func conditionTrue(conds []metav1.Condition) error {
	for _, c := range conds {
		if c.Type == v1alpha1.ConditionReady && c.Status == metav1.ConditionTrue {
			return nil
		}
	}
	return fmt.Errorf("not Ready: %s", readyCondition(conds))
}

// rowsRequest builds a request on tables/NAME/rows[/key] through kube-apiserver.
func rowsRequest(c rest.Interface, method, ns, table string, key ...string) *rest.Request {
	return c.Verb(method).AbsPath(append([]string{"/apis/guildnet.io/v1alpha1/namespaces", ns, "tables", table, "rows"}, key...)...)
}

// Rows written through kube-apiserver come back exactly, page after page,
// and can be replaced, patched, deleted and exported.
func TestRowsRoundTrip(t *testing.T) {
	env := framework.Env(t)
	ctx := context.Background()
	admin := kubernetes.NewForConfigOrDie(env.AdminConfig())
	gn := guildnetclient.NewForConfigOrDie(env.AdminConfig())
	ns := createNamespace(t, admin, "rows")
	readyTable(t, gn, ns, "shop", "items")
	base := "/apis/guildnet.io/v1alpha1/namespaces/" + ns + "/tables/shop.items/rows"
	rc := gn.GuildnetV1alpha1().RESTClient()

	// kubectl create --raw / get --raw round-trip.
	first := `[{"id":"a1","name":"Grüße ✓","price":12.5,"tags":["x","y"],"dims":{"w":1,"h":2},"ok":true,"none":null}]`
	out := framework.MustKubectl(t, env.AdminKubeconfig, "create", "--raw", base, "-f", writeManifest(t, first))
	if !strings.Contains(out, `"inserted":1`) {
		t.Errorf("kubectl create --raw rows: %s", out)
	}
	got := framework.MustKubectl(t, env.AdminKubeconfig, "get", "--raw", base+"/a1")
	var want, have any
	_ = json.Unmarshal([]byte(first), &want)
	_ = json.Unmarshal([]byte(got), &have)
	if !reflect.DeepEqual(want.([]any)[0], have) {
		t.Errorf("row a1 did not round-trip:\nsent %s\ngot  %s", first, got)
	}

	// 1,000 more as NDJSON, then page through all of them.
	var nd bytes.Buffer
	for i := range 1000 {
		fmt.Fprintf(&nd, `{"id":"r%04d","n":%d}`+"\n", i, i)
	}
	if err := rowsRequest(rc, http.MethodPost, ns, "shop.items").SetHeader("Content-Type", "application/x-ndjson").Body(nd.Bytes()).Do(ctx).Error(); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	cont, pages := "", 0
	for {
		req := rowsRequest(rc, http.MethodGet, ns, "shop.items").Param("limit", "100")
		if cont != "" {
			req = req.Param("continue", cont)
		}
		raw, err := req.DoRaw(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var page struct {
			Kind     string
			Metadata struct{ Continue string }
			Items    []map[string]any
		}
		if err := json.Unmarshal(raw, &page); err != nil {
			t.Fatal(err)
		}
		if page.Kind != "RowList" || len(page.Items) > 100 {
			t.Fatalf("page %d: kind %q with %d rows", pages, page.Kind, len(page.Items))
		}
		for _, r := range page.Items {
			seen[r["id"].(string)]++
		}
		pages++
		if cont = page.Metadata.Continue; cont == "" {
			break
		}
	}
	if len(seen) != 1001 {
		t.Errorf("paging returned %d distinct rows, want 1001", len(seen))
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("row %s came back %d times", id, n)
		}
	}
	if pages != 11 {
		t.Errorf("1001 rows in pages of 100 took %d pages, want 11", pages)
	}

	// Replace, merge patch (null deletes), delete.
	if err := rowsRequest(rc, http.MethodPut, ns, "shop.items", "r0001").SetHeader("Content-Type", "application/json").Body([]byte(`{"id":"r0001","n":-1,"note":"x"}`)).Do(ctx).Error(); err != nil {
		t.Fatal(err)
	}
	raw, err := rowsRequest(rc, http.MethodPatch, ns, "shop.items", "r0001").SetHeader("Content-Type", "application/merge-patch+json").Body([]byte(`{"note":null,"m":2}`)).DoRaw(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var patched map[string]any
	_ = json.Unmarshal(raw, &patched)
	if !reflect.DeepEqual(patched, map[string]any{"id": "r0001", "n": float64(-1), "m": float64(2)}) {
		t.Errorf("after PUT and merge PATCH: %v", patched)
	}
	if err := rowsRequest(rc, http.MethodDelete, ns, "shop.items", "r0002").Do(ctx).Error(); err != nil {
		t.Fatal(err)
	}
	err = rowsRequest(rc, http.MethodGet, ns, "shop.items", "r0002").Do(ctx).Error()
	if !apierrors.IsNotFound(err) {
		t.Errorf("GET of a deleted row: want 404, got %v", err)
	}

	// Export, streamed.
	ndjson, err := rowsRequest(rc, http.MethodGet, ns, "shop.items").SetHeader("Accept", "application/x-ndjson").DoRaw(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Count(string(ndjson), "\n"); lines != 1000 {
		t.Errorf("NDJSON export has %d lines, want 1000 (1001 rows, one deleted)", lines)
	}
	csv, err := rowsRequest(rc, http.MethodGet, ns, "shop.items").SetHeader("Accept", "text/csv").DoRaw(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(csv), "id,") || strings.Count(string(csv), "\n") != 1001 {
		t.Errorf("CSV export: header %q, %d lines", strings.SplitN(string(csv), "\n", 2)[0], strings.Count(string(csv), "\n"))
	}
}

// Bad input gets a Kubernetes Status with the right code and a message
// that says what is wrong, and a refused batch writes nothing.
func TestRowsBadInput(t *testing.T) {
	env := framework.Env(t)
	ctx := context.Background()
	admin := kubernetes.NewForConfigOrDie(env.AdminConfig())
	gn := guildnetclient.NewForConfigOrDie(env.AdminConfig())
	ns := createNamespace(t, admin, "badrows")
	readyTable(t, gn, ns, "shop", "items")
	rc := gn.GuildnetV1alpha1().RESTClient()
	post := func(table, contentType, body string) error {
		return rowsRequest(rc, http.MethodPost, ns, table).SetHeader("Content-Type", contentType).Body([]byte(body)).Do(ctx).Error()
	}
	if err := post("shop.items", "application/json", `{"id":"taken"}`); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name string
		err  error
		code int32
		text string
	}{
		{"unknown table", post("shop.nope", "application/json", `{"id":"x"}`), 404, `"shop.nope" not found`},
		{"bad JSON", post("shop.items", "application/json", `{"id": "x",`), 400, ""},
		{"duplicate key", post("shop.items", "application/json", `[{"id":"fresh"},{"id":"taken"}]`), 409, "taken"},
		{"no primary key", post("shop.items", "application/json", `[{"name":"no id"}]`), 422, "id"},
		{"too large", post("shop.items", "application/x-ndjson", strings.Repeat(`{"id":"big","pad":"`+strings.Repeat("x", 1000)+`"}`+"\n", 17*1024)), 413, ""},
		{"unsupported media type", post("shop.items", "application/xml", `<row/>`), 415, ""},
	}
	for _, tc := range cases {
		status, ok := tc.err.(apierrors.APIStatus)
		if !ok {
			t.Errorf("%s: want a Status error with code %d, got %v", tc.name, tc.code, tc.err)
			continue
		}
		if status.Status().Code != tc.code || !strings.Contains(status.Status().Message, tc.text) {
			t.Errorf("%s: got %d %q, want %d containing %q", tc.name, status.Status().Code, status.Status().Message, tc.code, tc.text)
		}
	}
	// The refused batch wrote nothing: "fresh" is not there.
	err := rowsRequest(rc, http.MethodGet, ns, "shop.items", "fresh").Do(ctx).Error()
	if !apierrors.IsNotFound(err) {
		t.Errorf("a batch refused for a duplicate key wrote its other row: %v", err)
	}
}
