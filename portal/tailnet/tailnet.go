package tailnet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
	"tailscale.com/envknob"
	"tailscale.com/ipn"
	"tailscale.com/ipn/ipnstate"
	"tailscale.com/tsnet"
)

const (
	// DirName is the listener's folder in the portal's state dir.
	DirName = "tailnet"
	// DefaultHostname is the node's name on the tailnet unless told
	// otherwise; the control server adds a suffix when it is taken.
	DefaultHostname = "guildnet-portal"
	// DefaultPort is the listener's port: plain http://NAME/ in a browser.
	DefaultPort = 80
	// DefaultControlURL is Tailscale's control server, used unless
	// Config.ControlURL names another.
	DefaultControlURL = ipn.DefaultControlURL
	// namesEvery is how often the listener's own names are read again.
	namesEvery = 30 * time.Second
)

// Config is what a Listener needs.
type Config struct {
	// Dir holds the node's state (keys, name): keep it, or the node joins
	// the tailnet anew. Created with mode 0700.
	Dir string
	// Hostname is the node's requested name on the tailnet; empty means
	// DefaultHostname.
	Hostname string
	// AuthKey joins the node to the tailnet on its first start; later
	// starts use the state in Dir and ignore it. Empty means tsnet's
	// $TS_AUTHKEY, else a login URL is logged (UserLogf) and the listener
	// waits for someone to open it.
	AuthKey string
	// ControlURL is the control server; empty means Tailscale's (or
	// $TS_CONTROL_URL). Any other one turns log uploads to Tailscale off.
	ControlURL string
	// Port is the port on the node's Tailscale addresses; 0 means
	// DefaultPort.
	Port int
	// Allow says who is admitted (WhoIs). Required: nil admits nobody, so
	// New refuses it.
	Allow *AllowList
	// UserLogf gets the messages meant for the person: the login URL and
	// state changes. Nil means the log package.
	UserLogf func(format string, args ...any)
	// Logf gets tsnet's verbose backend logs. Nil discards them.
	Logf func(format string, args ...any)
}

// Listener is the portal's tailnet listener. Create it with New, pass its
// AllowHost to portal/server, then Run it.
type Listener struct {
	cfg Config
	// names are the Hosts the listener answers to (without port), lower
	// case; nil until the node is up.
	names atomic.Pointer[map[string]bool]
}

// New checks cfg; nothing starts before Run.
func New(cfg Config) (*Listener, error) {
	if cfg.Dir == "" {
		return nil, errors.New("tailnet: no state folder")
	}
	if cfg.Allow == nil {
		return nil, errors.New("tailnet: no allow list; the tailnet listener admits nobody by default")
	}
	if cfg.Hostname == "" {
		cfg.Hostname = DefaultHostname
	}
	if msgs := validation.IsDNS1123Label(cfg.Hostname); len(msgs) > 0 {
		return nil, fmt.Errorf("tailnet: %q is not a host name for the tailnet: %s", cfg.Hostname, strings.Join(msgs, "; "))
	}
	if cfg.Port == 0 {
		cfg.Port = DefaultPort
	}
	if cfg.Port < 0 || cfg.Port > 65535 {
		return nil, fmt.Errorf("tailnet: port %d is not a TCP port", cfg.Port)
	}
	if cfg.UserLogf == nil {
		cfg.UserLogf = log.Printf
	}
	return &Listener{cfg: cfg}, nil
}

// AllowHost reports whether host:port names this listener: its MagicDNS
// name, that name's first label, or one of its Tailscale addresses, on its
// port. host is lower-case, an IPv6 address without brackets (as
// portal/server's Config.AllowHost passes it).
func (l *Listener) AllowHost(host string, port int) bool {
	if port != l.cfg.Port {
		return false
	}
	m := l.names.Load()
	return m != nil && (*m)[host]
}

// setNames takes the listener's Hosts from the node's status and returns
// the listener's URL.
func (l *Listener) setNames(st *ipnstate.Status) string {
	m := map[string]bool{}
	var urlHost string
	if st.Self != nil {
		if dns := strings.ToLower(strings.TrimSuffix(st.Self.DNSName, ".")); dns != "" {
			m[dns] = true
			first, _, _ := strings.Cut(dns, ".")
			m[first] = true
			urlHost = dns
		}
	}
	for _, ip := range st.TailscaleIPs {
		m[ip.String()] = true
		if urlHost == "" && ip.Is4() {
			urlHost = ip.String()
		}
	}
	l.names.Store(&m)
	if urlHost == "" {
		return ""
	}
	if l.cfg.Port != 80 {
		urlHost = net.JoinHostPort(urlHost, strconv.Itoa(l.cfg.Port))
	}
	return "http://" + urlHost + "/"
}

// Run joins the tailnet (waiting for a login when the node has none and no
// auth key was given), listens on the node's addresses, calls ready with
// the listener's URL, and serves h to the admitted requests until ctx ends
// or serving fails. It stops the node before it returns; the end of ctx is
// no error.
func (l *Listener) Run(ctx context.Context, h http.Handler, ready func(url string)) error {
	if l.cfg.ControlURL != "" && strings.TrimSuffix(l.cfg.ControlURL, "/") != DefaultControlURL {
		// Tailscale's log server supports Tailscale's control server;
		// a node of another one has nothing to send it.
		envknob.SetNoLogsNoSupport()
	}
	logf := l.cfg.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	ts := &tsnet.Server{
		Dir:        l.cfg.Dir,
		Hostname:   l.cfg.Hostname,
		AuthKey:    l.cfg.AuthKey,
		ControlURL: l.cfg.ControlURL,
		UserLogf:   l.cfg.UserLogf,
		Logf:       logf,
	}
	if err := ts.Start(); err != nil {
		return fmt.Errorf("starting the tailnet node: %w", err)
	}
	defer ts.Close()

	st, err := ts.Up(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("joining the tailnet: %w", err)
	}
	lc, err := ts.LocalClient()
	if err != nil {
		return fmt.Errorf("tailnet: %w", err)
	}
	url := l.setNames(st)
	ln, err := ts.Listen("tcp", ":"+strconv.Itoa(l.cfg.Port))
	if err != nil {
		return fmt.Errorf("listening on port %d of the tailnet: %w", l.cfg.Port, err)
	}
	defer ln.Close()
	hs := &http.Server{
		Handler: gate(lc.WhoIs, l.cfg.Allow, h),
		// Like the loopback listener: no read or write timeout, watches
		// and WebSockets stay open.
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	if ready != nil {
		ready(url)
	}

	tick := time.NewTicker(namesEvery)
	defer tick.Stop()
	for {
		select {
		case err := <-errc:
			return fmt.Errorf("serving on the tailnet: %w", err)
		case <-tick.C:
			if st, err := lc.StatusWithoutPeers(ctx); err == nil && st.BackendState == ipn.Running.String() {
				l.setNames(st)
			}
		case <-ctx.Done():
			shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = hs.Shutdown(shutdownCtx)
			return nil
		}
	}
}
