package devenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/guildnet/guildnet/pkg/devenv/images"
)

// NodeMode says whether the environment runs a real node (kube-scheduler,
// containerd and a kubelet), so that workspaces become running pods.
type NodeMode string

const (
	// NodeOff runs the control plane only: Deployments get no pods. The
	// zero value, because most tests need no node and it takes seconds.
	NodeOff NodeMode = ""
	// NodeAuto runs a node where the machine can (root, cgroups, containerd
	// installed) and says once why not otherwise.
	NodeAuto NodeMode = "auto"
	// NodeRequired fails Start when no node can run.
	NodeRequired NodeMode = "required"
)

// NodeName is the name the local node registers under.
const NodeName = "guildnet-dev"

// Local storage the node offers: a default StorageClass whose claims become
// folders in the environment (see provisioner.go).
const (
	StorageClassName = "guildnet-local"
	provisionerName  = "guildnet.io/dev-local-path"
)

// node is what a running node is made of, and what Stop must undo.
type node struct {
	id          string // short random id in names the host sees (bridge, chain, cgroup)
	bridge      string
	chain       string
	cgroupName  string
	subnet      *net.IPNet
	nodeIP      net.IP
	kubeletPort int

	host     *hostState
	cgroups  []string // the cgroup folders made for the node's pods, one per hierarchy
	iptables bool     // the FORWARD jump and our chain are in place
	bridgeUp bool

	containerd      *process
	kubelet         *process
	scheduler       *process
	socket          string
	stopProvisioner context.CancelFunc
	// imageLoad reports the background load of the workspace image;
	// cancelImageLoad stops it.
	imageLoad       chan error
	cancelImageLoad context.CancelFunc

	pause, workspace images.Image
}

// nodeUnavailable explains why this machine cannot run a node.
func nodeUnavailable(toolsDir string) error {
	return thisHost().nodeUnavailable(toolsDir)
}

// host is what nodeUnavailable looks at, so each reason can be checked
// without changing the machine.
type host struct {
	euid      int
	mountinfo func() ([]byte, error)
	lookPath  func(string) (string, error)
	exists    func(string) bool
}

func thisHost() host {
	return host{
		euid:      os.Geteuid(),
		mountinfo: func() ([]byte, error) { return os.ReadFile("/proc/self/mountinfo") },
		lookPath:  exec.LookPath,
		exists: func(p string) bool {
			_, err := os.Stat(p)
			return err == nil
		},
	}
}

func (h host) nodeUnavailable(toolsDir string) error {
	if h.euid != 0 {
		return errors.New("not running as root (containerd and the kubelet need root; run make dev or the tests as root for real pods)")
	}
	mounts, err := h.mountinfo()
	if err != nil || !strings.Contains(string(mounts), " - cgroup") {
		return errors.New("no cgroup filesystem is mounted (the kubelet needs cgroups)")
	}
	for _, bin := range []string{"containerd", "containerd-shim-runc-v2", "runc", "ctr", "ip", "iptables", "iptables-save"} {
		if _, err := h.lookPath(bin); err != nil {
			return fmt.Errorf("%s is not installed (make node, or apt-get install containerd runc containernetworking-plugins iptables iproute2)", bin)
		}
	}
	if h.cniBinDir() == "" {
		return errors.New("the CNI plugins are not installed (make node, or apt-get install containernetworking-plugins)")
	}
	for _, tool := range []string{"kubelet", "kube-scheduler"} {
		if !h.exists(filepath.Join(toolsDir, tool)) {
			return fmt.Errorf("%s is not built in %s (run make tools)", tool, toolsDir)
		}
	}
	return nil
}

func cniBinDir() string { return thisHost().cniBinDir() }

// cniBinDir is where Debian (/usr/lib/cni) or the upstream tarball
// (/opt/cni/bin) put the CNI plugins; empty when neither has them.
func (h host) cniBinDir() string {
	for _, d := range []string{"/usr/lib/cni", "/opt/cni/bin"} {
		if h.exists(filepath.Join(d, "bridge")) {
			return d
		}
	}
	return ""
}

