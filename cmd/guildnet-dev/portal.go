package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/zapr"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	guildnetclient "github.com/guildnet/guildnet/generated/clientset/versioned"
	"github.com/guildnet/guildnet/pkg/devenv"
	"github.com/guildnet/guildnet/portal/join"
	"github.com/guildnet/guildnet/portal/server"
	"github.com/guildnet/guildnet/portal/store"
	"github.com/guildnet/guildnet/portal/ui"
)

const (
	// defaultPortalListen is a fixed port so that the portal's URL (and so
	// bookmarks, open tabs and each workspace's origin, which all include
	// the port) stays the same across runs of make dev. It is next to
	// guildnet-portal serve's default (7455), so both can run at once.
	defaultPortalListen = "127.0.0.1:7456"

	// The dev portal joins as a ServiceAccount bound to the built-in edit
	// ClusterRole in the default namespace, the way a device joins a real
	// cluster (guildnet-portal make-join-config), rather than as the
	// admin: what works in the dev portal then works for a real user, and
	// a UI feature that needs more than edit shows up in dev, not in
	// production. "default" is the namespace of the admin kubeconfig too,
	// so `kubectl get workspaces,databases,tables` shows what the UI made.
	portalNamespace = "default"
	portalDevice    = "dev-portal"
	// portalClusterName names the cluster in the portal; its id derives
	// from it, and URLs like #/c/guildnet-dev/default/data keep working
	// across runs.
	portalClusterName = "guildnet-dev"
	portalStateDir    = "portal"
)

// listenPortal checks --portal-listen and listens on it: before the control
// plane starts, so that a port in use fails at once, not after it.
func listenPortal(addr string) (net.Listener, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("--portal-listen %q is not IP:PORT (for example %s, or 127.0.0.1:0 for a free port)", addr, defaultPortalListen)
	}
	if host == "localhost" {
		host = "127.0.0.1"
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		// Whoever reaches the portal acts with its cluster credentials; a
		// dev environment has no reason to offer that to the network.
		return nil, fmt.Errorf("--portal-listen %q: the dev portal listens on a loopback address only (127.0.0.1:PORT)", addr)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(ip.String(), port))
	if err != nil {
		return nil, fmt.Errorf("the portal cannot listen on %s: %v; pick another port with --portal-listen 127.0.0.1:PORT (0 for a free one), or run without the portal with --portal-listen=", addr, err)
	}
	return ln, nil
}

// devPortal is the portal running in this process, joined to the dev
// cluster.
type devPortal struct {
	URL       string // with ?token=
	ClusterID string
	User      string // who the portal is on the cluster
	Log       string // its log file

	srv     *server.Server
	hs      *http.Server
	errc    chan error
	logFile *os.File
}

