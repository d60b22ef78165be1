package rethinkdb

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	r "gopkg.in/rethinkdb/rethinkdb-go.v6"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"
)

// queryRetries is how often the driver sends a query when the connection it
// picked turns out to be broken: once more, on a freshly dialled connection,
// covers a connection that died unnoticed (e.g. RethinkDB restarted) without
// multiplying the wait while RethinkDB is down.
const queryRetries = 2

// Client holds the connections to one RethinkDB server. It is safe for
// concurrent use.
type Client struct {
	addr     string
	database string
	timeout  time.Duration
	dial     time.Duration
	base     r.ConnectOpts // template for every session
	hint     string        // what to check when RethinkDB is unreachable

	sess *r.Session

	closeOnce sync.Once
	closeErr  error
}

// Connect resolves the address, connects, and checks the connection with one
// round-trip. The attempt is bounded by DialTimeout (and ctx). kube is only used
// for Service discovery and may be nil when Address is set.
//
// An error is one line that names the address and what to check.
func (o *Options) Connect(ctx context.Context, kube kubernetes.Interface) (*Client, error) {
	if errs := o.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("invalid RethinkDB options: %w", utilerrors.NewAggregate(errs))
	}
	addr, hint := o.Address, "check --rethinkdb-address or that RethinkDB is running"
	if addr == "" {
		var err error
		if addr, err = o.discoverAddress(ctx, kube); err != nil {
			return nil, err
		}
		hint = fmt.Sprintf("check --rethinkdb-service %s/%s or that RethinkDB is running", o.serviceNamespace(), o.ServiceName)
	}
	password, err := o.readPassword()
	if err != nil {
		return nil, err
	}
	c := &Client{
		addr:     addr,
		database: o.Database,
		timeout:  o.Timeout,
		dial:     o.DialTimeout,
		hint:     hint,
		base: r.ConnectOpts{
			Address:  addr,
			Database: o.Database,
			Username: o.Username,
			Password: password,
			// Timeout bounds the TCP dial of every connection, also the
			// re-dials of the pool while RethinkDB is down.
			Timeout:         o.DialTimeout,
			KeepAlivePeriod: keepAlivePeriod,
			NumRetries:      queryRetries,
		},
	}
	opts := c.base
	// Queries without a context of their own get Timeout.
	opts.ReadTimeout, opts.WriteTimeout = o.Timeout, o.Timeout
	opts.InitialCap, opts.MaxOpen = 1, o.MaxOpen
	sess, err := c.connect(ctx, opts)
	if err != nil {
		return nil, err
	}
	c.sess = sess
	klog.FromContext(ctx).V(1).Info("Connected to RethinkDB", "address", addr, "database", o.Database)
	return c, nil
}

// connect opens a session, bounded by DialTimeout and ctx. The driver bounds
// the TCP dial but not the handshake after it, so the wait is bounded here; a
// session that connects after we gave up is closed.
func (c *Client) connect(ctx context.Context, opts r.ConnectOpts) (*r.Session, error) {
	type result struct {
		s   *r.Session
		err error
	}
	ch := make(chan result, 1)
	go func() {
		s, err := r.Connect(opts)
		ch <- result{s, err}
	}()
	timer := time.NewTimer(c.dial)
	defer timer.Stop()
	abandon := func() {
		go func() {
			if res := <-ch; res.err == nil {
				_ = res.s.Close()
			}
		}()
	}
	select {
	case res := <-ch:
		if res.err != nil {
			return nil, c.connectError(res.err)
		}
		return res.s, nil
	case <-timer.C:
		abandon()
		return nil, c.connectError(fmt.Errorf("no answer within %s", c.dial))
	case <-ctx.Done():
		abandon()
		return nil, c.connectError(ctx.Err())
	}
}

func (c *Client) connectError(err error) error {
	var auth r.RQLAuthError
	if errors.As(err, &auth) {
		return fmt.Errorf("RethinkDB at %s rejected the credentials (%s); check --rethinkdb-username and --rethinkdb-password-file", c.addr, driverMessage(err))
	}
	return fmt.Errorf("cannot reach RethinkDB at %s (%s); %s", c.addr, driverMessage(err), c.hint)
}

// Session returns the pooled session for ordinary queries: at most MaxOpen
// connections, broken ones re-dialled on use, queries without a context cut
// after Timeout. Pass r.RunOpts{Context: ctx} to bound a query by a request.
// Do not use it for changefeeds (see NewFeedSession).
func (c *Client) Session() *r.Session { return c.sess }

// NewFeedSession opens a session for a changefeed: its own connection, no read
// timeout (feeds are idle for long stretches; stop one with its context or by
// closing the cursor), TCP keep-alive on. The caller closes it. Opening it is
// bounded by DialTimeout.
func (c *Client) NewFeedSession() (*r.Session, error) {
	opts := c.base
	opts.InitialCap, opts.MaxOpen = 1, 1
	s, err := c.connect(context.Background(), opts)
	if err != nil {
		return nil, &UnavailableError{Address: c.addr, Err: err}
	}
	return s, nil
}

// Ping makes one cheap round-trip to RethinkDB, for readiness checks. It is
// bounded by ctx and Timeout; a failure is an *UnavailableError.
func (c *Client) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	cur, err := r.Expr(1).Run(c.sess, r.RunOpts{Context: ctx})
	if err == nil {
		err = cur.Close()
	}
	if err != nil {
		return &UnavailableError{Address: c.addr, Err: err}
	}
	return nil
}

// Address returns host:port of the RethinkDB server.
func (c *Client) Address() string { return c.addr }

// Database returns the system database (--rethinkdb-database).
func (c *Client) Database() string { return c.database }

// Timeout returns the per-query timeout (--rethinkdb-timeout).
func (c *Client) Timeout() time.Duration { return c.timeout }

// WrapError returns an *UnavailableError naming the address when err is a
// connection-level failure (see IsUnavailable), and err unchanged otherwise.
func (c *Client) WrapError(err error) error {
	var ue *UnavailableError
	if err == nil || errors.As(err, &ue) || !IsUnavailable(err) {
		return err
	}
	return &UnavailableError{Address: c.addr, Err: err}
}

// Close closes the pooled session. Feed sessions are closed by their owners.
// Calling it again returns the first result.
func (c *Client) Close() error {
	c.closeOnce.Do(func() { c.closeErr = c.sess.Close() })
	return c.closeErr
}
