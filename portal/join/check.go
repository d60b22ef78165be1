package join

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"
	"syscall"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
)

// GroupVersion is what the check discovers.
const GroupVersion = "guildnet.io/v1alpha1"

// FailureKind classifies why a cluster check failed, for callers (the UI)
// that want to react to the kind rather than show the message.
type FailureKind string

const (
	// Unreachable: DNS, connection refused, no route, or no answer in time.
	Unreachable FailureKind = "Unreachable"
	// TLS: the server's certificate is not trusted, does not match the
	// host, or the server does not speak TLS.
	TLS FailureKind = "TLS"
	// Unauthorized: HTTP 401, the credentials were rejected.
	Unauthorized FailureKind = "Unauthorized"
	// Forbidden: HTTP 403, the credentials are valid but may not discover.
	Forbidden FailureKind = "Forbidden"
	// NotInstalled: HTTP 404, guildnet.io/v1alpha1 is not served.
	NotInstalled FailureKind = "NotInstalled"
	// Unavailable: HTTP 503, guildnet.io is registered but its server is
	// not answering.
	Unavailable FailureKind = "Unavailable"
	// Unexpected: any other answer.
	Unexpected FailureKind = "Unexpected"
)

// CheckError is a failed cluster check. Its message is one line that says
// what went wrong and what to do.
type CheckError struct {
	Kind   FailureKind
	Server string
	// Message is the whole text Error returns.
	Message string
	// Err is the underlying cause, if any.
	Err error
}

func (e *CheckError) Error() string { return e.Message }
func (e *CheckError) Unwrap() error { return e.Err }

// Discovery is what a successful check found.
type Discovery struct {
	// Resources are the names of the resources guildnet.io/v1alpha1
	// serves (subresources included, e.g. "tables/rows").
	Resources []string
}

// Check asks the cluster described by cfg for guildnet.io/v1alpha1, within
// timeout (0: DefaultTimeout). It returns a *CheckError when the cluster
// answers badly or not at all, and ctx's error when ctx ends first.
func Check(ctx context.Context, cfg *rest.Config, timeout time.Duration) (*Discovery, error) {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	server := cfg.Host
	u, err := url.Parse(server)
	if err != nil {
		return nil, fmt.Errorf("the server address %q is not a URL: %v", server, err)
	}
	// Keep any path prefix: some proxies serve a cluster under one.
	u.Path = path.Join("/", u.Path, "apis", GroupVersion)

	client, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("building a client for %s: %v", server, err)
	}
	defer client.CloseIdleConnections()

	checkCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(checkCtx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("building the discovery request: %v", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			// The caller gave up (Ctrl-C), which is not the cluster's fault.
			return nil, fmt.Errorf("checking %s: %w", server, ctx.Err())
		}
		return nil, classifyTransport(server, timeout, hasCA(cfg), err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxFileSize))
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("checking %s: %w", server, ctx.Err())
		}
		return nil, classifyTransport(server, timeout, hasCA(cfg), err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, classifyStatus(server, resp.StatusCode, body)
	}
	var list metav1.APIResourceList
	if err := json.Unmarshal(body, &list); err != nil || list.GroupVersion != GroupVersion {
		return nil, &CheckError{Kind: Unexpected, Server: server, Err: err,
			Message: fmt.Sprintf("%s answered %s with something that is not the Kubernetes discovery of %s; is the server address that of the kube-apiserver?", server, u.Path, GroupVersion)}
	}
	d := &Discovery{}
	for _, r := range list.APIResources {
		d.Resources = append(d.Resources, r.Name)
	}
	slices.Sort(d.Resources)
	return d, nil
}

func hasCA(cfg *rest.Config) bool {
	return len(cfg.TLSClientConfig.CAData) > 0 || cfg.TLSClientConfig.CAFile != ""
}