// startPortal joins the dev cluster in a state dir under the environment's
// folder (not ~/.guildnet: the dev cluster is gone when guildnet-dev ends)
// and serves the portal on ln.
func startPortal(ctx context.Context, env *devenv.Env, ln net.Listener) (_ *devPortal, err error) {
	defer func() {
		if err != nil {
			ln.Close()
		}
	}()
	st, err := store.Open(filepath.Join(env.Dir, portalStateDir))
	if err != nil {
		return nil, err
	}
	// The state dir outlives runs, for its token: the session cookie is
	// derived from it, so a browser stays logged in across restarts. The
	// cluster joined by an earlier run is not: each run is a new cluster
	// (new CA, new port). Forget it; clusters someone joined by hand stay.
	earlier, err := st.List()
	if err != nil {
		return nil, err
	}
	for _, c := range earlier {
		if c.Name == portalClusterName {
			if err := st.Remove(c.ID); err != nil {
				return nil, fmt.Errorf("forgetting the previous run's cluster %s: %w", c.ID, err)
			}
		}
	}
	token, err := server.LoadOrCreateToken(filepath.Join(st.Dir(), server.TokenFileName))
	if err != nil {
		return nil, err
	}

	admin := kubernetes.NewForConfigOrDie(env.AdminConfig())
	made, err := join.MakeJoinConfig(ctx, admin, join.MakeOptions{
		Namespace:                portalNamespace,
		Name:                     portalDevice,
		ClusterName:              portalClusterName,
		Server:                   env.KubeAPIServerURL,
		CertificateAuthorityData: env.AdminConfig().CAData,
	})
	if err != nil {
		return nil, fmt.Errorf("minting the portal's join file: %w", err)
	}
	joined, err := join.Join(ctx, st, made.Data, join.Options{Name: portalClusterName})
	if err != nil {
		return nil, fmt.Errorf("joining the dev cluster in the portal: %w", err)
	}
	if err := waitDeviceAllowed(ctx, st, joined.Cluster.ID); err != nil {
		return nil, err
	}

	logPath := filepath.Join(env.Dir, "logs", "portal.log")
	logFile, log, err := fileLogger(logPath)
	if err != nil {
		return nil, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	srv, err := server.New(server.Config{Store: st, Token: token, Port: port, UI: ui.FS(), Log: log.WithName("portal")})
	if err != nil {
		logFile.Close()
		return nil, err
	}
	p := &devPortal{
		URL:       fmt.Sprintf("http://127.0.0.1:%d/?token=%s", port, token),
		ClusterID: joined.Cluster.ID,
		User:      fmt.Sprintf("system:serviceaccount:%s:%s", made.Namespace, made.Name),
		Log:       logPath,
		srv:       srv,
		// As guildnet-portal serve: no read or write timeout, since watches
		// and WebSockets stay open as long as the browser wants them.
		hs:      &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute},
		errc:    make(chan error, 1),
		logFile: logFile,
	}
	go func() { p.errc <- p.hs.Serve(ln) }()
	log.Info("Serving the portal", "address", ln.Addr().String(), "stateDir", st.Dir(), "cluster", p.ClusterID, "user", p.User)
	return p, nil
}

// waitDeviceAllowed waits until the portal's ServiceAccount may list
// workspaces and tables in its namespace. The edit role gets guildnet.io's
// rules by ClusterRole aggregation, a controller's work that may lag the
// control plane's start by a moment; without this wait the first page a
// newcomer opens could say 403.
func waitDeviceAllowed(ctx context.Context, st *store.Store, id string) error {
	cfg, err := join.RESTConfigFor(st, id)
	if err != nil {
		return err
	}
	device, err := guildnetclient.NewForConfig(cfg)
	if err != nil {
		return err
	}
	var last error
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		if _, last = device.GuildnetV1alpha1().Workspaces(portalNamespace).List(ctx, metav1.ListOptions{Limit: 1}); last != nil {
			return false, nil
		}
		_, last = device.GuildnetV1alpha1().Tables(portalNamespace).List(ctx, metav1.ListOptions{Limit: 1})
		return last == nil, nil
	})
	if err != nil && last != nil {
		return fmt.Errorf("the portal's ServiceAccount %s/%s cannot use guildnet.io in namespace %s after 30 s: %v; check that artifacts/base/rbac-aggregated.yaml was applied (see the logs folder, kube-controller-manager.log for aggregation)", portalNamespace, portalDevice, portalNamespace, last)
	}
	return err
}

// Err reports the portal's server failing while it runs.
func (p *devPortal) Err() <-chan error { return p.errc }

// Stop ends the portal: short requests finish (at most 5 s), streams and
// WebSockets to the cluster are cut.
func (p *devPortal) Stop() {
	p.srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = p.hs.Shutdown(ctx)
	p.logFile.Close()
}

// fileLogger logs to path in the format of the other processes' logs
// (pkg/logging's text format), so the terminal keeps only the banner.
func fileLogger(path string) (*os.File, logr.Logger, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, logr.Discard(), fmt.Errorf("the portal's log: %w", err)
	}
	cfg := zap.NewProductionEncoderConfig()
	cfg.EncodeLevel = zapcore.CapitalLevelEncoder
	cfg.EncodeTime = zapcore.ISO8601TimeEncoder
	z := zap.New(zapcore.NewCore(zapcore.NewConsoleEncoder(cfg), zapcore.AddSync(f), zapcore.InfoLevel))
	return f, zapr.NewLogger(z), nil
}

// servedErr turns the end of Serve into an error worth reporting.
func servedErr(err error) error {
	if err == nil || errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("the portal stopped serving: %w", err)
}
