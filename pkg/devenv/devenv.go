package devenv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/guildnet/guildnet/pkg/devenv/reqlite"
)

// Names of what the environment registers for guildnet-apiserver; they
// match artifacts/ so that its RBAC manifests apply unchanged.
const (
	SystemNamespace   = "guildnet-system"
	ServiceName       = "guildnet-apiserver"
	ServiceAccount    = "guildnet-apiserver"
	APIServiceName    = "v1alpha1.guildnet.io"
	GroupVersion      = "guildnet.io/v1alpha1"
	kubernetesVersion = "v1.37.2"
)

// Options configure an environment. The zero value works from inside the
// checkout once the tools are built (make tools).
type Options struct {
	// Dir holds certificates, kubeconfigs, data and logs. Empty: a new
	// temporary folder, removed by Stop.
	Dir string
	// RepoRoot is the GuildNet checkout. Empty: found from the working directory.
	RepoRoot string
	// ToolsDir holds etcd, kube-apiserver and kube-controller-manager.
	// Empty: $GUILDNET_TOOLS_DIR, else <RepoRoot>/_output/tools/bin.
	ToolsDir string
	// APIServerBinary is guildnet-apiserver. Empty: $GUILDNET_APISERVER_BINARY,
	// else <RepoRoot>/_output/bin/guildnet-apiserver.
	APIServerBinary string
	// RequestTimeout is kube-apiserver's --request-timeout (0: its default, 60 s).
	RequestTimeout time.Duration
	// ExtraAPIServerArgs are appended to guildnet-apiserver's flags.
	ExtraAPIServerArgs []string
	// Progress receives one line per step. Nil: discarded.
	Progress io.Writer
	// Node says whether to run a real node (containerd and a kubelet) so
	// that workspaces run as pods. The zero value runs none.
	Node NodeMode
}

// Env is a running local control plane.
type Env struct {
	// Dir is the environment's folder; logs are in Dir/logs.
	Dir string
	// AdminKubeconfig is a kubeconfig for a cluster administrator (system:masters).
	AdminKubeconfig string
	// KubeAPIServerURL is kube-apiserver's https URL.
	KubeAPIServerURL string
	// RethinkDBAddr is the RethinkDB-protocol server's host:port.
	RethinkDBAddr string
	// GuildNetAPIServerPort is the port guildnet-apiserver listens on (loopback).
	GuildNetAPIServerPort int
	// WorkspaceImage is the code-server image loaded onto the node; empty
	// without a node.
	WorkspaceImage string

	opts       Options
	ownDir     bool
	clientCA   *ca
	servingCA  *ca
	aggCA      *ca
	frontProxy *ca
	adminCfg   *rest.Config
	pki        pki
	etcdURL    string

	mu        sync.Mutex
	etcd      *process
	kubeAPI   *process
	kcm       *process
	guildnet  *process
	reqlite   *reqlite.Server
	replicas  []*Replica
	userFiles map[string]string
	node      *node
}

func (e *Env) progress(format string, args ...any) {
	if e.opts.Progress != nil {
		fmt.Fprintf(e.opts.Progress, "devenv: "+format+"\n", args...)
	}
}

// Start brings up the whole environment and returns once guildnet.io is
// served through kube-apiserver's discovery (and, with a node, its images
// are loaded). On error everything started so
// far is stopped again.
func Start(ctx context.Context, opts Options) (_ *Env, err error) {
	e := &Env{opts: opts, userFiles: map[string]string{}}
	if err := e.resolvePaths(); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = e.Stop()
		}
	}()
	for _, dir := range []string{"pki", "logs", "etcd", "kubeconfigs"} {
		// Each start is a fresh cluster: stale etcd data would carry the
		// previous run's certificates and APIService.
		if err := os.RemoveAll(filepath.Join(e.Dir, dir)); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(filepath.Join(e.Dir, dir), 0o700); err != nil {
			return nil, err
		}
	}
	start := time.Now()
	if err := e.makePKI(); err != nil {
		return nil, fmt.Errorf("creating certificates: %w", err)
	}
	// The node's images and containerd come first: a first run builds
	// the images (minutes), and nothing else should wait on a clock meanwhile.
	withNode, err := e.prepareNode(ctx)
	if err != nil {
		return nil, err
	}
	if err := e.startEtcd(ctx); err != nil {
		return nil, err
	}
	if err := e.startKubeAPIServer(ctx); err != nil {
		return nil, err
	}
	if err := e.startControllerManager(); err != nil {
		return nil, err
	}
	if withNode {
		if err := e.startNode(ctx); err != nil {
			return nil, err
		}
	}
	if err := e.startReqlite(ctx); err != nil {
		return nil, err
	}
	if err := e.startGuildNet(ctx); err != nil {
		return nil, err
	}
	if err := e.waitForImages(ctx); err != nil {
		return nil, fmt.Errorf("loading the node's images: %w", err)
	}
	e.progress("ready in %s", time.Since(start).Round(100*time.Millisecond))
	return e, nil
}

