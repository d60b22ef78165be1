package controller

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"k8s.io/client-go/rest"

	"github.com/guildnet/guildnet/apis/guildnet/v1alpha1"
)

// ownGroupPrefix is the path of every guildnet.io request.
var ownGroupPrefix = "/apis/" + v1alpha1.SchemeGroupVersion.Group + "/"

// routeOwnGroup makes cfg's clients send guildnet.io requests to this
// server over loopback, and everything else to kube-apiserver.
//
// Through kube-apiserver, each reconciler request would come back to this
// server with the reconcilers' identity, be authorized again by a
// SubjectAccessReview to kube-apiserver, and leave its decision in the
// delegated authorizer's cache: 8,192 entries that are only evicted by newer
// ones, most of them a status write of one object each. The loopback
// client is this server's own privileged identity, the way
// apiextensions-apiserver's controllers reach the resources it serves.
func routeOwnGroup(cfg, loopback *rest.Config) error {
	own, err := rest.TransportFor(loopback)
	if err != nil {
		return fmt.Errorf("building the loopback transport: %w", err)
	}
	host, err := url.Parse(loopback.Host)
	if err != nil || host.Host == "" {
		return fmt.Errorf("loopback client config has no usable host %q", loopback.Host)
	}
	cfg.Wrap(func(kube http.RoundTripper) http.RoundTripper {
		return &ownGroupRouter{kube: kube, own: own, scheme: host.Scheme, host: host.Host}
	})
	return nil
}

// ownGroupRouter sits under the client's authentication wrappers: a
// request for kube-apiserver arrives with kube-apiserver's credentials,
// which the loopback request must not carry (the loopback transport adds
// its own token only when none is set).
type ownGroupRouter struct {
	kube, own    http.RoundTripper
	scheme, host string
}

func (r *ownGroupRouter) RoundTrip(req *http.Request) (*http.Response, error) {
	if !strings.HasPrefix(req.URL.Path, ownGroupPrefix) {
		return r.kube.RoundTrip(req)
	}
	out := req.Clone(req.Context())
	out.URL.Scheme, out.URL.Host, out.Host = r.scheme, r.host, ""
	out.Header.Del("Authorization")
	return r.own.RoundTrip(out)
}
