// Package join brings a cluster into guildnet-portal's store, and makes the
// files that do so.
//
// # The guildnet.config file
//
// A guildnet.config is a kubeconfig with hints, as YAML or JSON:
//
//	apiVersion: guildnet.io/v1alpha1
//	kind: JoinConfig
//	name: prod-eu                          # display name; the cluster id derives from it
//	server: https://prod.example:6443      # optional: overrides the kubeconfig's server
//	certificateAuthorityData: LS0tLS1C…    # optional: base64 PEM, overrides the kubeconfig's CA
//	kubeconfig:                            # a kubeconfig, as an object or as a string
//	  apiVersion: v1
//	  kind: Config
//	  clusters: […]
//	  users: […]
//	  contexts: […]
//	  current-context: …
//
// The hints exist so that a person (or the UI, before joining) can see what
// a file points at without reading a kubeconfig, and so that the address or
// CA can be changed in one obvious place, e.g. to reach the same cluster
// over a tailnet. A plain kubeconfig is accepted too; its current context's
// cluster name becomes the display name.
//
// # What Join guarantees
//
//   - Only the current context is kept, with its cluster and user, and
//     every file it refers to (CA, client certificate and key, token file)
//     is read into the stored kubeconfig, so the stored copy is
//     self-contained. File references are only followed for files given on
//     the command line (Options.BaseDir); an uploaded file that refers to
//     local files is refused, so an upload cannot make the portal read, and
//     later export, arbitrary files of the device.
//   - Kubeconfigs are code: a user with an exec or auth-provider credential
//     plugin makes every client run that plugin. Such a user is refused
//     unless Options.AllowExecPlugins is set, and the consent is recorded
//     with the cluster (store.Cluster.AllowExecPlugins) so that later
//     clients (RESTConfigFor) apply the same rule.
//   - The cluster is checked before anything is stored: discovery of
//     guildnet.io/v1alpha1 must succeed within Options.Timeout (10 s by
//     default). A failure is a *CheckError whose Kind says which of
//     unreachable, TLS, 401, 403, not installed or unavailable it was, with
//     a message that says what to do; nothing is stored.
//
// Export writes a stored cluster back out as a guildnet.config for another
// device, and MakeJoinConfig mints one for a device from a cluster admin's
// credentials (a ServiceAccount, a RoleBinding to the built-in edit
// ClusterRole and a TokenRequest token).
package join
