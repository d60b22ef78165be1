package apiserver

import (
	"net/http"
	"strings"

	apirequest "k8s.io/apiserver/pkg/endpoints/request"
)

// longRunningSubresources are the streams this server serves besides watch.
// The generic server's timeout filter would cut them at --request-timeout
// otherwise.
var longRunningSubresources = map[string]map[string]bool{
	"tables":     {"watch": true},
	"workspaces": {"proxy": true, "log": true},
}

// IsLongRunning reports whether a request is a stream: a watch, tables/watch,
// workspaces/proxy or workspaces/log (and pprof's profiles).
func IsLongRunning(r *http.Request, info *apirequest.RequestInfo) bool {
	if info.IsResourceRequest {
		return info.Verb == "watch" || longRunningSubresources[info.Resource][info.Subresource]
	}
	return strings.HasPrefix(info.Path, "/debug/pprof/")
}