// prepareNode builds (or finds cached) the node's images, records the
// host, and starts containerd with its network; the kubelet comes later,
// once kube-apiserver serves. It returns false when the node is skipped.
func (e *Env) prepareNode(ctx context.Context) (bool, error) {
	if e.opts.Node == NodeOff {
		return false, nil
	}
	if why := nodeUnavailable(e.opts.ToolsDir); why != nil {
		if e.opts.Node == NodeRequired {
			return false, fmt.Errorf("a node was required but cannot run here: %w", why)
		}
		e.progress("running without a node: %v; workspaces get Deployments but no pods", why)
		return false, nil
	}
	n := &node{id: randomHex(3)}
	n.bridge, n.chain, n.cgroupName = "gn-br-"+n.id, "GUILDNET-"+strings.ToUpper(n.id), "guildnet-"+n.id
	e.node = n
	imgOpts := images.Options{RepoRoot: e.opts.RepoRoot, Progress: progressWriter{e}}
	var err error
	if n.pause, err = images.Pause(ctx, imgOpts); err != nil {
		return false, fmt.Errorf("building the pause image: %w", err)
	}
	if n.workspace, err = images.Workspace(ctx, imgOpts); err != nil {
		return false, fmt.Errorf("building the workspace image: %w", err)
	}
	e.WorkspaceImage = n.workspace.Name
	if n.host, err = recordHostState(); err != nil {
		return false, fmt.Errorf("recording the host's state before starting a node: %w", err)
	}
	if err := n.setUpNetwork(e.path("cni")); err != nil {
		return false, err
	}
	if err := n.makeCgroups(); err != nil {
		return false, err
	}
	if err := e.startContainerd(ctx); err != nil {
		return false, err
	}
	return true, nil
}

// progressWriter sends a component's progress lines through the environment's.
type progressWriter struct{ e *Env }

func (w progressWriter) Write(p []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		if w.e.opts.Progress != nil {
			fmt.Fprintln(w.e.opts.Progress, line)
		}
	}
	return len(p), nil
}

