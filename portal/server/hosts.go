package server

import (
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/guildnet/guildnet/portal/store"
)

const (
	// workspaceDomain is the parent of every workspace host. Browsers
	// resolve *.localhost to loopback without asking DNS and treat it as a
	// secure context (which code-server's webviews need).
	workspaceDomain = "localhost"
	// workspaceSep joins workspace, namespace and cluster id in a workspace
	// host label. Cluster ids never contain it (see portal/store), and
	// workspaces whose name or namespace contains it are not opened, so a
	// label splits into its three parts in exactly one way.
	workspaceSep = "--"
)

// hostKind says which of the portal's faces a request's Host names.
type hostKind int

const (
	hostUnknown hostKind = iota
	// hostMain is the portal itself: UI, JSON API, forwarding.
	hostMain
	// hostWorkspace is one workspace's own origin.
	hostWorkspace
)

// workspaceRef names one workspace of one joined cluster.
type workspaceRef struct {
	Cluster, Namespace, Name string
}

// label is the workspace's host label: <name>--<namespace>--<cluster>.
func (w workspaceRef) label() string {
	return w.Name + workspaceSep + w.Namespace + workspaceSep + w.Cluster
}

// proxyPrefix is the API path of the workspace's workspaces/proxy
// subresource, without the trailing slash.
func (w workspaceRef) proxyPrefix() string {
	return "/apis/guildnet.io/v1alpha1/namespaces/" + w.Namespace + "/workspaces/" + w.Name + "/proxy"
}

// validateWorkspaceRef says why a workspace cannot get a host of its own,
// or returns nil. The message is meant for the person opening it.
func validateWorkspaceRef(w workspaceRef) error {
	if msgs := validation.IsDNS1123Label(w.Namespace); len(msgs) > 0 {
		return fmt.Errorf("%q is not a namespace name: %s", w.Namespace, strings.Join(msgs, "; "))
	}
	if msgs := validation.IsDNS1035Label(w.Name); len(msgs) > 0 {
		return fmt.Errorf("%q is not a workspace name: %s", w.Name, strings.Join(msgs, "; "))
	}
	if !store.ValidID(w.Cluster) {
		return fmt.Errorf("%q is not a cluster id", w.Cluster)
	}
	if strings.Contains(w.Name, workspaceSep) || strings.Contains(w.Namespace, workspaceSep) {
		return fmt.Errorf("workspace %s/%s cannot be opened on its own origin: the portal builds the host name %s.%s from it and %q would make that name ambiguous; use a workspace and namespace without %q",
			w.Namespace, w.Name, w.label(), workspaceDomain, workspaceSep, workspaceSep)
	}
	label := w.label()
	if len(label) > validation.DNS1123LabelMaxLength {
		return fmt.Errorf("workspace %s/%s cannot be opened on its own origin: the host name label %s has %d characters, more than the %d a host name allows; use a shorter workspace or namespace name",
			w.Namespace, w.Name, label, len(label), validation.DNS1123LabelMaxLength)
	}
	// "xn--" starts an IDNA A-label: browsers would try to decode the
	// label as punycode and refuse the URL.
	if strings.HasPrefix(label, "xn--") {
		return fmt.Errorf("workspace %s/%s cannot be opened on its own origin: the host name %s.%s would start with \"xn--\", which browsers read as an internationalised name; rename the workspace",
			w.Namespace, w.Name, label, workspaceDomain)
	}
	return nil
}

// parseWorkspaceLabel is the inverse of workspaceRef.label; ok is false for
// anything validateWorkspaceRef would refuse.
func parseWorkspaceLabel(label string) (workspaceRef, bool) {
	parts := strings.Split(label, workspaceSep)
	if len(parts) != 3 {
		return workspaceRef{}, false
	}
	w := workspaceRef{Name: parts[0], Namespace: parts[1], Cluster: parts[2]}
	if validateWorkspaceRef(w) != nil {
		return workspaceRef{}, false
	}
	return w, true
}

// hostPort is a normalised Host: lower-case host name or IP (IPv6 without
// brackets) and port.
type hostPort struct {
	host string
	port int
}

// String is the Host header form: brackets around IPv6, port always
// present.
func (h hostPort) String() string {
	return net.JoinHostPort(h.host, strconv.Itoa(h.port))
}

// origin is the http origin the browser uses for h. It leaves out port 80,
// as browsers do.
func (h hostPort) origin() string {
	host := h.host
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if h.port == 80 {
		return "http://" + host
	}
	return "http://" + host + ":" + strconv.Itoa(h.port)
}

// parseHostPort reads a Host header or the host of an origin. A missing
// port means 80, the default for http.
func parseHostPort(s string) (hostPort, bool) {
	s = strings.ToLower(s)
	if s == "" {
		return hostPort{}, false
	}
	host, portStr, err := net.SplitHostPort(s)
	if err != nil {
		// No port: a bare name, or an IPv6 literal in brackets.
		host, portStr = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]"), "80"
		if strings.ContainsAny(host, "[]") || (strings.Contains(host, ":") && !strings.HasPrefix(s, "[")) {
			return hostPort{}, false
		}
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port <= 0 || port > 65535 || host == "" {
		return hostPort{}, false
	}
	return hostPort{host: host, port: port}, true
}

// parseOrigin reads an Origin header. Only http origins are the portal's.
func parseOrigin(s string) (hostPort, bool) {
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "http" || u.Host == "" || u.Path != "" || u.User != nil {
		return hostPort{}, false
	}
	return parseHostPort(u.Host)
}

// hosts is the Host allow-list. It is what defeats DNS rebinding: a page
// whose own name resolves to 127.0.0.1 still sends its own name as Host,
// which is not on the list.
type hosts struct {
	port int
	// main are the names of the portal itself.
	main map[string]bool
	// allow, if set, admits further Hosts of the portal, with any port
	// (Config.AllowHost).
	allow func(host string, port int) bool
}

func newHosts(port int, extra []string, allow func(host string, port int) bool) *hosts {
	h := &hosts{port: port, main: map[string]bool{}, allow: allow}
	for _, name := range append([]string{"127.0.0.1", "localhost", "::1"}, extra...) {
		h.main[strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(name, "["), "]"))] = true
	}
	return h
}

// classify says what Host names: the portal, a workspace (and which), or
// something the portal does not answer to.
func (h *hosts) classify(host string) (hostKind, hostPort, workspaceRef) {
	hp, ok := parseHostPort(host)
	if !ok {
		return hostUnknown, hp, workspaceRef{}
	}
	if hp.port == h.port {
		if h.main[hp.host] {
			return hostMain, hp, workspaceRef{}
		}
		if label, ok := strings.CutSuffix(hp.host, "."+workspaceDomain); ok && !strings.Contains(label, ".") {
			if w, ok := parseWorkspaceLabel(label); ok {
				return hostWorkspace, hp, w
			}
		}
	}
	if h.allow != nil && h.allow(hp.host, hp.port) {
		return hostMain, hp, workspaceRef{}
	}
	return hostUnknown, hp, workspaceRef{}
}

// workspaceHost is the Host of workspace w.
func (h *hosts) workspaceHost(w workspaceRef) hostPort {
	return hostPort{host: w.label() + "." + workspaceDomain, port: h.port}
}

// mainOrigins are the origins the portal's UI can run on, for CSP lists.
// IPv6 literals are left out: CSP source expressions cannot name them.
func (h *hosts) mainOrigins() []string {
	var out []string
	for name := range h.main {
		if strings.Contains(name, ":") {
			continue
		}
		out = append(out, hostPort{host: name, port: h.port}.origin())
	}
	slices.Sort(out)
	return out
}
