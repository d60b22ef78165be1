package server

import (
	"encoding/json"
	"html/template"
	"net/http"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// writeStatus answers with a Kubernetes Status, the one error shape of the
// JSON API and of forwarding (the UI already understands it from the
// cluster's own errors).
func writeStatus(w http.ResponseWriter, code int, reason metav1.StatusReason, msg string) {
	st := metav1.Status{
		TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status:   metav1.StatusFailure,
		Message:  msg,
		Reason:   reason,
		Code:     int32(code),
	}
	if code < 300 {
		st.Status = metav1.StatusSuccess
	}
	writeJSON(w, code, st)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "encoding the answer: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write(append(data, '\n'))
}

// pageCSP is the policy of the portal's own small HTML pages: no script,
// inline style only. Who may frame them is added per host.
const pageCSP = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"

var pageTemplate = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
{{if .Refresh}}<meta http-equiv="refresh" content="0;url={{.Refresh}}">{{end}}
<meta name="referrer" content="no-referrer">
<title>{{.Title}} · GuildNet portal</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40em;margin:4em auto;padding:0 1em;color:#222}code{background:#f3f3f3;padding:0 .2em}</style>
</head><body>
<h1>{{.Title}}</h1>
<p>{{.Message}}</p>
{{if .Refresh}}<p><a href="{{.Refresh}}">Continue</a></p>{{end}}
</body></html>
`))

type page struct {
	Title, Message string
	// Refresh, when set, moves the browser on to this same-origin URL.
	Refresh string
}

// writePage answers a browser with a short HTML page. frameAncestors is the
// CSP frame-ancestors source list: 'none' on the portal's own host, the
// portal's origins on a workspace host (whose pages show in the UI's
// iframe, error pages included).
func writePage(w http.ResponseWriter, code int, frameAncestors string, p page) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", pageCSP+"; frame-ancestors "+frameAncestors)
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = pageTemplate.Execute(w, p)
}