func (e *Env) resolvePaths() error {
	o := &e.opts
	if o.RepoRoot == "" {
		dir, err := reqlite.FindDir()
		if err != nil {
			return err
		}
		o.RepoRoot = filepath.Dir(filepath.Dir(dir))
	}
	if o.ToolsDir == "" {
		o.ToolsDir = os.Getenv("GUILDNET_TOOLS_DIR")
	}
	if o.ToolsDir == "" {
		o.ToolsDir = filepath.Join(o.RepoRoot, "_output", "tools", "bin")
	}
	if o.APIServerBinary == "" {
		o.APIServerBinary = os.Getenv("GUILDNET_APISERVER_BINARY")
	}
	if o.APIServerBinary == "" {
		o.APIServerBinary = filepath.Join(o.RepoRoot, "_output", "bin", "guildnet-apiserver")
	}
	for _, tool := range []string{"etcd", "kube-apiserver", "kube-controller-manager"} {
		if _, err := os.Stat(filepath.Join(o.ToolsDir, tool)); err != nil {
			return fmt.Errorf("%s is not built in %s; run `make tools` (it builds the control plane from the Go module proxy once and caches it)", tool, o.ToolsDir)
		}
	}
	if _, err := os.Stat(o.APIServerBinary); err != nil {
		return fmt.Errorf("guildnet-apiserver is not built at %s; run `make build`", o.APIServerBinary)
	}
	e.Dir = o.Dir
	if e.Dir == "" {
		dir, err := os.MkdirTemp("", "guildnet-devenv-")
		if err != nil {
			return err
		}
		e.Dir, e.ownDir = dir, true
	}
	abs, err := filepath.Abs(e.Dir)
	if err != nil {
		return err
	}
	e.Dir = abs
	return nil
}

func (e *Env) path(parts ...string) string {
	return filepath.Join(append([]string{e.Dir}, parts...)...)
}

func (e *Env) tool(name string) string { return filepath.Join(e.opts.ToolsDir, name) }

// freePort asks the kernel for a free loopback port. Another process could
// take it before we bind it; the window is small and a clash fails loudly.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func freePorts(n int) ([]int, error) {
	// Hold all listeners until every port is picked, so they differ.
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// waitFor polls check until it succeeds, the process dies, or timeout.
func (e *Env) waitFor(ctx context.Context, what string, p *process, timeout time.Duration, check func(context.Context) error) error {
	var last error
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		if p != nil {
			if done, _ := p.exited(); done {
				return false, p.exitError()
			}
		}
		last = check(ctx)
		return last == nil, nil
	})
	if err != nil {
		if p != nil {
			if done, _ := p.exited(); done {
				return p.exitError()
			}
		}
		if last != nil && wait.Interrupted(err) {
			return fmt.Errorf("%s not ready after %s: %w", what, timeout, last)
		}
		return fmt.Errorf("waiting for %s: %w", what, err)
	}
	return nil
}

// Stop ends every process the environment started, newest first, and
// removes the folder when Start made it. It is safe to call more than once.
func (e *Env) Stop() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	var errs []error
	// The node first: its pods are torn down through containerd while
	// everything else still runs, and what it changed on the host is undone.
	if err := e.stopNode(); err != nil {
		errs = append(errs, fmt.Errorf("stopping the node: %w", err))
	}
	// kube-controller-manager first: its open watches on guildnet.io would
	// otherwise hold guildnet-apiserver's graceful shutdown for its full
	// timeout.
	if err := e.kcm.stop(10 * time.Second); err != nil {
		errs = append(errs, err)
	}
	for _, r := range e.replicas {
		if err := r.proc.stop(10 * time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	e.replicas = nil
	for _, p := range []*process{e.guildnet, e.kubeAPI} {
		if err := p.stop(10 * time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	if e.reqlite != nil {
		if err := e.reqlite.Stop(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := e.etcd.stop(10 * time.Second); err != nil {
		errs = append(errs, err)
	}
	e.guildnet, e.kcm, e.kubeAPI, e.reqlite, e.etcd = nil, nil, nil, nil, nil
	if e.ownDir && e.Dir != "" {
		if err := os.RemoveAll(e.Dir); err != nil {
			errs = append(errs, err)
		}
		e.ownDir = false
	}
	return errors.Join(errs...)
}

// AdminConfig returns a rest.Config for a cluster administrator.
func (e *Env) AdminConfig() *rest.Config { return rest.CopyConfig(e.adminCfg) }

// UserKubeconfig returns a kubeconfig for a user authenticated by a client
// certificate, with the given groups and no other rights: what RBAC grants
// it is up to the caller. The file is made once per user.
func (e *Env) UserKubeconfig(user string, groups ...string) (string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if path, ok := e.userFiles[user]; ok {
		return path, nil
	}
	kp, err := e.clientCA.issueToFiles(e.path("pki"), "user-"+safeName(user), certSpec{commonName: user, orgs: groups, client: true})
	if err != nil {
		return "", err
	}
	path := e.path("kubeconfigs", "user-"+safeName(user)+".kubeconfig")
	if err := e.writeKubeconfig(path, user, kp); err != nil {
		return "", err
	}
	e.userFiles[user] = path
	return path, nil
}

// UserConfig is UserKubeconfig as a rest.Config.
func (e *Env) UserConfig(user string, groups ...string) (*rest.Config, error) {
	path, err := e.UserKubeconfig(user, groups...)
	if err != nil {
		return nil, err
	}
	return clientcmd.BuildConfigFromFlags("", path)
}

func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.' {
			return r
		}
		return '_'
	}, s)
}

func (e *Env) writeKubeconfig(path, user string, kp keyPair) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["guildnet-dev"] = &clientcmdapi.Cluster{Server: e.KubeAPIServerURL, CertificateAuthorityData: e.servingCA.certPEM}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{ClientCertificateData: kp.CertPEM, ClientKeyData: kp.KeyPEM}
	cfg.Contexts["guildnet-dev"] = &clientcmdapi.Context{Cluster: "guildnet-dev", AuthInfo: user, Namespace: "default"}
	cfg.CurrentContext = "guildnet-dev"
	return clientcmd.WriteToFile(*cfg, path)
}

