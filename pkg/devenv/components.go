package devenv

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	apiregistrationv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
	aggregator "k8s.io/kube-aggregator/pkg/client/clientset_generated/clientset"

	"github.com/guildnet/guildnet/pkg/devenv/reqlite"
)

var loopbackIPs = []net.IP{net.ParseIP("127.0.0.1")}

// pki holds the files the components are started with.
type pki struct {
	servingCAFile, clientCAFile, frontProxyCAFile string
	kubeAPIServing, admin, kcm, frontProxyClient  keyPair
	guildnetServing, guildnetIdentity             keyPair
	kubelet, kubeletClient, scheduler             keyPair
	saKey, saPub                                  string
}

func (e *Env) makePKI() error {
	dir := e.path("pki")
	var err error
	if e.servingCA, err = newCA("guildnet-dev-serving-ca"); err != nil {
		return err
	}
	if e.clientCA, err = newCA("guildnet-dev-client-ca"); err != nil {
		return err
	}
	if e.frontProxy, err = newCA("guildnet-dev-front-proxy-ca"); err != nil {
		return err
	}
	// guildnet-apiserver's serving CA is what the APIService's caBundle holds.
	if e.aggCA, err = newCA("guildnet-dev-guildnet-apiserver-ca"); err != nil {
		return err
	}
	p := &e.pki
	p.servingCAFile, p.clientCAFile, p.frontProxyCAFile = filepath.Join(dir, "serving-ca.crt"), filepath.Join(dir, "client-ca.crt"), filepath.Join(dir, "front-proxy-ca.crt")
	for file, c := range map[string]*ca{p.servingCAFile: e.servingCA, p.clientCAFile: e.clientCA, p.frontProxyCAFile: e.frontProxy} {
		if err := c.writeCert(file); err != nil {
			return err
		}
	}
	issue := []struct {
		dst  *keyPair
		ca   *ca
		name string
		spec certSpec
	}{
		{&p.kubeAPIServing, e.servingCA, "kube-apiserver", certSpec{commonName: "kube-apiserver", server: true, ips: loopbackIPs,
			dnsNames: []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"}}},
		{&p.admin, e.clientCA, "admin", certSpec{commonName: "guildnet-dev-admin", orgs: []string{"system:masters"}, client: true}},
		{&p.kcm, e.clientCA, "kube-controller-manager", certSpec{commonName: "system:kube-controller-manager", client: true}},
		{&p.frontProxyClient, e.frontProxy, "front-proxy-client", certSpec{commonName: "front-proxy-client", client: true}},
		// The aggregator verifies <service>.<namespace>.svc even though the
		// ExternalName Service sends the connection to localhost.
		{&p.guildnetServing, e.aggCA, "guildnet-apiserver", certSpec{commonName: ServiceName, server: true, ips: loopbackIPs,
			dnsNames: []string{ServiceName + "." + SystemNamespace + ".svc", "localhost"}}},
		// The dev server authenticates as the ServiceAccount artifacts/ grants rights to.
		{&p.guildnetIdentity, e.clientCA, "guildnet-apiserver-identity", certSpec{
			commonName: "system:serviceaccount:" + SystemNamespace + ":" + ServiceAccount,
			orgs:       []string{"system:serviceaccounts", "system:serviceaccounts:" + SystemNamespace}, client: true}},
		{&p.scheduler, e.clientCA, "kube-scheduler", certSpec{commonName: "system:kube-scheduler", client: true}},
		{&p.kubelet, e.clientCA, "kubelet", certSpec{commonName: "system:node:" + NodeName, orgs: []string{"system:nodes"}, client: true}},
		{&p.kubeletClient, e.clientCA, "kube-apiserver-kubelet-client", certSpec{commonName: kubeletClientUser, client: true}},
	}
	for _, i := range issue {
		kp, err := i.ca.issueToFiles(dir, i.name, i.spec)
		if err != nil {
			return err
		}
		*i.dst = kp
	}
	p.saKey, p.saPub, err = writeServiceAccountKey(dir)
	return err
}

func (e *Env) startEtcd(ctx context.Context) error {
	ports, err := freePorts(2)
	if err != nil {
		return err
	}
	client, peer := fmt.Sprintf("http://127.0.0.1:%d", ports[0]), fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	e.etcdURL = client
	e.progress("starting etcd on %s", client)
	e.etcd, err = startProcess("etcd", e.path("logs"), e.tool("etcd"), []string{
		"--name=default",
		"--data-dir=" + e.path("etcd"),
		"--listen-client-urls=" + client, "--advertise-client-urls=" + client,
		"--listen-peer-urls=" + peer, "--initial-advertise-peer-urls=" + peer,
		"--initial-cluster=default=" + peer,
		// A throwaway cluster: fsync only slows tests down.
		"--unsafe-no-fsync",
		"--log-level=warn",
	}, nil)
	if err != nil {
		return err
	}
	return e.waitFor(ctx, "etcd", e.etcd, 30*time.Second, func(ctx context.Context) error {
		return httpOK(ctx, http.DefaultClient, client+"/health")
	})
}

func (e *Env) startKubeAPIServer(ctx context.Context) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	e.KubeAPIServerURL = fmt.Sprintf("https://127.0.0.1:%d", port)
	p := &e.pki
	args := []string{
		"--etcd-servers=" + e.etcdURL,
		"--bind-address=127.0.0.1", "--secure-port=" + strconv.Itoa(port),
		// A loopback advertise address is refused unless nothing reconciles
		// the kubernetes Service's endpoints.
		"--advertise-address=127.0.0.1", "--endpoint-reconciler-type=none",
		"--tls-cert-file=" + p.kubeAPIServing.CertFile, "--tls-private-key-file=" + p.kubeAPIServing.KeyFile,
		"--client-ca-file=" + p.clientCAFile,
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file=" + p.saPub,
		"--service-account-signing-key-file=" + p.saKey,
		"--service-cluster-ip-range=10.96.0.0/16",
		// The Node authorizer lets a kubelet read what its pods need and nothing more.
		"--authorization-mode=Node,RBAC",
		"--allow-privileged=true",
		// The aggregation layer: kube-apiserver authenticates users and tells
		// guildnet-apiserver who they are in these headers, proving itself
		// with the front-proxy client certificate.
		"--requestheader-client-ca-file=" + p.frontProxyCAFile,
		"--requestheader-allowed-names=front-proxy-client",
		"--requestheader-username-headers=X-Remote-User",
		"--requestheader-group-headers=X-Remote-Group",
		"--requestheader-extra-headers-prefix=X-Remote-Extra-",
		"--proxy-client-cert-file=" + p.frontProxyClient.CertFile,
		"--proxy-client-key-file=" + p.frontProxyClient.KeyFile,
	}
	if e.opts.RequestTimeout > 0 {
		args = append(args, "--request-timeout="+e.opts.RequestTimeout.String())
	}
	if e.node != nil {
		args = append(args, e.kubeAPIServerNodeArgs()...)
	}
	e.progress("starting kube-apiserver %s on %s", kubernetesVersion, e.KubeAPIServerURL)
	if e.kubeAPI, err = startProcess("kube-apiserver", e.path("logs"), e.tool("kube-apiserver"), args, nil); err != nil {
		return err
	}
	e.AdminKubeconfig = e.path("kubeconfig")
	if err := e.writeKubeconfig(e.AdminKubeconfig, "guildnet-dev-admin", p.admin); err != nil {
		return err
	}
	if e.adminCfg, err = clientcmd.BuildConfigFromFlags("", e.AdminKubeconfig); err != nil {
		return err
	}
	// Tests and benchmarks burst; client-go's default 5 QPS would measure the throttle.
	e.adminCfg.QPS, e.adminCfg.Burst = 1000, 1000
	kube, err := kubernetes.NewForConfig(e.adminCfg)
	if err != nil {
		return err
	}
	return e.waitFor(ctx, "kube-apiserver", e.kubeAPI, 90*time.Second, func(ctx context.Context) error {
		return kube.Discovery().RESTClient().Get().AbsPath("/readyz").Do(ctx).Error()
	})
}

func (e *Env) startControllerManager() error {
	port, err := freePort()
	if err != nil {
		return err
	}
	kubeconfig := e.path("kubeconfigs", "kube-controller-manager.kubeconfig")
	if err := e.writeKubeconfig(kubeconfig, "system:kube-controller-manager", e.pki.kcm); err != nil {
		return err
	}
	e.progress("starting kube-controller-manager (namespace, garbage collector, ...)")
	e.kcm, err = startProcess("kube-controller-manager", e.path("logs"), e.tool("kube-controller-manager"), []string{
		"--kubeconfig=" + kubeconfig,
		"--authentication-kubeconfig=" + kubeconfig,
		"--authorization-kubeconfig=" + kubeconfig,
		"--bind-address=127.0.0.1", "--secure-port=" + strconv.Itoa(port),
		"--leader-elect=false",
		// Each controller acts as its own ServiceAccount, as in kubeadm clusters.
		"--use-service-account-credentials=true",
		"--service-account-private-key-file=" + e.pki.saKey,
		"--root-ca-file=" + e.pki.servingCAFile,
		"--cert-dir=" + e.path("pki", "kcm"),
	}, nil)
	// Its controllers come up in the background; guildnet-apiserver does not
	// depend on them to start.
	return err
}

func (e *Env) startReqlite(ctx context.Context) error {
	return e.runReqlite(ctx, 0)
}

// runReqlite starts reqlite on port (0: a free one).
func (e *Env) runReqlite(ctx context.Context, port int) error {
	logFile, err := os.OpenFile(e.path("logs", "reqlite.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	e.progress("starting reqlite (RethinkDB protocol)")
	srv, err := reqlite.Start(ctx, reqlite.Options{Dir: filepath.Join(e.opts.RepoRoot, "hack", "reqlite"), Port: port, Log: logFile})
	if err != nil {
		logFile.Close()
		return err
	}
	e.mu.Lock()
	e.reqlite, e.RethinkDBAddr = srv, srv.Addr
	e.mu.Unlock()
	return nil
}

// StopRethinkDB stops the RethinkDB-protocol server, as an outage would.
// reqlite keeps data in memory only, so StartRethinkDB brings back an empty
// server on the same address: what it tests is reconnecting, not durability.
func (e *Env) StopRethinkDB() error {
	e.mu.Lock()
	srv := e.reqlite
	e.mu.Unlock()
	if srv == nil {
		return nil
	}
	return srv.Stop()
}

// StartRethinkDB starts the RethinkDB-protocol server again on its old address.
func (e *Env) StartRethinkDB(ctx context.Context) error {
	_, portStr, err := net.SplitHostPort(e.RethinkDBAddr)
	if err != nil {
		return err
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return err
	}
	return e.runReqlite(ctx, port)
}

func (e *Env) startGuildNet(ctx context.Context) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	e.GuildNetAPIServerPort = port
	if err := e.applyManifests(ctx, "namespace.yaml", "serviceaccount.yaml", "rbac-apiserver.yaml", "rbac-aggregated.yaml"); err != nil {
		return fmt.Errorf("applying artifacts/base RBAC: %w", err)
	}
	if err := e.runGuildNet(ctx); err != nil {
		return err
	}
	if err := e.register(ctx); err != nil {
		return err
	}
	return e.waitForDiscovery(ctx)
}

// runGuildNet starts the main guildnet-apiserver and waits for its /readyz.
func (e *Env) runGuildNet(ctx context.Context) error {
	p, err := e.startGuildNetProcess(ctx, "guildnet-apiserver", e.GuildNetAPIServerPort)
	if err != nil {
		return err
	}
	e.mu.Lock()
	e.guildnet = p
	e.mu.Unlock()
	return nil
}

// startGuildNetProcess starts a guildnet-apiserver on port, on the
// environment's RethinkDB, and waits for its /readyz.
func (e *Env) startGuildNetProcess(ctx context.Context, name string, port int, extraArgs ...string) (*process, error) {
	identity := e.path("kubeconfigs", "guildnet-apiserver.kubeconfig")
	if err := e.writeKubeconfig(identity, ServiceAccount, e.pki.guildnetIdentity); err != nil {
		return nil, err
	}
	args := []string{
		"--bind-address=127.0.0.1", "--secure-port=" + strconv.Itoa(port),
		"--tls-cert-file=" + e.pki.guildnetServing.CertFile, "--tls-private-key-file=" + e.pki.guildnetServing.KeyFile,
		"--kubeconfig=" + identity,
		"--authentication-kubeconfig=" + identity,
		"--authorization-kubeconfig=" + identity,
		"--rethinkdb-address=" + e.RethinkDBAddr,
	}
	if e.node != nil {
		// The node's images are loaded, not pulled: a missing one should
		// say so at once instead of being looked for on the network.
		args = append(args, "--workspace-default-image-pull-policy=Never")
	}
	args = append(args, e.opts.ExtraAPIServerArgs...)
	args = append(args, extraArgs...)
	e.progress("starting %s on 127.0.0.1:%d", name, port)
	p, err := startProcess(name, e.path("logs"), e.opts.APIServerBinary, args, nil)
	if err != nil {
		return nil, err
	}
	url := fmt.Sprintf("https://127.0.0.1:%d/readyz", port)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: e.guildnetTLS()}}
	if err := e.waitFor(ctx, name, p, 60*time.Second, func(ctx context.Context) error {
		return httpOK(ctx, client, url)
	}); err != nil {
		_ = p.stop(5 * time.Second)
		return nil, err
	}
	// /readyz can pass before the client CAs from kube-system's
	// extension-apiserver-authentication ConfigMap are loaded; until then a
	// client certificate counts as anonymous. Wait until one is accepted.
	direct, err := kubernetes.NewForConfig(e.directConfig(port))
	if err != nil {
		_ = p.stop(5 * time.Second)
		return nil, err
	}
	if err := e.waitFor(ctx, name+" to accept client certificates", p, 60*time.Second, func(ctx context.Context) error {
		return direct.Discovery().RESTClient().Get().AbsPath("/apis/guildnet.io/v1alpha1/namespaces/default/databases").Do(ctx).Error()
	}); err != nil {
		_ = p.stop(5 * time.Second)
		return nil, err
	}
	return p, nil
}

