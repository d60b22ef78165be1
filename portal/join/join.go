package join

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/guildnet/guildnet/portal/store"
)

// Result is a joined cluster and what its check found.
type Result struct {
	Cluster   store.Cluster
	Discovery *Discovery
}

// Join parses data (a guildnet.config or a kubeconfig), checks the cluster
// and, only if the check passes, stores it. On any error nothing is stored.
func Join(ctx context.Context, st *store.Store, data []byte, opts Options) (*Result, error) {
	cfg, err := Parse(data, opts)
	if err != nil {
		return nil, err
	}
	restCfg, err := cfg.RESTConfig()
	if err != nil {
		return nil, err
	}
	disc, err := Check(ctx, restCfg, opts.Timeout)
	if err != nil {
		return nil, err
	}
	kc, err := cfg.Kubeconfig()
	if err != nil {
		return nil, fmt.Errorf("encoding the kubeconfig: %v", err)
	}
	settings := store.Settings{}
	// A ServiceAccount-based file names the namespace its account may use;
	// that is the useful default. An invalid one is not worth failing for.
	if len(validation.IsDNS1123Label(cfg.Namespace)) == 0 {
		settings.DefaultNamespace = cfg.Namespace
	}
	c, err := st.Add(store.NewCluster{
		Name:             cfg.Name,
		Server:           cfg.Server,
		Kubeconfig:       kc,
		AllowExecPlugins: cfg.UsesPlugin,
		Settings:         settings,
	})
	if err != nil {
		return nil, err
	}
	return &Result{Cluster: c, Discovery: disc}, nil
}

// JoinFile joins the file at path; relative file references in its
// kubeconfig are resolved against the file's folder.
func JoinFile(ctx context.Context, st *store.Store, path string, opts Options) (*Result, error) {
	data, err := readFileLimited(path)
	if err != nil {
		return nil, fmt.Errorf("reading the join file: %v", err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("reading the join file: %v", err)
	}
	opts.BaseDir = filepath.Dir(abs)
	return Join(ctx, st, data, opts)
}

// Export returns a guildnet.config for the stored cluster id, to join it on
// another device. It holds the cluster's credentials: treat it like a
// password.
func Export(st *store.Store, id string) ([]byte, error) {
	c, err := st.Get(id)
	if err != nil {
		return nil, err
	}
	data, err := st.Kubeconfig(id)
	if err != nil {
		return nil, err
	}
	kc, err := clientcmd.Load(data)
	if err != nil {
		return nil, fmt.Errorf("reading the stored kubeconfig of cluster %s: %v", id, err)
	}
	jc, err := newJoinConfig(c.Name, kc)
	if err != nil {
		return nil, fmt.Errorf("exporting cluster %s: %v", id, err)
	}
	return jc.YAML()
}

// RESTConfigFor builds a client configuration for a stored cluster, with
// the plugin consent given when it was joined: a kubeconfig that gained a
// plugin afterwards is refused.
func RESTConfigFor(st *store.Store, id string) (*rest.Config, error) {
	c, err := st.Get(id)
	if err != nil {
		return nil, err
	}
	data, err := st.Kubeconfig(id)
	if err != nil {
		return nil, err
	}
	// Stored kubeconfigs are self-contained; refuse file references
	// (BaseDir "") rather than follow them.
	cfg, err := Parse(data, Options{AllowExecPlugins: c.AllowExecPlugins})
	if err != nil {
		var pe *PluginError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("cluster %s: its stored kubeconfig runs a credential plugin that was not allowed when it was joined; remove the cluster and join it again with --allow-exec-plugins if you trust it", id)
		}
		return nil, fmt.Errorf("cluster %s: %v", id, err)
	}
	return cfg.RESTConfig()
}