// setUpNetwork picks a free private /24 for pods, makes the bridge the
// CNI plugin will attach pods to (its address is also the node's IP: the
// kubelet refuses loopback), confines the bridge's traffic to this machine,
// and writes the CNI configuration.
func (n *node) setUpNetwork(dir string) error {
	subnet, err := freeSubnet()
	if err != nil {
		return err
	}
	n.subnet = subnet
	n.nodeIP = net.IPv4(subnet.IP[0], subnet.IP[1], subnet.IP[2], 1).To4()
	ones, _ := subnet.Mask.Size()
	for _, args := range [][]string{
		{"link", "add", "name", n.bridge, "type", "bridge"},
		{"addr", "add", fmt.Sprintf("%s/%d", n.nodeIP, ones), "dev", n.bridge},
		{"link", "set", n.bridge, "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
		n.bridgeUp = true
	}
	// Pods reach each other and this machine, nothing else: traffic
	// forwarded from or to the bridge through another interface is dropped.
	for _, args := range [][]string{
		{"-N", n.chain},
		{"-A", n.chain, "-i", n.bridge, "-o", n.bridge, "-j", "ACCEPT"},
		{"-A", n.chain, "-i", n.bridge, "-j", "DROP"},
		{"-A", n.chain, "-o", n.bridge, "-j", "DROP"},
		{"-I", "FORWARD", "1", "-j", n.chain},
	} {
		if out, err := exec.Command("iptables", append([]string{"-w", "-t", "filter"}, args...)...).CombinedOutput(); err != nil {
			return fmt.Errorf("iptables %s: %v: %s", strings.Join(args, " "), err, out)
		}
		n.iptables = true
	}
	conf := fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": "guildnet-%s",
  "plugins": [{
    "type": "bridge",
    "bridge": %q,
    "isGateway": true,
    "ipMasq": false,
    "hairpinMode": true,
    "ipam": {
      "type": "host-local",
      "dataDir": %q,
      "ranges": [[{"subnet": %q, "gateway": %q}]]
    }
  }]
}
`, n.id, n.bridge, filepath.Join(dir, "ipam"), subnet.String(), n.nodeIP.String())
	if err := os.MkdirAll(filepath.Join(dir, "net.d"), 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "net.d", "10-guildnet.conflist"), []byte(conf), 0o644)
}

// freeSubnet returns the first 10.213.X.0/24 that no interface address
// or route of this machine overlaps.
func freeSubnet() (*net.IPNet, error) {
	var used []*net.IPNet
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, err
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok {
			used = append(used, ipn)
		}
	}
	if routes, err := os.ReadFile("/proc/net/route"); err == nil {
		used = append(used, routeNets(string(routes))...)
	}
	return pickSubnet(used)
}

// routeNets returns the destinations of /proc/net/route's routes, the
// default route left out.
func routeNets(table string) []*net.IPNet {
	var nets []*net.IPNet
	for _, line := range strings.Split(table, "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 8 {
			continue
		}
		dst, err1 := strconv.ParseUint(f[1], 16, 32)
		mask, err2 := strconv.ParseUint(f[7], 16, 32)
		if err1 != nil || err2 != nil || mask == 0 {
			continue
		}
		// /proc/net/route prints addresses in host (little-endian) order.
		ip := net.IPv4(byte(dst), byte(dst>>8), byte(dst>>16), byte(dst>>24))
		m := net.IPv4Mask(byte(mask), byte(mask>>8), byte(mask>>16), byte(mask>>24))
		nets = append(nets, &net.IPNet{IP: ip.Mask(m), Mask: m})
	}
	return nets
}

// pickSubnet returns the first 10.213.X.0/24 that overlaps none of used.
func pickSubnet(used []*net.IPNet) (*net.IPNet, error) {
	for x := 0; x < 256; x++ {
		cand := &net.IPNet{IP: net.IPv4(10, 213, byte(x), 0).To4(), Mask: net.CIDRMask(24, 32)}
		clash := false
		for _, u := range used {
			if u.Contains(cand.IP) || cand.Contains(u.IP) {
				clash = true
				break
			}
		}
		if !clash {
			return cand, nil
		}
	}
	return nil, errors.New("no free /24 in 10.213.0.0/16 for the node's pods; remove the addresses or routes that cover it, or free one of its /24s")
}

// makeCgroups makes the node's own cgroup in every hierarchy, so
// everything the kubelet creates lives below it and is removed with it.
func (n *node) makeCgroups() error {
	roots, err := cgroupMounts()
	if err != nil {
		return err
	}
	for _, root := range roots {
		dir := filepath.Join(root, n.cgroupName)
		if err := os.Mkdir(dir, 0o755); err != nil {
			return fmt.Errorf("making the node's cgroup: %w", err)
		}
		n.cgroups = append(n.cgroups, dir)
	}
	return nil
}

func cgroupMounts() ([]string, error) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	var roots []string
	for _, line := range strings.Split(string(data), "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		fstype := strings.Fields(post)[0]
		if fstype == "cgroup" || fstype == "cgroup2" {
			roots = append(roots, unescapeMount(strings.Fields(pre)[4]))
		}
	}
	return roots, nil
}

func (e *Env) startContainerd(ctx context.Context) error {
	n := e.node
	dir := e.path("containerd")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	n.socket = filepath.Join(dir, "containerd.sock")
	config := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = %q

[ttrpc]
  address = %q

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = %q

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %q
  # This VM withholds CAP_SYS_RESOURCE even from root (shared/REAL-NODE.md).
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %q
    conf_dir = %q
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), n.socket, n.socket+".ttrpc", filepath.Join(dir, "opt"),
		n.pause.Name, cniBinDir(), e.path("cni", "net.d"))
	configPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(configPath, []byte(config), 0o600); err != nil {
		return err
	}
	e.progress("starting containerd (%s)", n.socket)
	var err error
	if n.containerd, err = startProcess("containerd", e.path("logs"), "containerd", []string{"--config", configPath}, nil); err != nil {
		return err
	}
	if err := e.waitFor(ctx, "containerd", n.containerd, 30*time.Second, func(ctx context.Context) error {
		return criVersion(ctx, n.socket)
	}); err != nil {
		return err
	}
	if err := e.loadImage(ctx, n.pause); err != nil {
		return err
	}
	// The workspace image (~1 GB, 20–40 s) loads while the control plane
	// starts; Start waits for it before saying ready (waitForImages), and
	// no pod needs it earlier.
	loadCtx, cancel := context.WithCancel(context.Background())
	n.imageLoad = make(chan error, 1)
	n.cancelImageLoad = cancel
	go func() { n.imageLoad <- e.loadImage(loadCtx, n.workspace) }()
	return nil
}

func (e *Env) loadImage(ctx context.Context, img images.Image) error {
	start := time.Now()
	if err := images.Import(ctx, "ctr", e.node.socket, img); err != nil {
		return err
	}
	e.progress("loaded %s into containerd in %s", img.Name, time.Since(start).Round(100*time.Millisecond))
	return nil
}

// waitForImages returns once the images loading in the background are in
// containerd, or why they are not.
func (e *Env) waitForImages(ctx context.Context) error {
	n := e.node
	if n == nil || n.imageLoad == nil {
		return nil
	}
	select {
	case err := <-n.imageLoad:
		n.imageLoad = nil
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// kubeAPIServerNodeArgs are kube-apiserver's flags for talking to the
// kubelet (logs, exec) and for the kubelet's own rights.
func (e *Env) kubeAPIServerNodeArgs() []string {
	return []string{
		"--enable-admission-plugins=NodeRestriction",
		"--kubelet-client-certificate=" + e.pki.kubeletClient.CertFile,
		"--kubelet-client-key=" + e.pki.kubeletClient.KeyFile,
		"--kubelet-certificate-authority=" + e.pki.servingCAFile,
		"--kubelet-preferred-address-types=InternalIP",
	}
}

// startNode starts kube-scheduler and the kubelet, the local storage
// provisioner, and waits for the node to be Ready.
func (e *Env) startNode(ctx context.Context) error {
	n := e.node
	kube, err := kubernetes.NewForConfig(e.adminCfg)
	if err != nil {
		return err
	}
	// kube-apiserver calls the kubelet as this user (logs, exec); the
	// kubelet asks kube-apiserver whether it may.
	if _, err := kube.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "guildnet-dev:kube-apiserver-kubelet-client"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "system:kubelet-api-admin"},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: kubeletClientUser}},
	}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	if err := e.startScheduler(); err != nil {
		return err
	}
	if err := e.startKubelet(); err != nil {
		return err
	}
	provCtx, cancel := context.WithCancel(context.Background())
	n.stopProvisioner = cancel
	if err := startLocalProvisioner(provCtx, kube, e.path("volumes")); err != nil {
		return err
	}
	start := time.Now()
	if err := e.waitFor(ctx, "the node "+NodeName+" to be Ready", n.kubelet, 90*time.Second, func(ctx context.Context) error {
		node, err := kube.CoreV1().Nodes().Get(ctx, NodeName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, c := range node.Status.Conditions {
			if c.Type == corev1.NodeReady {
				if c.Status == corev1.ConditionTrue {
					return nil
				}
				return fmt.Errorf("%s: %s", c.Reason, c.Message)
			}
		}
		return errors.New("no Ready condition yet")
	}); err != nil {
		return err
	}
	e.progress("node %s is Ready (%s, pods on %s) after %s", NodeName, n.nodeIP, n.subnet, time.Since(start).Round(100*time.Millisecond))
	return nil
}

const kubeletClientUser = "kube-apiserver-kubelet-client"

func (e *Env) startScheduler() error {
	n := e.node
	port, err := freePort()
	if err != nil {
		return err
	}
	kubeconfig := e.path("kubeconfigs", "kube-scheduler.kubeconfig")
	if err := e.writeKubeconfig(kubeconfig, "system:kube-scheduler", e.pki.scheduler); err != nil {
		return err
	}
	e.progress("starting kube-scheduler")
	n.scheduler, err = startProcess("kube-scheduler", e.path("logs"), e.tool("kube-scheduler"), []string{
		"--kubeconfig=" + kubeconfig,
		"--authentication-kubeconfig=" + kubeconfig,
		"--authorization-kubeconfig=" + kubeconfig,
		"--bind-address=127.0.0.1", "--secure-port=" + strconv.Itoa(port),
		"--leader-elect=false",
	}, nil)
	return err
}

func (e *Env) startKubelet() error {
	n := e.node
	ports, err := freePorts(2)
	if err != nil {
		return err
	}
	n.kubeletPort = ports[0]
	root := e.path("kubelet")
	if err := os.MkdirAll(root, 0o700); err != nil {
		return err
	}
	serving, err := e.servingCA.issueToFiles(e.path("pki"), "kubelet-serving", certSpec{commonName: NodeName, server: true, ips: []net.IP{n.nodeIP}, dnsNames: []string{NodeName}})
	if err != nil {
		return err
	}
	kubeconfig := e.path("kubeconfigs", "kubelet.kubeconfig")
	if err := e.writeKubeconfig(kubeconfig, "system:node:"+NodeName, e.pki.kubelet); err != nil {
		return err
	}
	config := fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: %q
port: %d
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: %d
tlsCertFile: %q
tlsPrivateKeyFile: %q
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: %q}
authorization:
  mode: Webhook
containerRuntimeEndpoint: unix://%s
# cgroups v1 on this kind of machine, driven by runc without systemd.
failCgroupV1: false
cgroupDriver: cgroupfs
# Everything the kubelet makes lives under the node's own cgroup.
cgroupRoot: /%s
# The VM withholds CAP_SYS_RESOURCE: the kubelet must not change its own OOM score.
oomScoreAdj: 0
failSwapOn: false
podLogsDirectory: %q
volumePluginDir: %q
# Images are loaded, not pulled: garbage-collecting one would lose it.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: 100Mi
  nodefs.available: 1%%
  nodefs.inodesFree: 1%%
  imagefs.available: 1%%
resolvConf: ""
serializeImagePulls: false
maxPods: 110
`, n.nodeIP.String(), n.kubeletPort, ports[1], serving.CertFile, serving.KeyFile, e.pki.clientCAFile, n.socket,
		n.cgroupName, e.path("pod-logs"), e.path("kubelet-plugins"))
	configPath := e.path("kubelet-config.yaml")
	if err := os.WriteFile(configPath, []byte(config), 0o600); err != nil {
		return err
	}
	e.progress("starting the kubelet as node %s on %s:%d", NodeName, n.nodeIP, n.kubeletPort)
	n.kubelet, err = startProcess("kubelet", e.path("logs"), e.tool("kubelet"), []string{
		"--config=" + configPath,
		"--kubeconfig=" + kubeconfig,
		"--root-dir=" + root,
		"--hostname-override=" + NodeName,
		"--node-ip=" + n.nodeIP.String(),
	}, nil)
	return err
}

