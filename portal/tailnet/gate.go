package tailnet

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"tailscale.com/client/tailscale/apitype"
)

// whoIsFunc is local.Client.WhoIs: who the node at a tailnet source
// address (IP:port) is.
type whoIsFunc func(ctx context.Context, remoteAddr string) (*apitype.WhoIsResponse, error)

// gate admits to next only the requests whose source WhoIs names an
// identity on allow; everyone else gets 403. It fails closed: a WhoIs
// error is a refusal.
func gate(whoIs whoIsFunc, allow *AllowList, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		who, err := whoIs(r.Context(), r.RemoteAddr)
		if err != nil {
			refuse(w, r, fmt.Sprintf("guildnet-portal could not tell which tailnet node this request comes from (%s: %v), so it is refused.", r.RemoteAddr, err))
			return
		}
		id := identityOf(who)
		if !allow.Admits(id) {
			refuse(w, r, fmt.Sprintf("guildnet-portal on the tailnet admits only the identities its owner allowed with --tailnet-allow; this request comes from %s, which is not among them. To admit it, restart guildnet-portal serve with --tailnet-allow including %s.", id, id.entry()))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// refuse answers 403 in the form the caller reads: a Kubernetes Status
// under /api and /clusters (as the portal's own errors there), plain text
// elsewhere.
func refuse(w http.ResponseWriter, r *http.Request, msg string) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'; sandbox")
	p := r.URL.Path
	if p == "/api" || strings.HasPrefix(p, "/api/") || p == "/clusters" || strings.HasPrefix(p, "/clusters/") {
		h.Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		_ = json.NewEncoder(w).Encode(metav1.Status{
			TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
			Status:   metav1.StatusFailure,
			Message:  msg,
			Reason:   metav1.StatusReasonForbidden,
			Code:     http.StatusForbidden,
		})
		return
	}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusForbidden)
	fmt.Fprintln(w, msg)
}
