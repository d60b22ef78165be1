package rethinkstore

import (
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apiserver/pkg/apis/example"
	"k8s.io/apiserver/pkg/storage"

	"github.com/guildnet/guildnet/pkg/devenv/reqlite"
	"github.com/guildnet/guildnet/pkg/devenv/reqlite/reqlitetest"
	"github.com/guildnet/guildnet/pkg/rethinkdb"
)

// While RethinkDB is down, requests fail fast with 503 naming its address,
// readiness fails, and everything works again once it is back, without a new
// client or store. (reqlite keeps data in memory, so after its restart the
// system database is recreated; with RethinkDB the data would still be there.)
func TestOutageAndRecovery(t *testing.T) {
	srv := reqlitetest.Start(t, reqlite.Options{})
	o := rethinkdb.NewOptions()
	o.Address = srv.Addr
	o.Database = "outage"
	o.DialTimeout = time.Second
	o.Timeout = 2 * time.Second
	c, err := o.Connect(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, s := testSetupWith(t, c, testOptions)

	pod := func(name string) *example.Pod {
		return &example.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns"}}
	}
	before := &example.Pod{}
	if err := s.Create(ctx, "/pods/ns/a", pod("a"), before, 0); err != nil {
		t.Fatal(err)
	}

	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	checkUnavailable := func(what string, err error) {
		t.Helper()
		if !apierrors.IsServiceUnavailable(err) {
			t.Errorf("%s with RethinkDB down: %v, want 503", what, err)
			return
		}
		if !strings.Contains(err.Error(), "RethinkDB at "+srv.Addr+" is unreachable") {
			t.Errorf("%s: message %q does not name RethinkDB's address", what, err)
		}
	}
	start := time.Now()
	checkUnavailable("Create", s.Create(ctx, "/pods/ns/b", pod("b"), &example.Pod{}, 0))
	checkUnavailable("Get", s.Get(ctx, "/pods/ns/a", storage.GetOptions{}, &example.Pod{}))
	checkUnavailable("GetList", s.GetList(ctx, "/pods/", storage.ListOptions{Predicate: storage.Everything, Recursive: true}, &example.PodList{}))
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("three failing requests took %s, want fast failures", d)
	}
	if err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		return s.ReadinessCheck() != nil, nil
	}); err != nil {
		t.Errorf("ReadinessCheck stayed nil with RethinkDB down")
	}

	_, port, _ := net.SplitHostPort(srv.Addr)
	p, _ := strconv.Atoi(port)
	reqlitetest.Start(t, reqlite.Options{Port: p})

	if err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 20*time.Second, true, func(context.Context) (bool, error) {
		return s.ReadinessCheck() == nil, nil
	}); err != nil {
		t.Fatalf("not ready again after RethinkDB came back: %v", s.ReadinessCheck())
	}
	after := &example.Pod{}
	if err := s.Create(ctx, "/pods/ns/b", pod("b"), after, 0); err != nil {
		t.Fatalf("Create after recovery: %v", err)
	}
	rvBefore, _ := strconv.ParseUint(before.ResourceVersion, 10, 64)
	rvAfter, _ := strconv.ParseUint(after.ResourceVersion, 10, 64)
	if rvAfter <= rvBefore {
		t.Errorf("resourceVersion went backwards across the restart: %d then %d", rvBefore, rvAfter)
	}
	list := &example.PodList{}
	if err := s.GetList(ctx, "/pods/", storage.ListOptions{Predicate: storage.Everything, Recursive: true}, list); err != nil {
		t.Fatalf("GetList after recovery: %v", err)
	}
}