func classifyTransport(server string, timeout time.Duration, withCA bool, err error) *CheckError {
	ce := &CheckError{Server: server, Err: err}
	var (
		unknownCA x509.UnknownAuthorityError
		hostname  x509.HostnameError
		invalid   x509.CertificateInvalidError
		notTLS    tls.RecordHeaderError
		alert     tls.AlertError
		verifyErr *tls.CertificateVerificationError
		dnsErr    *net.DNSError
		netErr    net.Error
		host      = serverHost(server)
	)
	switch {
	case errors.As(err, &unknownCA) && withCA:
		ce.Kind = TLS
		ce.Message = fmt.Sprintf("TLS: the certificate of %s is not signed by the certificate authority in the join file; ask the cluster admin for a fresh join file, and check that the address is the cluster's and not a proxy's (%v)", server, unknownCA)
	case errors.As(err, &unknownCA):
		ce.Kind = TLS
		ce.Message = fmt.Sprintf("TLS: the certificate of %s is not signed by an authority this device trusts, and the join file names none; add the cluster's CA (certificateAuthorityData) to the join file (%v)", server, unknownCA)
	case errors.As(err, &hostname):
		ce.Kind = TLS
		ce.Message = fmt.Sprintf("TLS: the certificate of %s is not valid for the host name %q (%v); use a server address the certificate covers, or set tls-server-name in the kubeconfig", server, host, hostname)
	case errors.As(err, &invalid):
		ce.Kind = TLS
		ce.Message = fmt.Sprintf("TLS: the certificate of %s is not acceptable (%v); check the device's clock and the cluster's certificates", server, invalid)
	case errors.As(err, &verifyErr):
		ce.Kind = TLS
		ce.Message = fmt.Sprintf("TLS: the certificate of %s cannot be verified (%v)", server, verifyErr.Err)
	case errors.As(err, &notTLS) || errors.Is(err, http.ErrSchemeMismatch):
		ce.Kind = TLS
		ce.Message = fmt.Sprintf("TLS: %s does not speak TLS; is the address that of the kube-apiserver's https port?", server)
	case errors.As(err, &alert):
		ce.Kind = TLS
		ce.Message = fmt.Sprintf("TLS: %s refused the connection during the TLS handshake (%v); if the join file uses a client certificate, it may be wrong or expired", server, alert)
	case errors.As(err, &dnsErr):
		ce.Kind = Unreachable
		if dnsErr.IsNotFound {
			ce.Message = fmt.Sprintf("cannot reach %s: the host name %q does not resolve (DNS); check the server address and this device's network or VPN", server, dnsErr.Name)
		} else {
			ce.Message = fmt.Sprintf("cannot reach %s: looking up %q failed (%v); check this device's DNS, network or VPN", server, dnsErr.Name, dnsErr.Err)
		}
	case errors.Is(err, syscall.ECONNREFUSED):
		ce.Kind = Unreachable
		ce.Message = fmt.Sprintf("cannot reach %s: connection refused; check the server address and port, and that the kube-apiserver is running", server)
	case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &netErr) && netErr.Timeout()):
		ce.Kind = Unreachable
		ce.Message = fmt.Sprintf("no answer from %s within %s; check the server address and that this device can reach it (firewall, VPN, tailnet)", server, timeout)
	case errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH):
		ce.Kind = Unreachable
		ce.Message = fmt.Sprintf("cannot reach %s: no route to the host; check this device's network or VPN", server)
	default:
		ce.Kind = Unreachable
		ce.Message = fmt.Sprintf("cannot reach %s: %v", server, oneLine(err.Error()))
	}
	return ce
}

func classifyStatus(server string, code int, body []byte) *CheckError {
	// The kube-apiserver explains refusals in a Status object.
	var status metav1.Status
	detail := ""
	if json.Unmarshal(body, &status) == nil && status.Message != "" {
		detail = oneLine(status.Message)
	}
	ce := &CheckError{Server: server}
	switch code {
	case http.StatusUnauthorized:
		ce.Kind = Unauthorized
		ce.Message = fmt.Sprintf("%s rejected the credentials (401 Unauthorized): the token or client certificate is wrong, expired or revoked; ask the cluster admin for a new join file", server)
	case http.StatusForbidden:
		ce.Kind = Forbidden
		if detail == "" {
			detail = "forbidden"
		}
		ce.Message = fmt.Sprintf("%s accepted the credentials but does not allow them to discover %s (403: %s); the user needs get on the non-resource URLs /apis and /apis/*, which the built-in ClusterRole system:discovery grants (bound to system:authenticated by default; restore it with: kubectl create clusterrolebinding guildnet-discovery --clusterrole=system:discovery --group=system:authenticated)", server, GroupVersion, detail)
	case http.StatusNotFound:
		ce.Kind = NotInstalled
		ce.Message = fmt.Sprintf("%s does not serve %s (404): GuildNet is not installed on that cluster; install it (kubectl apply -k artifacts/ from the GuildNet repository) so that the APIService v1alpha1.guildnet.io exists", server, GroupVersion)
	case http.StatusServiceUnavailable:
		ce.Kind = Unavailable
		ce.Message = fmt.Sprintf("%s knows %s but its server is not answering (503); check kubectl get apiservice v1alpha1.guildnet.io and the guildnet-apiserver pods", server, GroupVersion)
	default:
		ce.Kind = Unexpected
		if detail == "" {
			detail = oneLine(string(body))
			if len(detail) > 200 {
				detail = detail[:200] + "…"
			}
		}
		ce.Message = fmt.Sprintf("%s answered the discovery of %s with HTTP %d: %s", server, GroupVersion, code, detail)
	}
	return ce
}

// oneLine keeps messages to one line: they end up on a command line or in
// a UI notice.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
