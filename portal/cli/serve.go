package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/guildnet/guildnet/pkg/logging"
	"github.com/guildnet/guildnet/portal/server"
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
}

func newServeCommand(g *globalOptions) *cobra.Command {
	o := &serveOptions{listen: DefaultListen, log: logging.NewOptions()}
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
on their own origins, http://WORKSPACE--NAMESPACE--CLUSTER.localhost:PORT.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error { return o.run(cmd, g) },
	}
	f := cmd.Flags()
	f.StringVar(&o.listen, "listen", o.listen, "Address to listen on, IP:PORT (port 0 picks a free one)")
	f.BoolVar(&o.allowRemote, "allow-remote", false, "Allow --listen on an address other machines can reach (plain HTTP: the token and session cross the network unencrypted)")
	f.StringSliceVar(&o.allowedHosts, "allowed-host", nil, "More host names the portal answers to, besides 127.0.0.1, localhost and ::1 (the Host header is checked against them to stop DNS rebinding)")
	f.StringVar(&o.tokenFile, "token-file", "", "File holding the portal token (default portal-token in the state dir; created if missing)")
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

func (o *serveOptions) run(cmd *cobra.Command, g *globalOptions) error {
	if errs := o.log.Validate(); len(errs) > 0 {
		return errors.Join(errs...)
	}
	addr, urlHost, extra, remote, err := o.listenAddr()
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
	select {
	case err := <-errc:
		return fmt.Errorf("serving the portal: %v", err)
	case <-ctx.Done():
	}
	// Stop accepting and finish short requests; streams and WebSockets
	// are cut by srv.Close.
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Close()
	_ = hs.Shutdown(shutdownCtx)
	logger.Info("Portal stopped")
	return nil
}
