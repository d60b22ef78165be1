// Command rows measures tables/rows and tables/watch through
// kube-apiserver's aggregation layer against the same work done directly
// with rethinkdb-go: writing and reading 10,000 rows of about 1 KB
// (rows/s), single-row GET latency, and insert→event latency of
// tables/watch against a direct changefeed. It prints p50/p99 and ratios.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	r "gopkg.in/rethinkdb/rethinkdb-go.v6"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"

	"github.com/guildnet/guildnet/apis/guildnet"
	"github.com/guildnet/guildnet/apis/guildnet/v1alpha1"
	"github.com/guildnet/guildnet/pkg/devenv"
	"github.com/guildnet/guildnet/test/bench/benchutil"
)

var (
	total   = flag.Int("rows", 10000, "rows to write and read")
	batch   = flag.Int("batch", 500, "rows per insert request")
	page    = flag.Int("page", 1000, "rows per read page")
	gets    = flag.Int("gets", 200, "single-row GETs")
	events  = flag.Int("events", 100, "insert→event round trips")
	ns      = "bench"
	padding = strings.Repeat("x", 950)
)

func main() {
	flag.Parse()
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "bench/rows: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	ctx := context.Background()
	env, err := benchutil.StartCluster(ctx, devenv.Options{}, ns)
	if err != nil {
		return err
	}
	defer env.Stop()
	gn := env.GN
	rc := gn.GuildnetV1alpha1().RESTClient()
	if _, err := gn.GuildnetV1alpha1().Databases(ns).Create(ctx, &v1alpha1.Database{ObjectMeta: metav1.ObjectMeta{Name: "bench"}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	// "api" is used through tables/rows and tables/watch, "direct" with the driver.
	for _, t := range []string{"bench.api", "bench.direct"} {
		if _, err := gn.GuildnetV1alpha1().Tables(ns).Create(ctx, &v1alpha1.Table{ObjectMeta: metav1.ObjectMeta{Name: t}}, metav1.CreateOptions{}); err != nil {
			return err
		}
	}
	if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		for _, t := range []string{"bench.api", "bench.direct"} {
			if err := rc.Get().AbsPath(rowsPath(t)).Param("limit", "1").Do(ctx).Error(); err != nil {
				return false, nil
			}
		}
		return true, nil
	}); err != nil {
		return fmt.Errorf("tables did not become ready: %w", err)
	}
	sess, err := r.Connect(r.ConnectOpts{Address: env.RethinkDBAddr})
	if err != nil {
		return err
	}
	defer sess.Close()
	db := guildnet.RethinkDBDatabaseName(ns, "bench")
	direct := r.DB(db).Table("direct")
	apiTable := r.DB(db).Table("api")

	fmt.Printf("writing %d rows of ~1 KB in batches of %d ...\n", *total, *batch)
	var wAPI, wDirect []time.Duration
	startAPI := time.Now()
	for i := 0; i < *total; i += *batch {
		body, _ := json.Marshal(makeRows(i, *batch))
		t0 := time.Now()
		if err := rc.Post().AbsPath(rowsPath("bench.api")).SetHeader("Content-Type", "application/json").Body(body).Do(ctx).Error(); err != nil {
			return err
		}
		wAPI = append(wAPI, time.Since(t0))
	}
	apiWrite := time.Since(startAPI)
	startDirect := time.Now()
	for i := 0; i < *total; i += *batch {
		t0 := time.Now()
		if _, err := direct.Insert(makeRows(i, *batch)).RunWrite(sess); err != nil {
			return err
		}
		wDirect = append(wDirect, time.Since(t0))
	}
	directWrite := time.Since(startDirect)

	fmt.Printf("reading them back in pages of %d ...\n", *page)
	var rAPI, rDirect []time.Duration
	startAPI = time.Now()
	n, cont := 0, ""
	for {
		req := rc.Get().AbsPath(rowsPath("bench.api")).Param("limit", fmt.Sprint(*page))
		if cont != "" {
			req = req.Param("continue", cont)
		}
		t0 := time.Now()
		raw, err := req.DoRaw(ctx)
		if err != nil {
			return err
		}
		rAPI = append(rAPI, time.Since(t0))
		var list struct {
			Metadata struct{ Continue string }
			Items    []json.RawMessage
		}
		if err := json.Unmarshal(raw, &list); err != nil {
			return err
		}
		n += len(list.Items)
		if cont = list.Metadata.Continue; cont == "" {
			break
		}
	}
	apiRead := time.Since(startAPI)
	if n != *total {
		return fmt.Errorf("read %d rows through tables/rows, wrote %d", n, *total)
	}
	startDirect = time.Now()
	n, last := 0, any(r.MinVal)
	for {
		t0 := time.Now()
		var rows []map[string]any
		if err := direct.Between(last, r.MaxVal, r.BetweenOpts{LeftBound: "open"}).OrderBy(r.OrderByOpts{Index: "id"}).Limit(*page).ReadAll(&rows, sess); err != nil {
			return err
		}
		rDirect = append(rDirect, time.Since(t0))
		if len(rows) == 0 {
			break
		}
		n += len(rows)
		last = rows[len(rows)-1]["id"]
	}
	directRead := time.Since(startDirect)
	if n != *total {
		return fmt.Errorf("read %d rows directly, wrote %d", n, *total)
	}

	fmt.Printf("%d single-row GETs ...\n", *gets)
	var gAPI, gDirect []time.Duration
	for i := range *gets {
		id := fmt.Sprintf("row-%06d", (i*7919)%*total)
		t0 := time.Now()
		if err := rc.Get().AbsPath(rowsPath("bench.api"), id).Do(ctx).Error(); err != nil {
			return err
		}
		gAPI = append(gAPI, time.Since(t0))
		t0 = time.Now()
		var row map[string]any
		if err := direct.Get(id).ReadOne(&row, sess); err != nil {
			return err
		}
		gDirect = append(gDirect, time.Since(t0))
	}

	fmt.Printf("%d insert→event round trips ...\n", *events)
	eAPI, err := watchLatency(ctx, rc, sess, apiTable, *events)
	if err != nil {
		return err
	}
	eDirect, err := feedLatency(env.RethinkDBAddr, sess, direct, *events)
	if err != nil {
		return err
	}

	perSec := func(d time.Duration) float64 { return float64(*total) / d.Seconds() }
	fmt.Println()
	fmt.Printf("%-34s %14s %14s %8s\n", "", "tables/rows", "rethinkdb-go", "ratio")
	fmt.Printf("%-34s %14.0f %14.0f %7.2fx\n", fmt.Sprintf("write %d rows, rows/s", *total), perSec(apiWrite), perSec(directWrite), perSec(apiWrite)/perSec(directWrite))
	fmt.Printf("%-34s %14.0f %14.0f %7.2fx\n", fmt.Sprintf("read %d rows, rows/s", *total), perSec(apiRead), perSec(directRead), perSec(apiRead)/perSec(directRead))
	row := func(name string, a, b []time.Duration) {
		for _, p := range []int{50, 99} {
			x, y := benchutil.Percentile(a, p), benchutil.Percentile(b, p)
			fmt.Printf("%-34s %14s %14s %7.2fx\n", fmt.Sprintf("%s p%d", name, p), benchutil.Ms(x), benchutil.Ms(y), benchutil.Ratio(x, y))
		}
	}
	row(fmt.Sprintf("insert batch of %d", *batch), wAPI, wDirect)
	row(fmt.Sprintf("read page of %d", *page), rAPI, rDirect)
	row("get one row", gAPI, gDirect)
	fmt.Printf("%-34s %14s %14s %8s\n", "", "tables/watch", "changefeed", "ratio")
	row("insert→event", eAPI, eDirect)
	return nil
}

