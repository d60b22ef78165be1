package join

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/yaml"
)

const (
	// APIVersion and Kind identify a guildnet.config.
	APIVersion = "guildnet.io/v1alpha1"
	Kind       = "JoinConfig"

	// DefaultTimeout bounds the discovery check when Options.Timeout is 0.
	DefaultTimeout = 10 * time.Second

	// maxFileSize bounds what is read from a join file or a file it refers
	// to; a kubeconfig is a few kilobytes.
	maxFileSize = 1 << 20
)

// JoinConfig is the guildnet.config document; see the package doc.
type JoinConfig struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	// Name is the display name the cluster is joined under.
	Name string `json:"name,omitempty"`
	// Server, when set, replaces the server of the kubeconfig's current
	// context's cluster.
	Server string `json:"server,omitempty"`
	// CertificateAuthorityData, when set, replaces that cluster's CA
	// (PEM; base64 in YAML and JSON, as in kubeconfigs).
	CertificateAuthorityData []byte `json:"certificateAuthorityData,omitempty"`
	// Kubeconfig is the embedded kubeconfig: a JSON/YAML object or a
	// string holding one.
	Kubeconfig json.RawMessage `json:"kubeconfig"`
}

// Options control Parse and Join.
type Options struct {
	// AllowExecPlugins accepts users that run exec or auth-provider
	// credential plugins. Only set it when the person said they trust the
	// file: the plugin runs as them, on this device.
	AllowExecPlugins bool
	// BaseDir resolves relative file references in the kubeconfig
	// (certificate-authority: ca.crt). Empty refuses file references
	// altogether, which is right for uploaded files.
	BaseDir string
	// Name overrides the display name from the file.
	Name string
	// Timeout bounds the discovery check; 0 means DefaultTimeout.
	Timeout time.Duration
}

// Config is a parsed join file: one context, self-contained, hints
// applied, plugin policy checked.
type Config struct {
	// Name is the display name.
	Name string
	// Server is the kube-apiserver URL.
	Server string
	// Namespace is the context's namespace ("" if it names none).
	Namespace string
	// UsesPlugin says the user runs an exec or auth-provider plugin (only
	// possible when Options.AllowExecPlugins was set).
	UsesPlugin bool

	kubeconfig *clientcmdapi.Config
}

// Parse reads a guildnet.config or a plain kubeconfig.
func Parse(data []byte, opts Options) (*Config, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, errors.New("the join file is empty")
	}
	var tm struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	if err := yaml.Unmarshal(data, &tm); err != nil {
		return nil, fmt.Errorf("the join file is neither YAML nor JSON: %v", err)
	}
	var (
		kubeconfigData []byte
		hints          JoinConfig
	)
	switch {
	case tm.Kind == Kind:
		if tm.APIVersion != APIVersion {
			return nil, fmt.Errorf("the join file is a %s of apiVersion %q; this guildnet-portal reads %s (use a newer guildnet-portal, or ask for a %s file)", Kind, tm.APIVersion, APIVersion, APIVersion)
		}
		// Strict, so that a typo ("sever:") is an error rather than a hint
		// silently not applied.
		if err := yaml.UnmarshalStrict(data, &hints); err != nil {
			return nil, fmt.Errorf("reading the guildnet.config: %v", err)
		}
		kc, err := embeddedKubeconfig(hints.Kubeconfig)
		if err != nil {
			return nil, err
		}
		kubeconfigData = kc
	case tm.Kind == "Config" || (tm.Kind == "" && tm.APIVersion == ""):
		kubeconfigData = data
	default:
		return nil, fmt.Errorf("the join file is a %q (apiVersion %q); expected a guildnet.config (kind: %s) or a kubeconfig (kind: Config)", tm.Kind, tm.APIVersion, Kind)
	}

	raw, err := clientcmd.Load(kubeconfigData)
	if err != nil {
		return nil, fmt.Errorf("reading the kubeconfig: %v", err)
	}
	kc, ctx, err := singleContext(raw)
	if err != nil {
		return nil, err
	}
	cluster := kc.Clusters[ctx.Cluster]
	user := kc.AuthInfos[ctx.AuthInfo]

	if hints.Server != "" {
		cluster.Server = hints.Server
	}
	if len(hints.CertificateAuthorityData) > 0 {
		// A CA given explicitly means "verify against this".
		cluster.CertificateAuthorityData = hints.CertificateAuthorityData
		cluster.CertificateAuthority = ""
		cluster.InsecureSkipTLSVerify = false
	}
	if err := checkServer(cluster.Server); err != nil {
		return nil, err
	}
	if err := checkPlugins(ctx.AuthInfo, user, opts.AllowExecPlugins); err != nil {
		return nil, err
	}
	if err := inlineFiles(cluster, user, opts.BaseDir); err != nil {
		return nil, err
	}

	name := firstNonEmpty(opts.Name, hints.Name, ctx.Cluster, serverHost(cluster.Server))
	return &Config{
		Name:       name,
		Server:     cluster.Server,
		Namespace:  ctx.Namespace,
		UsesPlugin: user.Exec != nil || user.AuthProvider != nil,
		kubeconfig: kc,
	}, nil
}

