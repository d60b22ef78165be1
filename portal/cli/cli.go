// Package cli is the guildnet-portal command tree. cmd/guildnet-portal is a
// thin main around NewCommand; keeping the commands here lets tests run
// them in process.
//
// Conventions: results go to stdout (an id, a list, a file), everything
// meant for the person goes to stderr, and every error is returned so that
// main prints it as one line and exits 1.
package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/guildnet/guildnet/portal/join"
	"github.com/guildnet/guildnet/portal/store"
)

// globalOptions are the flags every command shares.
type globalOptions struct {
	stateDir string
}

// openStore opens the state dir: --state-dir, else $GUILDNET_STATE_DIR,
// else ~/.guildnet.
func (g *globalOptions) openStore() (*store.Store, error) {
	dir := g.stateDir
	if dir == "" {
		var err error
		if dir, err = store.DefaultDir(); err != nil {
			return nil, err
		}
	}
	return store.Open(dir)
}

// NewCommand returns the guildnet-portal root command.
func NewCommand() *cobra.Command {
	g := &globalOptions{}
	root := &cobra.Command{
		Use:   "guildnet-portal",
		Short: "The per-device GuildNet portal: join clusters and work with them",
		Long: `guildnet-portal keeps the GuildNet clusters this device has joined, one
kubeconfig each, in its state dir (--state-dir, else $` + store.EnvStateDir + `,
else ~/.guildnet).`,
		// Errors are printed once, by main, as one line; usage only on --help.
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.PersistentFlags().StringVar(&g.stateDir, "state-dir", "",
		"Folder holding the joined clusters (default $"+store.EnvStateDir+", else ~/.guildnet)")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return fmt.Errorf("%v (see %s --help)", err, c.CommandPath())
	})
	root.AddCommand(
		newJoinCommand(g),
		newClustersCommand(g),
		newRemoveCommand(g),
		newExportCommand(g),
		newMakeJoinConfigCommand(),
		newServeCommand(g),
	)
	return root
}

// exactArgs is cobra.ExactArgs with a message that shows the usage.
func exactArgs(n int) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if len(args) != n {
			return fmt.Errorf("usage: %s", c.UseLine())
		}
		return nil
	}
}

func newJoinCommand(g *globalOptions) *cobra.Command {
	var opts join.Options
	cmd := &cobra.Command{
		Use:   "join FILE",
		Short: "Join a cluster from a guildnet.config or kubeconfig (- reads stdin)",
		Long: `Join reads a guildnet.config (or a plain kubeconfig), checks that the cluster
serves guildnet.io/v1alpha1 (within --timeout), and only then stores it.
It prints the new cluster's id.

A kubeconfig whose user runs an exec or auth-provider credential plugin is
refused unless --allow-exec-plugins is given: kubeconfigs are code, and the
plugin would run on this device whenever the portal talks to the cluster.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := g.openStore()
			if err != nil {
				return err
			}
			var res *join.Result
			if args[0] == "-" {
				// No folder to resolve file references against: the file
				// must be self-contained, like an upload.
				data, err := io.ReadAll(io.LimitReader(cmd.InOrStdin(), 1<<20))
				if err != nil {
					return fmt.Errorf("reading the join file from stdin: %v", err)
				}
				res, err = join.Join(cmd.Context(), st, data, opts)
				if err != nil {
					return err
				}
			} else if res, err = join.JoinFile(cmd.Context(), st, args[0], opts); err != nil {
				return err
			}
			c := res.Cluster
			fmt.Fprintf(cmd.ErrOrStderr(), "Joined %q (%s) as %s.\n", c.Name, c.Server, c.ID)
			// Joining twice is allowed (e.g. as two users), but usually a
			// mistake worth pointing out.
			if others, err := st.List(); err == nil {
				for _, o := range others {
					if o.ID != c.ID && o.Server == c.Server {
						fmt.Fprintf(cmd.ErrOrStderr(), "Note: %s already points at the same server; remove one with: guildnet-portal remove ID\n", o.ID)
					}
				}
			}
			fmt.Fprintln(cmd.OutOrStdout(), c.ID)
			return nil
		},
	}
	cmd.Flags().BoolVar(&opts.AllowExecPlugins, "allow-exec-plugins", false,
		"Accept a kubeconfig user that runs an exec or auth-provider credential plugin (only for files you trust)")
	cmd.Flags().StringVar(&opts.Name, "name", "", "Display name for the cluster (default: the file's name hint or cluster name); the id derives from it")
	cmd.Flags().DurationVar(&opts.Timeout, "timeout", join.DefaultTimeout, "How long the cluster check may take")
	return cmd
}

func newClustersCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "clusters",
		Short: "List joined clusters: id, name, server",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := g.openStore()
			if err != nil {
				return err
			}
			cs, err := st.List()
			if err != nil {
				return err
			}
			if len(cs) == 0 {
				fmt.Fprintln(cmd.ErrOrStderr(), "No clusters joined yet; join one with: guildnet-portal join FILE")
				return nil
			}
			// No header: one line per cluster keeps the output scriptable
			// (the id is the first field).
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			for _, c := range cs {
				fmt.Fprintf(tw, "%s\t%s\t%s\n", c.ID, oneLine(c.Name), c.Server)
			}
			return tw.Flush()
		},
	}
}

func newRemoveCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "remove ID",
		Short: "Forget a joined cluster and delete its credentials from this device",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := g.openStore()
			if err != nil {
				return err
			}
			if err := st.Remove(args[0]); err != nil {
				return withListHint(err)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "Removed %s.\n", args[0])
			return nil
		},
	}
}

func newExportCommand(g *globalOptions) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "export ID",
		Short: "Write a joined cluster's guildnet.config, to join it on another device",
		Long: `Export writes the cluster's guildnet.config to stdout or, with -o, to a file
(mode 0600). It holds this device's credentials for the cluster: hand it over
like a password, or mint a separate one per device with make-join-config.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := g.openStore()
			if err != nil {
				return err
			}
			data, err := join.Export(st, args[0])
			if err != nil {
				return withListHint(err)
			}
			return writeOutput(cmd, out, data)
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "File to write (default stdout)")
	return cmd
}