// stopNode stops the node and undoes what it changed on the host. It keeps
// going after an error, so one failure does not leave the rest behind.
func (e *Env) stopNode() error {
	n := e.node
	if n == nil {
		return nil
	}
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	if n.stopProvisioner != nil {
		n.stopProvisioner()
	}
	if n.imageLoad != nil {
		// Stopped while the workspace image was still loading: end ctr first.
		n.cancelImageLoad()
		<-n.imageLoad
		n.imageLoad = nil
	}
	add(n.kubelet.stop(10 * time.Second))
	add(n.scheduler.stop(10 * time.Second))
	if n.containerd != nil {
		if done, _ := n.containerd.exited(); !done {
			// The CRI tears each pod's network down (CNI DEL) and unmounts its
			// namespace; the kubelet is gone, so nothing starts them again.
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			add(removeAllPods(ctx, n.socket))
			cancel()
		}
		add(n.containerd.stop(10 * time.Second))
	}
	add(killShims(n.socket))
	add(n.removeCgroups())
	if n.host != nil {
		add(n.host.unmountNew(e.Dir))
	}
	if n.iptables {
		exec.Command("iptables", "-w", "-t", "filter", "-D", "FORWARD", "-j", n.chain).Run()
		exec.Command("iptables", "-w", "-t", "filter", "-F", n.chain).Run()
		exec.Command("iptables", "-w", "-t", "filter", "-X", n.chain).Run()
	}
	if n.bridgeUp {
		if out, err := exec.Command("ip", "link", "del", n.bridge).CombinedOutput(); err != nil && !strings.Contains(string(out), "Cannot find device") {
			add(fmt.Errorf("removing bridge %s: %v: %s", n.bridge, err, out))
		}
	}
	if n.host != nil {
		add(n.host.restore())
	}
	e.node = nil
	return errors.Join(errs...)
}

// killShims ends containerd shims left for this containerd (after a pod
// could not be removed): each is a child of init by then, not of ours.
func killShims(socket string) error {
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return err
	}
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", p.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(cmdline), "\x00")
		if len(args) > 0 && strings.Contains(filepath.Base(args[0]), "containerd-shim") && strings.Contains(string(cmdline), socket) {
			_ = killTree(pid)
		}
	}
	return nil
}

// removeCgroups kills whatever still runs in the node's cgroups and
// removes them, deepest first.
func (n *node) removeCgroups() error {
	var errs []error
	for _, root := range n.cgroups {
		var dirs []string
		_ = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, path)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			if err := removeCgroup(dirs[i]); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

func removeCgroup(dir string) error {
	var err error
	for range 50 {
		if err = os.Remove(dir); err == nil || os.IsNotExist(err) {
			return nil
		}
		if procs, rerr := os.ReadFile(filepath.Join(dir, "cgroup.procs")); rerr == nil {
			for _, f := range strings.Fields(string(procs)) {
				if pid, perr := strconv.Atoi(f); perr == nil {
					_ = killTree(pid)
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("removing cgroup %s: %w", dir, err)
}
