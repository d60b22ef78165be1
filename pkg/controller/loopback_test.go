package controller

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"k8s.io/client-go/rest"
)

// recorder is a server that remembers each request's path and credentials.
type recorder struct {
	mu  sync.Mutex
	got map[string]string // path -> Authorization
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got[req.URL.Path] = req.Header.Get("Authorization")
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{}`))
}

// The reconcilers' guildnet.io requests reach this server over loopback with
// its own token; everything else reaches kube-apiserver with the
// reconcilers' credentials.
func TestOwnGroupGoesOverLoopback(t *testing.T) {
	kube, own := &recorder{got: map[string]string{}}, &recorder{got: map[string]string{}}
	kubeSrv, ownSrv := httptest.NewServer(kube), httptest.NewServer(own)
	defer kubeSrv.Close()
	defer ownSrv.Close()

	cfg := &rest.Config{Host: kubeSrv.URL, BearerToken: "kube-token"}
	if err := routeOwnGroup(cfg, &rest.Config{Host: ownSrv.URL, BearerToken: "loopback-token"}); err != nil {
		t.Fatal(err)
	}
	client, err := rest.HTTPClientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	paths := []string{
		"/apis/guildnet.io/v1alpha1/namespaces/team/workspaces",
		"/apis/apps/v1/namespaces/team/deployments",
		"/api/v1/namespaces/team/secrets",
		"/apis/guildnet.io.example.com/v1/widgets",
	}
	for _, p := range paths {
		resp, err := client.Get(kubeSrv.URL + p)
		if err != nil {
			t.Fatalf("GET %s: %v", p, err)
		}
		resp.Body.Close()
	}

	if auth, ok := own.got[paths[0]]; !ok || auth != "Bearer loopback-token" {
		t.Errorf("guildnet.io request over loopback: seen %v with %q, want it with the loopback token", ok, auth)
	}
	if _, ok := kube.got[paths[0]]; ok {
		t.Error("guildnet.io request also reached kube-apiserver")
	}
	for _, p := range paths[1:] {
		if auth := kube.got[p]; auth != "Bearer kube-token" {
			t.Errorf("%s reached kube-apiserver with %q, want the reconcilers' token", p, auth)
		}
		if _, ok := own.got[p]; ok {
			t.Errorf("%s went over loopback, want kube-apiserver", p)
		}
	}
}