// embeddedKubeconfig accepts the kubeconfig field as an object or as a
// string holding YAML or JSON.
func embeddedKubeconfig(raw json.RawMessage) ([]byte, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil, errors.New("the guildnet.config has no kubeconfig field; it needs one with the cluster's credentials")
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, fmt.Errorf("reading the guildnet.config's kubeconfig string: %v", err)
		}
		return []byte(s), nil
	}
	return raw, nil
}

// singleContext returns a new kubeconfig holding only the current context
// (or the only one), its cluster and its user: a device needs nothing else,
// and keeping other users' credentials would be a leak.
func singleContext(in *clientcmdapi.Config) (*clientcmdapi.Config, *clientcmdapi.Context, error) {
	name := in.CurrentContext
	if name == "" {
		if len(in.Contexts) != 1 {
			return nil, nil, fmt.Errorf("the kubeconfig has %d contexts and no current-context; set current-context to the one to join", len(in.Contexts))
		}
		for n := range in.Contexts {
			name = n
		}
	}
	ctx, ok := in.Contexts[name]
	if !ok {
		return nil, nil, fmt.Errorf("the kubeconfig's current-context %q is not among its contexts", name)
	}
	cluster, ok := in.Clusters[ctx.Cluster]
	if !ok {
		return nil, nil, fmt.Errorf("context %q names cluster %q, which the kubeconfig does not define", name, ctx.Cluster)
	}
	user, ok := in.AuthInfos[ctx.AuthInfo]
	if !ok {
		return nil, nil, fmt.Errorf("context %q names user %q, which the kubeconfig does not define", name, ctx.AuthInfo)
	}
	out := clientcmdapi.NewConfig()
	c, cl, u := *ctx, *cluster, *user
	c.LocationOfOrigin, cl.LocationOfOrigin, u.LocationOfOrigin = "", "", ""
	out.Contexts[name] = &c
	out.Clusters[ctx.Cluster] = &cl
	out.AuthInfos[ctx.AuthInfo] = &u
	out.CurrentContext = name
	return out, &c, nil
}

func checkServer(server string) error {
	if server == "" {
		return errors.New("the kubeconfig's cluster has no server address")
	}
	u, err := url.Parse(server)
	if err != nil || u.Host == "" {
		return fmt.Errorf("the server address %q is not a URL like https://host:6443", server)
	}
	if u.Scheme != "https" {
		return fmt.Errorf("the server address %q is not https; the portal sends credentials to it and will not do so in clear text", server)
	}
	return nil
}

// PluginError is returned for a user that runs a credential plugin when
// plugins were not allowed.
type PluginError struct {
	User string
	// Plugin is "exec" or "auth-provider".
	Plugin string
	// Detail names the command or provider.
	Detail string
}

func (e *PluginError) Error() string {
	return fmt.Sprintf("kubeconfig user %q runs an %s credential plugin (%s); kubeconfigs are code, and joining would let this file run that program on this device whenever the portal talks to the cluster. If you trust the file, join again with --allow-exec-plugins", e.User, e.Plugin, e.Detail)
}

func checkPlugins(name string, u *clientcmdapi.AuthInfo, allow bool) error {
	if allow {
		return nil
	}
	if u.Exec != nil {
		return &PluginError{User: name, Plugin: "exec", Detail: "command " + strings.TrimSpace(u.Exec.Command+" "+strings.Join(u.Exec.Args, " "))}
	}
	if u.AuthProvider != nil {
		return &PluginError{User: name, Plugin: "auth-provider", Detail: "provider " + u.AuthProvider.Name}
	}
	return nil
}

