package workspace

import (
	"fmt"
	"html"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
)

// kube-apiserver's aggregation layer proxies every response of an
// aggregated API server through k8s.io/apimachinery's proxy transport,
// which does two things a workspace cannot live with:
//
//   - a 3xx with a Location header becomes "502 the backend attempted to
//     redirect this request" (--aggregator-reject-forwarding-redirect,
//     on by default and not something users of a managed cluster can turn
//     off);
//   - a "text/html" body is buffered whole and its absolute-path links
//     are rewritten to point at guildnet-apiserver's own address, which the
//     browser cannot reach.
//
// So redirects travel as a page that navigates (the Refresh header, which
// every browser follows, plus a meta refresh and a link), and HTML goes out
// as "Text/HTML": MIME types are case-insensitive for browsers, while the
// aggregator only rewrites the exact lower-case spelling. The body reaches
// the browser byte for byte and streams.

// throughAggregator adapts a workspace's response as described above.
func throughAggregator(resp *http.Response) {
	if loc := resp.Header.Get("Location"); loc != "" && resp.StatusCode >= 300 && resp.StatusCode <= 399 {
		_ = resp.Body.Close()
		body := refreshPage(loc)
		resp.Header.Del("Location")
		resp.Header.Del("Content-Encoding")
		resp.Header.Set("Refresh", "0; url="+loc)
		resp.Header.Set("Content-Type", "Text/HTML; charset=utf-8")
		resp.Header.Set("Cache-Control", "no-store")
		resp.Header.Set(redirectStatusHeader, strconv.Itoa(resp.StatusCode))
		resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
		resp.StatusCode, resp.Status = http.StatusOK, "200 OK"
		resp.Body = io.NopCloser(strings.NewReader(body))
		resp.ContentLength = int64(len(body))
		return
	}
	resp.Header.Set("Content-Type", keepHTMLUnrewritten(resp.Header.Get("Content-Type")))
}

// redirectStatusHeader keeps the workspace's redirect status visible to
// clients that want it (a script, a test).
const redirectStatusHeader = "X-Guildnet-Redirect-Status"

// keepHTMLUnrewritten spells text/html so the aggregator leaves it alone.
func keepHTMLUnrewritten(contentType string) string {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil || mt != "text/html" {
		return contentType
	}
	out := "Text/HTML"
	if cs, ok := params["charset"]; ok {
		out += "; charset=" + cs
	}
	return out
}

func refreshPage(loc string) string {
	l := html.EscapeString(loc)
	return fmt.Sprintf(`<!doctype html><meta charset="utf-8"><meta http-equiv="refresh" content="0; url=%s"><title>Redirecting</title><p>Continue to <a href="%s">%s</a>.</p>`, l, l, l)
}

// writeRefresh answers with a redirect in the form that survives the
// aggregation layer.
func writeRefresh(w http.ResponseWriter, status int, loc string) {
	body := refreshPage(loc)
	h := w.Header()
	h.Set("Refresh", "0; url="+loc)
	h.Set("Content-Type", "Text/HTML; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set(redirectStatusHeader, strconv.Itoa(status))
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, body)
}