// guildnetTLS trusts guildnet-apiserver's serving certificate.
func (e *Env) guildnetTLS() *tls.Config {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(e.aggCA.certPEM)
	return &tls.Config{RootCAs: pool, ServerName: "localhost"}
}

// register creates the ExternalName Service and the APIService that put
// guildnet-apiserver behind kube-apiserver's aggregation layer.
func (e *Env) register(ctx context.Context) error {
	kube, err := kubernetes.NewForConfig(e.adminCfg)
	if err != nil {
		return err
	}
	port := int32(e.GuildNetAPIServerPort)
	// Endpoints reject loopback addresses and there is no kube-proxy, so an
	// ExternalName Service is how the aggregator reaches a server on this host.
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: ServiceName, Namespace: SystemNamespace},
		Spec: corev1.ServiceSpec{
			Type:         corev1.ServiceTypeExternalName,
			ExternalName: "localhost",
			// Named apart from artifacts/'s "https" port so both can be applied.
			Ports: []corev1.ServicePort{{Name: "https-dev", Port: port, TargetPort: intstr.FromInt32(port)}},
		},
	}
	if _, err := kube.CoreV1().Services(SystemNamespace).Create(ctx, svc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating Service %s/%s: %w", SystemNamespace, ServiceName, err)
	}
	agg, err := aggregator.NewForConfig(e.adminCfg)
	if err != nil {
		return err
	}
	apiService := &apiregistrationv1.APIService{
		ObjectMeta: metav1.ObjectMeta{Name: APIServiceName},
		Spec: apiregistrationv1.APIServiceSpec{
			Group: "guildnet.io", Version: "v1alpha1",
			Service:              &apiregistrationv1.ServiceReference{Namespace: SystemNamespace, Name: ServiceName, Port: &port},
			CABundle:             e.aggCA.certPEM,
			GroupPriorityMinimum: 1000,
			VersionPriority:      15,
		},
	}
	e.progress("registering APIService %s", APIServiceName)
	if _, err := agg.ApiregistrationV1().APIServices().Create(ctx, apiService, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating APIService %s: %w", APIServiceName, err)
	}
	return e.waitFor(ctx, "APIService "+APIServiceName+" to be Available", e.kubeAPI, 60*time.Second, func(ctx context.Context) error {
		got, err := agg.ApiregistrationV1().APIServices().Get(ctx, APIServiceName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, c := range got.Status.Conditions {
			if c.Type == apiregistrationv1.Available {
				if c.Status == apiregistrationv1.ConditionTrue {
					return nil
				}
				return fmt.Errorf("%s: %s", c.Reason, c.Message)
			}
		}
		return errors.New("no Available condition yet")
	})
}

// waitForDiscovery waits until kube-apiserver's discovery lists the three
// resources: Available alone races with the aggregated discovery cache.
func (e *Env) waitForDiscovery(ctx context.Context) error {
	kube, err := kubernetes.NewForConfig(e.adminCfg)
	if err != nil {
		return err
	}
	return e.waitFor(ctx, "guildnet.io discovery", e.guildnet, 60*time.Second, func(context.Context) error {
		list, err := kube.Discovery().ServerResourcesForGroupVersion(GroupVersion)
		if err != nil {
			return err
		}
		found := map[string]bool{}
		for _, r := range list.APIResources {
			found[r.Name] = true
		}
		for _, want := range []string{"workspaces", "databases", "tables"} {
			if !found[want] {
				return fmt.Errorf("discovery of %s lacks %s", GroupVersion, want)
			}
		}
		return nil
	})
}

func httpOK(ctx context.Context, client *http.Client, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}