type makeJoinConfigOptions struct {
	kubeconfig    string
	context       string
	out           string
	server        string
	clusterName   string
	tlsServerName string
	make          join.MakeOptions
}

func newMakeJoinConfigCommand() *cobra.Command {
	o := &makeJoinConfigOptions{}
	cmd := &cobra.Command{
		Use:   "make-join-config --namespace NS --name DEVICE -o FILE",
		Short: "For a cluster admin: mint a ServiceAccount-based guildnet.config for a device",
		Long: `make-join-config uses an admin kubeconfig to create, in the namespace, a
ServiceAccount named after the device and a RoleBinding of it to the built-in
edit ClusterRole, and writes a guildnet.config holding a token for it from the
TokenRequest API. The token expires after --duration (the cluster may cap it);
run the command again for a fresh one. To revoke the device at once:
kubectl -n NS delete serviceaccount,rolebinding DEVICE.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error { return o.run(cmd) },
	}
	f := cmd.Flags()
	f.StringVar(&o.kubeconfig, "kubeconfig", "", "Admin kubeconfig (default $KUBECONFIG, else ~/.kube/config)")
	f.StringVar(&o.context, "context", "", "Context of the admin kubeconfig to use (default its current context)")
	f.StringVar(&o.make.Namespace, "namespace", "", "Namespace the device may work in (must exist)")
	f.StringVar(&o.make.Name, "name", "", "Device name; names the ServiceAccount and RoleBinding (a DNS label)")
	f.StringVarP(&o.out, "output", "o", "", `File to write (mode 0600); "-" for stdout`)
	f.DurationVar(&o.make.Duration, "duration", join.DefaultTokenDuration, "How long the device's token is valid (at least 10m)")
	f.StringVar(&o.server, "server", "", "API server URL as the device reaches it (default the admin kubeconfig's)")
	f.StringVar(&o.clusterName, "cluster-name", "", "Display name of the cluster in the file (default the admin kubeconfig's cluster name)")
	f.StringVar(&o.tlsServerName, "tls-server-name", "", "Host name the device checks the server certificate against (default the admin kubeconfig's)")
	for _, name := range []string{"namespace", "name", "output"} {
		_ = cmd.MarkFlagRequired(name)
	}
	return cmd
}

func (o *makeJoinConfigOptions) run(cmd *cobra.Command) error {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = o.kubeconfig
	loader := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: o.context})
	raw, err := loader.RawConfig()
	if err != nil {
		return fmt.Errorf("reading the admin kubeconfig: %v", err)
	}
	cfg, err := loader.ClientConfig()
	if err != nil {
		return fmt.Errorf("reading the admin kubeconfig: %v", err)
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("building a client from the admin kubeconfig: %v", err)
	}

	m := o.make
	m.Server = firstNonEmpty(o.server, cfg.Host)
	m.TLSServerName = firstNonEmpty(o.tlsServerName, cfg.TLSClientConfig.ServerName)
	ctxName := firstNonEmpty(o.context, raw.CurrentContext)
	if c := raw.Contexts[ctxName]; c != nil {
		m.ClusterName = c.Cluster
	}
	m.ClusterName = firstNonEmpty(o.clusterName, m.ClusterName)
	m.CertificateAuthorityData = cfg.TLSClientConfig.CAData
	if len(m.CertificateAuthorityData) == 0 && cfg.TLSClientConfig.CAFile != "" {
		if m.CertificateAuthorityData, err = os.ReadFile(cfg.TLSClientConfig.CAFile); err != nil {
			return fmt.Errorf("reading the admin kubeconfig's certificate authority: %v", err)
		}
	}
	if m.Duration <= 0 {
		return fmt.Errorf("--duration must be positive, got %s", m.Duration)
	}

	made, err := join.MakeJoinConfig(cmd.Context(), client, m)
	if err != nil {
		return err
	}
	if err := writeOutput(cmd, o.out, made.Data); err != nil {
		return err
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "Device %s may use namespace %s (ServiceAccount and RoleBinding %s/%s to ClusterRole %s); its token expires %s.\nRevoke it with: kubectl -n %s delete serviceaccount,rolebinding %s\n",
		made.Name, made.Namespace, made.Namespace, made.Name, join.EditClusterRole, made.ExpiresAt.Local().Format(time.RFC1123), made.Namespace, made.Name)
	return nil
}

// writeOutput writes a file holding credentials: to stdout for "" or "-",
// else atomically with mode 0600.
func writeOutput(cmd *cobra.Command, path string, data []byte) error {
	if path == "" || path == "-" {
		_, err := cmd.OutOrStdout().Write(data)
		return err
	}
	if err := store.WriteFile(path, data); err != nil {
		return err
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "Wrote %s; it holds credentials for the cluster, hand it over like a password.\n", path)
	return nil
}

func withListHint(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%v (guildnet-portal clusters lists the ids)", err)
	}
	return err
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