// inlineFiles replaces file references by the files' contents so that the
// stored kubeconfig does not depend on files that may move or vanish.
func inlineFiles(c *clientcmdapi.Cluster, u *clientcmdapi.AuthInfo, baseDir string) error {
	read := func(field, path string) ([]byte, error) {
		if baseDir == "" {
			return nil, fmt.Errorf("the kubeconfig refers to a file (%s: %s); an uploaded file may only carry inline data (%s-data), so join it from the command line or inline the file", field, path, field)
		}
		if !filepath.IsAbs(path) {
			path = filepath.Join(baseDir, path)
		}
		data, err := readFileLimited(path)
		if err != nil {
			return nil, fmt.Errorf("reading the kubeconfig's %s: %v", field, err)
		}
		return data, nil
	}
	var err error
	if c.CertificateAuthority != "" {
		if c.CertificateAuthorityData, err = read("certificate-authority", c.CertificateAuthority); err != nil {
			return err
		}
		c.CertificateAuthority = ""
	}
	if u.ClientCertificate != "" {
		if u.ClientCertificateData, err = read("client-certificate", u.ClientCertificate); err != nil {
			return err
		}
		u.ClientCertificate = ""
	}
	if u.ClientKey != "" {
		if u.ClientKeyData, err = read("client-key", u.ClientKey); err != nil {
			return err
		}
		u.ClientKey = ""
	}
	if u.TokenFile != "" {
		// A token file is usually refreshed in place; the stored copy is a
		// snapshot, like the rest of the kubeconfig.
		tok, err := read("tokenFile", u.TokenFile)
		if err != nil {
			return err
		}
		u.Token = strings.TrimSpace(string(tok))
		u.TokenFile = ""
	}
	return nil
}

func readFileLimited(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Size() > maxFileSize {
		return nil, fmt.Errorf("%s is %d bytes; a kubeconfig or certificate is far smaller", path, fi.Size())
	}
	return os.ReadFile(path)
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s = strings.TrimSpace(s); s != "" {
			return s
		}
	}
	return ""
}

func serverHost(server string) string {
	if u, err := url.Parse(server); err == nil {
		return u.Hostname()
	}
	return ""
}

// Kubeconfig returns the self-contained kubeconfig to store.
func (c *Config) Kubeconfig() ([]byte, error) {
	return clientcmd.Write(*c.kubeconfig)
}

// RESTConfig builds a client configuration from the kubeconfig.
func (c *Config) RESTConfig() (*rest.Config, error) {
	return restConfig(c.kubeconfig)
}

func restConfig(kc *clientcmdapi.Config) (*rest.Config, error) {
	cfg, err := clientcmd.NewDefaultClientConfig(*kc, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("building a client from the kubeconfig: %v", err)
	}
	// Deprecation warnings from the cluster are not the person's concern
	// here and would otherwise go to stderr through klog.
	cfg.WarningHandler = rest.NoWarnings{}
	cfg.UserAgent = "guildnet-portal"
	return cfg, nil
}

// JoinConfig returns the guildnet.config for c: hints from the kubeconfig,
// the kubeconfig embedded as an object.
func (c *Config) JoinConfig() (*JoinConfig, error) {
	return newJoinConfig(c.Name, c.kubeconfig)
}

func newJoinConfig(name string, kc *clientcmdapi.Config) (*JoinConfig, error) {
	ctx := kc.Contexts[kc.CurrentContext]
	if ctx == nil || kc.Clusters[ctx.Cluster] == nil {
		return nil, errors.New("the kubeconfig has no current context with a cluster")
	}
	cluster := kc.Clusters[ctx.Cluster]
	yamlData, err := clientcmd.Write(*kc)
	if err != nil {
		return nil, err
	}
	obj, err := yaml.YAMLToJSON(yamlData)
	if err != nil {
		return nil, err
	}
	return &JoinConfig{
		APIVersion:               APIVersion,
		Kind:                     Kind,
		Name:                     name,
		Server:                   cluster.Server,
		CertificateAuthorityData: cluster.CertificateAuthorityData,
		Kubeconfig:               obj,
	}, nil
}

// YAML encodes the guildnet.config. The result holds credentials.
func (jc *JoinConfig) YAML() ([]byte, error) {
	return yaml.Marshal(jc)
}
