package workspace

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"strconv"

	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/labels"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"

	"github.com/guildnet/guildnet/apis/guildnet"
)

// EndpointResolver finds where a workspace's traffic goes: an address of
// the workspace's own Service, taken from that Service's EndpointSlices.
// Nothing in the request chooses the host, so workspaces/proxy cannot be
// pointed at anything but the workspace (no SSRF).
type EndpointResolver struct {
	slices discoverylisters.EndpointSliceLister
}

// NewEndpointResolver resolves through an EndpointSlice lister. The
// informer behind it may be restricted to slices labelled
// guildnet.io/workspace: the EndpointSlice controller copies a Service's
// labels onto its slices, and the reconciler labels every workspace Service.
func NewEndpointResolver(slices discoverylisters.EndpointSliceLister) *EndpointResolver {
	return &EndpointResolver{slices: slices}
}

// EndpointsOnly is the transform of the resolver's EndpointSlice informer:
// it keeps of a slice what Resolve reads (labels, address type, ports and
// each endpoint's addresses and conditions) and drops the rest, field
// ownership, annotations, owners and each endpoint's pod reference, node and
// zone, so the cache of a thousand workspaces' slices stays small.
func EndpointsOnly(obj any) (any, error) {
	s, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok {
		return obj, nil
	}
	s.ManagedFields, s.Annotations, s.OwnerReferences = nil, nil, nil
	for i := range s.Endpoints {
		s.Endpoints[i] = discoveryv1.Endpoint{Addresses: s.Endpoints[i].Addresses, Conditions: s.Endpoints[i].Conditions}
	}
	return s, nil
}

// errNoEndpoint is returned when the Service has no address to send to.
type errNoEndpoint struct{ reason string }

func (e *errNoEndpoint) Error() string { return e.reason }

// Resolve returns http://ADDRESS:PORT of one endpoint of workspace ws that
// serves port. Ready endpoints are preferred; the Service publishes
// not-ready addresses too (a starting code-server is still worth reaching),
// so a not-ready one is used when nothing is ready.
func (r *EndpointResolver) Resolve(ws *guildnet.Workspace, port int32) (*url.URL, error) {
	svc := guildnet.WorkspaceServiceName(ws.Name)
	sel := labels.SelectorFromSet(labels.Set{discoveryv1.LabelServiceName: svc})
	slices, err := r.slices.EndpointSlices(ws.Namespace).List(sel)
	if err != nil {
		return nil, fmt.Errorf("listing the endpoints of Service %s/%s: %w", ws.Namespace, svc, err)
	}
	var ready, other []string
	for _, s := range slices {
		if s.AddressType != discoveryv1.AddressTypeIPv4 && s.AddressType != discoveryv1.AddressTypeIPv6 {
			continue
		}
		if !slicePortMatches(s, port) {
			continue
		}
		for _, ep := range s.Endpoints {
			if ep.Conditions.Terminating != nil && *ep.Conditions.Terminating {
				continue
			}
			for _, addr := range ep.Addresses {
				if ep.Conditions.Ready == nil || *ep.Conditions.Ready {
					ready = append(ready, addr)
				} else {
					other = append(other, addr)
				}
			}
		}
	}
	pick := ready
	if len(pick) == 0 {
		pick = other
	}
	if len(pick) == 0 {
		return nil, &errNoEndpoint{reason: fmt.Sprintf("Service %s/%s has no endpoint on port %d", ws.Namespace, svc, port)}
	}
	addr := pick[rand.IntN(len(pick))]
	return &url.URL{Scheme: "http", Host: net.JoinHostPort(addr, strconv.Itoa(int(port)))}, nil
}

// slicePortMatches reports whether slice s carries target port port. The
// workspace's ports are its container ports, and an EndpointSlice lists
// the target (container) ports, so the number identifies the port without
// depending on port names.
func slicePortMatches(s *discoveryv1.EndpointSlice, port int32) bool {
	for _, p := range s.Ports {
		if p.Port != nil && *p.Port == port {
			return true
		}
	}
	return false
}