// RestartGuildNetAPIServer stops guildnet-apiserver and starts it again on
// the same port, as a crash and restart would; objects must survive.
func (e *Env) RestartGuildNetAPIServer(ctx context.Context) error {
	e.mu.Lock()
	p := e.guildnet
	e.mu.Unlock()
	if err := p.stop(10 * time.Second); err != nil {
		return err
	}
	return e.runGuildNet(ctx)
}

// StopGuildNetAPIServer stops guildnet-apiserver (the APIService then
// turns unavailable); StartGuildNetAPIServer brings it back.
func (e *Env) StopGuildNetAPIServer() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.guildnet.stop(10 * time.Second)
}

// StartGuildNetAPIServer starts guildnet-apiserver again after StopGuildNetAPIServer.
func (e *Env) StartGuildNetAPIServer(ctx context.Context) error { return e.runGuildNet(ctx) }

// GuildNetAPIServerPID is the process id of the main guildnet-apiserver
// (for measuring its memory).
func (e *Env) GuildNetAPIServerPID() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.guildnet == nil {
		return 0
	}
	return e.guildnet.cmd.Process.Pid
}

// Replica is an extra guildnet-apiserver on the same RethinkDB, as a
// second replica of a Deployment would be. It is not behind the APIService:
// clients talk to it directly (Config).
type Replica struct {
	env  *Env
	proc *process
	port int
}

// StartReplica starts another guildnet-apiserver sharing the environment's
// RethinkDB, with extraArgs after the environment's flags (a later flag
// wins, e.g. --reconcile=false).
func (e *Env) StartReplica(ctx context.Context, name string, extraArgs ...string) (*Replica, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	p, err := e.startGuildNetProcess(ctx, "guildnet-apiserver-"+safeName(name), port, extraArgs...)
	if err != nil {
		return nil, err
	}
	r := &Replica{env: e, proc: p, port: port}
	e.mu.Lock()
	e.replicas = append(e.replicas, r)
	e.mu.Unlock()
	return r, nil
}

// Config is an administrator's rest.Config that talks to this replica
// directly: guildnet-apiserver trusts kube-apiserver's client CA through
// delegated authentication.
func (r *Replica) Config() *rest.Config {
	return r.env.directConfig(r.port)
}

// Stop ends the replica.
func (r *Replica) Stop() error { return r.proc.stop(10 * time.Second) }

// PID is the replica's process id (for measuring its memory).
func (r *Replica) PID() int { return r.proc.cmd.Process.Pid }

// DirectConfig is an administrator's rest.Config that talks to the main
// guildnet-apiserver without going through kube-apiserver.
func (e *Env) DirectConfig() *rest.Config { return e.directConfig(e.GuildNetAPIServerPort) }

func (e *Env) directConfig(port int) *rest.Config {
	return &rest.Config{
		Host: fmt.Sprintf("https://127.0.0.1:%d", port),
		TLSClientConfig: rest.TLSClientConfig{
			CAData: e.aggCA.certPEM, ServerName: "localhost",
			CertData: e.pki.admin.CertPEM, KeyData: e.pki.admin.KeyPEM,
		},
		QPS: 1000, Burst: 1000,
	}
}
