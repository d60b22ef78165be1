package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/guildnet/guildnet/pkg/logging"
	"github.com/guildnet/guildnet/portal/server"
	"github.com/guildnet/guildnet/portal/tailnet"
	"github.com/guildnet/guildnet/portal/ui"
)

// DefaultListen is where serve listens without --listen. A fixed port
// matters: browsers keep cookies and a workspace's storage per origin, and
// the origin includes the port.
const DefaultListen = "127.0.0.1:7455"

type serveOptions struct {
	listen       string
	allowRemote  bool
	allowedHosts []string
	tokenFile    string
	log          *logging.Options

	tailnet            bool
	tailnetAllow       []string
	tailnetHostname    string
	tailnetAuthKeyFile string
	tailnetControlURL  string
	tailnetPort        int
}

func newServeCommand(g *globalOptions) *cobra.Command {
	o := &serveOptions{listen: DefaultListen, log: logging.NewOptions(),
		tailnetHostname: tailnet.DefaultHostname, tailnetPort: tailnet.DefaultPort}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the portal's web UI on this device",
		Long: `Serve runs the portal's web UI and its forwarding to the joined clusters'
Kubernetes APIs. It prints one line on stdout,

  Portal: http://127.0.0.1:PORT/?token=TOKEN

which opens a session in the browser. The token is this device's secret: it
is kept in the state dir (portal-token, mode 0600) and stays the same across
restarts; delete that file and restart to log every browser out.

The portal listens on loopback only, unless --allow-remote is given, because
whoever reaches it uses this device's cluster credentials. Workspaces open
on their own origins, http://WORKSPACE--NAMESPACE--CLUSTER.localhost:PORT.

With --tailnet the portal also joins a tailnet (Tailscale, or headscale with
--tailnet-control-url) as a node of its own, named by --tailnet-hostname,
and serves there on --tailnet-port. Only the tailnet identities named by
--tailnet-allow get in (checked with WhoIs on every request; everyone else
gets 403), and they still need the token: once the listener is up, serve
prints a second line,

  Tailnet: http://NAME.TAILNET.ts.net/?token=TOKEN

The node's keys stay in the state dir (tailnet/), so it keeps its name and
addresses across restarts. Its first start needs an auth key
(--tailnet-auth-key-file, else $TS_AUTHKEY) or a login: without a key,
serve logs a login URL and waits. Workspaces cannot be opened from a
tailnet device (their *.localhost hosts are loopback to that device).
With Tailscale's control server the node uploads its logs to Tailscale, as
every Tailscale client does (TS_NO_LOGS_NO_SUPPORT=true turns that off);
with another control server it uploads none.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error { return o.run(cmd, g) },
	}
	f := cmd.Flags()
	f.StringVar(&o.listen, "listen", o.listen, "Address to listen on, IP:PORT (port 0 picks a free one)")
	f.BoolVar(&o.allowRemote, "allow-remote", false, "Allow --listen on an address other machines can reach (plain HTTP: the token and session cross the network unencrypted)")
	f.StringSliceVar(&o.allowedHosts, "allowed-host", nil, "More host names the portal answers to, besides 127.0.0.1, localhost and ::1 (the Host header is checked against them to stop DNS rebinding)")
	f.StringVar(&o.tokenFile, "token-file", "", "File holding the portal token (default portal-token in the state dir; created if missing)")
	f.BoolVar(&o.tailnet, "tailnet", false, "Also serve the portal on a tailnet, through an embedded Tailscale node of its own (tsnet); needs --tailnet-allow")
	f.StringSliceVar(&o.tailnetAllow, "tailnet-allow", nil, "Who may use the tailnet listener, checked with WhoIs on every request: login names (you@example.com: that user's untagged nodes), tags (tag:portal-users) and full MagicDNS node names (laptop.example.ts.net), comma-separated or repeated. Required with --tailnet: nobody is admitted by default")
	f.StringVar(&o.tailnetHostname, "tailnet-hostname", o.tailnetHostname, "The portal node's name on the tailnet; its MagicDNS name becomes NAME.TAILNET.ts.net (the control server adds a suffix when the name is taken)")
	f.StringVar(&o.tailnetAuthKeyFile, "tailnet-auth-key-file", "", "File (mode 0600) holding an auth key that joins the node to the tailnet on its first start; default $TS_AUTHKEY, and without either a login URL is logged. The key is never taken on the command line, where ps shows it")
	f.StringVar(&o.tailnetControlURL, "tailnet-control-url", "", "The tailnet's control server, e.g. a headscale server's URL (default Tailscale's, "+tailnet.DefaultControlURL+"); with any other, no logs are uploaded to Tailscale")
	f.IntVar(&o.tailnetPort, "tailnet-port", o.tailnetPort, "Port of the tailnet listener on the node's Tailscale addresses")
	o.log.AddFlags(f)
	return cmd
}

// listenAddr checks --listen and returns the address to listen on, the
// host to print in the URL, and the listening IP when the portal must
// answer to it besides its usual names.
func (o *serveOptions) listenAddr() (addr, urlHost string, extra []string, remote bool, err error) {
	host, portStr, err := net.SplitHostPort(o.listen)
	if err != nil {
		return "", "", nil, false, fmt.Errorf("--listen %q is not IP:PORT (for example %s)", o.listen, DefaultListen)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return "", "", nil, false, fmt.Errorf("--listen %q: %q is not a port number", o.listen, portStr)
	}
	switch host {
	case "localhost":
		// Which address "localhost" resolves to differs between systems;
		// the printed URL must match what is listened on.
		host = "127.0.0.1"
	case "":
		host = "0.0.0.0"
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return "", "", nil, false, fmt.Errorf("--listen %q: %q is not an IP address; use 127.0.0.1:PORT", o.listen, host)
	}
	if !ip.IsLoopback() && !o.allowRemote {
		return "", "", nil, false, fmt.Errorf("--listen %s is not a loopback address; the portal uses this device's cluster credentials for whoever reaches it, so it listens on loopback only unless you also pass --allow-remote", o.listen)
	}
	urlHost = ip.String()
	switch {
	case ip.IsUnspecified():
		urlHost = "127.0.0.1"
	case ip.To4() == nil:
		urlHost = "[" + urlHost + "]"
		extra = append(extra, ip.String())
	default:
		extra = append(extra, ip.String())
	}
	return net.JoinHostPort(ip.String(), strconv.Itoa(port)), urlHost, extra, !ip.IsLoopback(), nil
}

// tailnetConfig checks the --tailnet flags; nil without --tailnet. It reads
// the auth key file, so a bad one fails serve at once.
func (o *serveOptions) tailnetConfig(f *pflag.FlagSet) (*tailnet.Config, error) {
	if !o.tailnet {
		for _, name := range []string{"tailnet-allow", "tailnet-hostname", "tailnet-auth-key-file", "tailnet-control-url", "tailnet-port"} {
			if f.Changed(name) {
				return nil, fmt.Errorf("--%s is given without --tailnet; add --tailnet to serve on the tailnet", name)
			}
		}
		return nil, nil
	}
	allow, err := tailnet.ParseAllowList(o.tailnetAllow)
	if err != nil {
		if len(o.tailnetAllow) == 0 {
			return nil, fmt.Errorf("--tailnet needs --tailnet-allow: the tailnet listener admits nobody by default; name who may use the portal, e.g. --tailnet-allow you@example.com,tag:portal-users")
		}
		return nil, fmt.Errorf("--tailnet-allow: %v", err)
	}
	if o.tailnetPort <= 0 || o.tailnetPort > 65535 {
		return nil, fmt.Errorf("--tailnet-port %d is not a TCP port", o.tailnetPort)
	}
	if u := o.tailnetControlURL; u != "" {
		if pu, err := url.Parse(u); err != nil || (pu.Scheme != "https" && pu.Scheme != "http") || pu.Host == "" {
			return nil, fmt.Errorf("--tailnet-control-url %q is not an http(s) URL", u)
		}
	}
	cfg := &tailnet.Config{
		Hostname:   o.tailnetHostname,
		ControlURL: o.tailnetControlURL,
		Port:       o.tailnetPort,
		Allow:      allow,
	}
	if o.tailnetAuthKeyFile != "" {
		if cfg.AuthKey, err = tailnet.ReadAuthKeyFile(o.tailnetAuthKeyFile); err != nil {
			return nil, err
		}
	}
	return cfg, nil
}

func (o *serveOptions) run(cmd *cobra.Command, g *globalOptions) error {
	if errs := o.log.Validate(); len(errs) > 0 {
		return errors.Join(errs...)
	}
	addr, urlHost, extra, remote, err := o.listenAddr()
	if err != nil {
		return err
	}
	tcfg, err := o.tailnetConfig(cmd.Flags())
	if err != nil {
		return err
	}
	logger, err := o.log.Setup()
	if err != nil {
		return err
	}
	st, err := g.openStore()
	if err != nil {
		return err
	}
	tokenFile := o.tokenFile
	if tokenFile == "" {
		tokenFile = filepath.Join(st.Dir(), server.TokenFileName)
	}
	token, err := server.LoadOrCreateToken(tokenFile)
	if err != nil {
		return err
	}
	var tl *tailnet.Listener
	var allowHost func(string, int) bool
	if tcfg != nil {
		tcfg.Dir = filepath.Join(st.Dir(), tailnet.DirName)
		tlog := logger.WithName("tailnet")
		tcfg.UserLogf = func(format string, args ...any) { tlog.Info(fmt.Sprintf(format, args...)) }
		tcfg.Logf = func(format string, args ...any) { tlog.V(2).Info(fmt.Sprintf(format, args...)) }
		if tl, err = tailnet.New(*tcfg); err != nil {
			return err
		}
		allowHost = tl.AllowHost
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %v; if another guildnet-portal serve runs there, use it, or pick another port with --listen", addr, err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port

	srv, err := server.New(server.Config{
		Store:      st,
		Token:      token,
		Port:       port,
		ExtraHosts: append(extra, o.allowedHosts...),
		AllowHost:  allowHost,
		UI:         ui.FS(),
		Log:        logger.WithName("portal"),
	})
	if err != nil {
		return err
	}
	defer srv.Close()
	hs := &http.Server{
		Handler: srv,
		// No read or write timeout: watches and WebSockets stay open for
		// as long as the browser wants them.
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()

	if remote {
		fmt.Fprintf(cmd.ErrOrStderr(), "Warning: the portal listens on %s, reachable from other machines over plain HTTP; its token and session cross the network unencrypted.\n", ln.Addr())
	}
	logger.Info("Serving the portal", "address", ln.Addr().String(), "stateDir", st.Dir())
	fmt.Fprintf(cmd.OutOrStdout(), "Portal: http://%s:%d/?token=%s\n", urlHost, port, token)

	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	// tailErr gets the tailnet listener's end; nil when there is none.
	var tailErr chan error
	if tl != nil {
		tailErr = make(chan error, 1)
		out := cmd.OutOrStdout()
		go func() {
			tailErr <- tl.Run(ctx, srv, func(u string) {
				logger.Info("Serving the portal on the tailnet", "url", u)
				fmt.Fprintf(out, "Tailnet: %s?token=%s\n", u, token)
			})
		}()
	}
	var runErr error
	select {
	case err := <-errc:
		runErr = fmt.Errorf("serving the portal: %v", err)
	case err := <-tailErr:
		tailErr = nil
		if err != nil {
			runErr = err
		}
	case <-ctx.Done():
	}
	stop()
	// Stop accepting and finish short requests; streams and WebSockets
	// are cut by srv.Close.
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Close()
	_ = hs.Shutdown(shutdownCtx)
	if tailErr != nil {
		// The tailnet node saves its state as it stops.
		select {
		case <-tailErr:
		case <-time.After(10 * time.Second):
			logger.Info("The tailnet node did not stop within 10 s; leaving it")
		}
	}
	if runErr != nil {
		return runErr
	}
	logger.Info("Portal stopped")
	return nil
}