func rowsPath(table string) string {
	return "/apis/guildnet.io/v1alpha1/namespaces/" + ns + "/tables/" + table + "/rows"
}

func makeRows(from, n int) []map[string]any {
	out := make([]map[string]any, 0, n)
	for i := from; i < from+n; i++ {
		out = append(out, map[string]any{"id": fmt.Sprintf("row-%06d", i), "n": i, "pad": padding})
	}
	return out
}

// watchLatency inserts rows directly and times each until tables/watch
// (through kube-apiserver) delivers it.
func watchLatency(ctx context.Context, rc rest.Interface, sess *r.Session, table r.Term, n int) ([]time.Duration, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := rc.Get().AbsPath("/apis/guildnet.io/v1alpha1/namespaces/"+ns+"/tables/bench.api/watch").
		Param("timeoutSeconds", "45").Stream(ctx)
	if err != nil {
		return nil, err
	}
	defer stream.Close()
	ids := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(stream)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var ev struct {
				Type string
				New  map[string]any
			}
			if json.Unmarshal(sc.Bytes(), &ev) == nil && ev.Type == "ADDED" {
				ids <- fmt.Sprint(ev.New["id"])
			}
		}
		close(ids)
	}()
	return roundTrips(n, "w", sess, table, func(id string) error {
		for got := range ids {
			if got == id {
				return nil
			}
		}
		return fmt.Errorf("the watch ended before %s arrived", id)
	})
}

// feedLatency does the same on a changefeed opened with the driver.
func feedLatency(addr string, sess *r.Session, table r.Term, n int) ([]time.Duration, error) {
	feedSess, err := r.Connect(r.ConnectOpts{Address: addr})
	if err != nil {
		return nil, err
	}
	defer feedSess.Close()
	cur, err := table.Changes().Run(feedSess)
	if err != nil {
		return nil, err
	}
	defer cur.Close()
	return roundTrips(n, "d", sess, table, func(id string) error {
		var ch struct {
			New map[string]any `rethinkdb:"new_val"`
		}
		for cur.Next(&ch) {
			if fmt.Sprint(ch.New["id"]) == id {
				return nil
			}
		}
		return fmt.Errorf("the changefeed ended before %s arrived: %v", id, cur.Err())
	})
}

func roundTrips(n int, prefix string, sess *r.Session, table r.Term, await func(id string) error) ([]time.Duration, error) {
	var out []time.Duration
	for i := range n {
		id := fmt.Sprintf("%s-event-%04d", prefix, i)
		t0 := time.Now()
		if _, err := table.Insert(map[string]any{"id": id}).RunWrite(sess); err != nil {
			return nil, err
		}
		if err := await(id); err != nil {
			return nil, err
		}
		out = append(out, time.Since(t0))
	}
	return out, nil
}
