package rethinkdb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	r "gopkg.in/rethinkdb/rethinkdb-go.v6"

	"github.com/guildnet/guildnet/pkg/devenv/reqlite"
	"github.com/guildnet/guildnet/pkg/devenv/reqlite/reqlitetest"
)

func connectForTest(t *testing.T, addr string) *Client {
	t.Helper()
	o := NewOptions()
	o.Address = addr
	o.DialTimeout = time.Second
	o.Timeout = 2 * time.Second
	c, err := o.Connect(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestConnectRefused(t *testing.T) {
	o := NewOptions()
	o.Address = "127.0.0.1:1"
	start := time.Now()
	_, err := o.Connect(context.Background(), nil)
	if err == nil {
		t.Fatal("Connect to a closed port succeeded")
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "cannot reach RethinkDB at 127.0.0.1:1 (") ||
		!strings.Contains(msg, "connection refused") ||
		!strings.HasSuffix(msg, "check --rethinkdb-address or that RethinkDB is running") ||
		strings.Contains(msg, "\n") {
		t.Errorf("error = %q, want one line naming the address, the cause and what to check", msg)
	}
	if d := time.Since(start); d > o.DialTimeout {
		t.Errorf("Connect took %s, want less than the dial timeout %s", d, o.DialTimeout)
	}
}

// A server that accepts connections but never answers must not hang Connect.
func TestConnectSilentServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	o := NewOptions()
	o.Address = ln.Addr().String()
	o.DialTimeout = 300 * time.Millisecond
	start := time.Now()
	_, err = o.Connect(context.Background(), nil)
	if err == nil || !strings.Contains(err.Error(), "no answer within 300ms") {
		t.Fatalf("Connect = %v, want a timeout error", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Connect took %s, want about the dial timeout", d)
	}
}

func TestPingAndQuery(t *testing.T) {
	c := connectForTest(t, reqlitetest.StartForTest(t))
	if err := c.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := r.Expr(41).Add(1).ReadOne(&n, c.Session()); err != nil || n != 42 {
		t.Fatalf("query = %d, %v", n, err)
	}

	// A feed session carries a changefeed.
	if _, err := r.DBCreate("t").RunWrite(c.Session()); err != nil {
		t.Fatal(err)
	}
	if _, err := r.DB("t").TableCreate("x").RunWrite(c.Session()); err != nil {
		t.Fatal(err)
	}
	fs, err := c.NewFeedSession()
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	cur, err := r.DB("t").Table("x").Changes().Run(fs)
	if err != nil {
		t.Fatal(err)
	}
	defer cur.Close()
	if _, err := r.DB("t").Table("x").Insert(map[string]any{"id": "a"}).RunWrite(c.Session()); err != nil {
		t.Fatal(err)
	}
	var ev struct {
		New map[string]any `rethinkdb:"new_val"`
	}
	if !cur.Next(&ev) || ev.New["id"] != "a" {
		t.Fatalf("feed event = %+v, err %v", ev, cur.Err())
	}
}

// While RethinkDB is down calls fail fast with connection-level errors; once a
// server is back on the same address the same Client works again.
func TestRecoversAfterRestart(t *testing.T) {
	srv := reqlitetest.Start(t, reqlite.Options{})
	c := connectForTest(t, srv.Addr)
	if err := c.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}

	for i := range 3 {
		start := time.Now()
		err := c.Ping(t.Context())
		if !IsUnavailable(err) {
			t.Fatalf("Ping %d with RethinkDB down = %v, want an unavailable error", i, err)
		}
		if !strings.HasPrefix(err.Error(), "RethinkDB at "+srv.Addr+" is unreachable: ") {
			t.Errorf("error = %q, want it to name the address", err)
		}
		_, qerr := r.Expr(1).Run(c.Session(), r.RunOpts{Context: t.Context()})
		if !IsUnavailable(qerr) {
			t.Fatalf("query %d with RethinkDB down = %v, want an unavailable error", i, qerr)
		}
		if d := time.Since(start); d > time.Second {
			t.Fatalf("failing calls took %s, want a fast failure", d)
		}
	}
	if _, err := c.NewFeedSession(); !IsUnavailable(err) {
		t.Fatalf("NewFeedSession with RethinkDB down = %v, want an unavailable error", err)
	}

	_, port, _ := net.SplitHostPort(srv.Addr)
	p, _ := strconv.Atoi(port)
	reqlitetest.Start(t, reqlite.Options{Port: p})

	// The pool re-dials on use: the first call may still see a connection the
	// driver has not noticed is gone, the ones after must succeed.
	var err error
	for range 3 {
		if err = c.Ping(t.Context()); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("Ping after restart: %v", err)
	}
	for i := range 20 { // exercise every pooled connection
		if _, err := r.Expr(i).Run(c.Session(), r.RunOpts{Context: t.Context()}); err != nil {
			t.Fatalf("query %d after restart: %v", i, err)
		}
	}
	fs, err := c.NewFeedSession()
	if err != nil {
		t.Fatalf("NewFeedSession after restart: %v", err)
	}
	_ = fs.Close()
}

func TestIsUnavailable(t *testing.T) {
	yes := []error{
		r.ErrConnectionClosed, r.ErrNoConnections, r.ErrQueryTimeout,
		r.RQLConnectionError{},
		fmt.Errorf("wrapped: %w", syscall.ECONNREFUSED),
		&net.OpError{Op: "dial", Err: syscall.ECONNREFUSED},
		io.EOF, context.DeadlineExceeded,
		errors.New("rethinkdb: pool is closed"),
		&UnavailableError{Address: "x:1", Err: errors.New("down")},
	}
	for _, err := range yes {
		if !IsUnavailable(err) {
			t.Errorf("IsUnavailable(%#v) = false, want true", err)
		}
	}
	no := []error{nil, errors.New("Duplicate primary key `id`"), r.RQLQueryLogicError{}, context.Canceled}
	for _, err := range no {
		if IsUnavailable(err) {
			t.Errorf("IsUnavailable(%#v) = true, want false", err)
		}
	}
}
