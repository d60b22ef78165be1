package apiserver

import (
	"net/http"
	"testing"

	apirequest "k8s.io/apiserver/pkg/endpoints/request"
)

// The generic server's timeout filter must not cut the streaming
// subresources; everything else keeps the timeout.
func TestIsLongRunning(t *testing.T) {
	cases := []struct {
		info apirequest.RequestInfo
		want bool
	}{
		{apirequest.RequestInfo{IsResourceRequest: true, Verb: "watch", Resource: "databases"}, true},
		{apirequest.RequestInfo{IsResourceRequest: true, Verb: "get", Resource: "tables", Subresource: "watch"}, true},
		{apirequest.RequestInfo{IsResourceRequest: true, Verb: "get", Resource: "workspaces", Subresource: "proxy"}, true},
		{apirequest.RequestInfo{IsResourceRequest: true, Verb: "create", Resource: "workspaces", Subresource: "proxy"}, true},
		{apirequest.RequestInfo{IsResourceRequest: true, Verb: "get", Resource: "workspaces", Subresource: "log"}, true},
		{apirequest.RequestInfo{IsResourceRequest: true, Verb: "get", Resource: "tables", Subresource: "rows"}, false},
		{apirequest.RequestInfo{IsResourceRequest: true, Verb: "list", Resource: "workspaces"}, false},
		{apirequest.RequestInfo{IsResourceRequest: true, Verb: "get", Resource: "databases", Subresource: "watch"}, false},
		{apirequest.RequestInfo{IsResourceRequest: true, Verb: "update", Resource: "workspaces", Subresource: "status"}, false},
		{apirequest.RequestInfo{Path: "/debug/pprof/profile"}, true},
		{apirequest.RequestInfo{Path: "/apis/guildnet.io/v1alpha1"}, false},
	}
	for _, tc := range cases {
		if got := IsLongRunning(&http.Request{}, &tc.info); got != tc.want {
			t.Errorf("IsLongRunning(%s %s/%s %s) = %v, want %v", tc.info.Verb, tc.info.Resource, tc.info.Subresource, tc.info.Path, got, tc.want)
		}
	}
}
