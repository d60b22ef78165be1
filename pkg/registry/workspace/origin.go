package workspace

import (
	"fmt"
	"net"
	"net/url"
	"strings"
)

// OriginPolicy decides which browser origins may use workspaces/proxy.
//
// A page on any web site can make the browser open a WebSocket or send a
// form to a local `kubectl proxy`; only the Origin header tells such a
// request apart from the person's own. Loopback origins (kubectl proxy,
// the portal) and `*.localhost` (the portal's per-workspace origins) are
// always allowed; deployments add their portal's origins by flag.
type OriginPolicy struct {
	exact    map[string]bool
	suffixes []string
}

// NewOriginPolicy parses extra allowed origins: "https://host[:port]" or a
// host wildcard "*.example.ts.net" (any scheme and port).
func NewOriginPolicy(extra []string) (*OriginPolicy, error) {
	p := &OriginPolicy{exact: map[string]bool{}}
	for _, o := range extra {
		o = strings.TrimSpace(o)
		switch {
		case o == "":
		case strings.HasPrefix(o, "*."):
			p.suffixes = append(p.suffixes, strings.ToLower(o[1:]))
		default:
			u, err := url.Parse(o)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
				return nil, fmt.Errorf("allowed origin %q must look like https://host[:port] or *.domain", o)
			}
			p.exact[strings.ToLower(u.Scheme+"://"+u.Host)] = true
		}
	}
	return p, nil
}

// Allowed reports whether origin (an Origin header's value) is trusted.
func (p *OriginPolicy) Allowed(origin string) bool {
	u, err := url.Parse(origin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return false
	}
	host := strings.ToLower(u.Hostname())
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return true
	}
	if p == nil {
		return false
	}
	if p.exact[strings.ToLower(u.Scheme+"://"+u.Host)] {
		return true
	}
	for _, s := range p.suffixes {
		if strings.HasSuffix(host, s) {
			return true
		}
	}
	return false
}
