package store

import (
	"errors"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Exposure is how new workspaces are exposed by default: inside the cluster
// only, or through a cloud load balancer.
type Exposure string

const (
	ExposureClusterIP    Exposure = "ClusterIP"
	ExposureLoadBalancer Exposure = "LoadBalancer"
)

// DefaultNamespace is used when a cluster's settings name no namespace and
// its kubeconfig context had none either.
const DefaultNamespace = "default"

// Settings are the per-cluster preferences the UI uses when it creates
// things. Empty fields mean "the default"; Settings returned by the store
// have the defaults filled in.
type Settings struct {
	// DefaultNamespace is the namespace the UI opens and creates in.
	DefaultNamespace string `json:"defaultNamespace,omitempty"`
	// ImagePullSecret names a Secret in the namespace that new workspaces
	// use to pull their image; empty for none.
	ImagePullSecret string `json:"imagePullSecret,omitempty"`
	// DefaultExposure is ClusterIP or LoadBalancer.
	DefaultExposure Exposure `json:"defaultExposure,omitempty"`
}

// Validate reports every field that the cluster would refuse anyway, so a
// bad value is caught when it is set rather than on the next create.
func (s Settings) Validate() error {
	var errs []string
	if s.DefaultNamespace != "" {
		if msgs := validation.IsDNS1123Label(s.DefaultNamespace); len(msgs) > 0 {
			errs = append(errs, fmt.Sprintf("default namespace %q is not a valid namespace name: %s", s.DefaultNamespace, strings.Join(msgs, "; ")))
		}
	}
	if s.ImagePullSecret != "" {
		if msgs := validation.IsDNS1123Subdomain(s.ImagePullSecret); len(msgs) > 0 {
			errs = append(errs, fmt.Sprintf("image pull secret %q is not a valid Secret name: %s", s.ImagePullSecret, strings.Join(msgs, "; ")))
		}
	}
	switch s.DefaultExposure {
	case "", ExposureClusterIP, ExposureLoadBalancer:
	default:
		errs = append(errs, fmt.Sprintf("default exposure %q is not one of %s, %s", s.DefaultExposure, ExposureClusterIP, ExposureLoadBalancer))
	}
	if len(errs) > 0 {
		// One line: these messages end up on a command line or in a UI toast.
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

// withDefaults fills empty fields with their defaults.
func (s Settings) withDefaults() Settings {
	if s.DefaultNamespace == "" {
		s.DefaultNamespace = DefaultNamespace
	}
	if s.DefaultExposure == "" {
		s.DefaultExposure = ExposureClusterIP
	}
	return s
}
