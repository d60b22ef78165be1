package join

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/guildnet/guildnet/portal/store"
)

const testToken = "device-token"

// fakeCluster is a kube-apiserver stand-in that serves (or refuses) the
// discovery of guildnet.io/v1alpha1.
type fakeCluster struct {
	*httptest.Server
	requests atomic.Int32
}

func newFakeCluster(t *testing.T, h http.HandlerFunc) *fakeCluster {
	t.Helper()
	fc := &fakeCluster{}
	fc.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fc.requests.Add(1)
		h(w, r)
	}))
	// Failed handshakes are the point of some tests; keep them out of the log.
	fc.Config.ErrorLog = log.New(io.Discard, "", 0)
	fc.StartTLS()
	t.Cleanup(fc.Close)
	return fc
}

func (fc *fakeCluster) caPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: fc.Certificate().Raw})
}

func writeStatus(w http.ResponseWriter, code int, reason metav1.StatusReason, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(metav1.Status{
		TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status:   metav1.StatusFailure, Code: int32(code), Reason: reason, Message: msg,
	})
}

// guildnet serves discovery to requests bearing token, like a cluster with
// GuildNet installed.
func guildnet(token string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token {
			writeStatus(w, http.StatusUnauthorized, metav1.StatusReasonUnauthorized, "Unauthorized")
			return
		}
		if r.URL.Path != "/apis/guildnet.io/v1alpha1" {
			writeStatus(w, http.StatusNotFound, metav1.StatusReasonNotFound, "the server could not find the requested resource")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(metav1.APIResourceList{
			TypeMeta:     metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"},
			GroupVersion: "guildnet.io/v1alpha1",
			APIResources: []metav1.APIResource{
				{Name: "workspaces", Namespaced: true, Kind: "Workspace"},
				{Name: "databases", Namespaced: true, Kind: "Database"},
				{Name: "tables", Namespaced: true, Kind: "Table"},
				{Name: "tables/rows", Namespaced: true, Kind: "Row"},
			},
		})
	}
}

// kubeconfig builds a single-context kubeconfig for server with user u.
func kubeconfig(server string, ca []byte, u *clientcmdapi.AuthInfo) *clientcmdapi.Config {
	kc := clientcmdapi.NewConfig()
	kc.Clusters["test-cluster"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: ca}
	kc.AuthInfos["device"] = u
	kc.Contexts["device@test-cluster"] = &clientcmdapi.Context{Cluster: "test-cluster", AuthInfo: "device", Namespace: "team-a"}
	kc.CurrentContext = "device@test-cluster"
	return kc
}

// joinFile returns a guildnet.config for server.
func joinFile(t *testing.T, name, server string, ca []byte, u *clientcmdapi.AuthInfo) []byte {
	t.Helper()
	jc, err := newJoinConfig(name, kubeconfig(server, ca, u))
	if err != nil {
		t.Fatal(err)
	}
	data, err := jc.YAML()
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func openStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "state"))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// assertNothingStored checks that no cluster, and no file of one, is in st.
func assertNothingStored(t *testing.T, st *store.Store) {
	t.Helper()
	cs, err := st.List()
	if err != nil || len(cs) != 0 {
		t.Fatalf("store lists %v, %v; want nothing", cs, err)
	}
	entries, err := os.ReadDir(filepath.Join(st.Dir(), "clusters"))
	if err != nil || len(entries) != 0 {
		t.Fatalf("store folder holds %v, %v; want nothing", entries, err)
	}
}

func TestJoinSuccess(t *testing.T) {
	fc := newFakeCluster(t, guildnet(testToken))
	st := openStore(t)
	data := joinFile(t, "Prod EU", fc.URL, fc.caPEM(), &clientcmdapi.AuthInfo{Token: testToken})

	res, err := Join(t.Context(), st, data, Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := res.Cluster
	if c.ID != "prod-eu" || c.Name != "Prod EU" || c.Server != fc.URL || c.AllowExecPlugins {
		t.Fatalf("joined %+v", c)
	}
	if got := strings.Join(res.Discovery.Resources, ","); got != "databases,tables,tables/rows,workspaces" {
		t.Fatalf("discovered %s", got)
	}
	if s, _ := st.Settings(c.ID); s.DefaultNamespace != "team-a" {
		t.Fatalf("default namespace %q, want the context's team-a", s.DefaultNamespace)
	}
	// The stored kubeconfig works on its own.
	cfg, err := RESTConfigFor(st, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Check(t.Context(), cfg, 0); err != nil {
		t.Fatalf("stored kubeconfig does not work: %v", err)
	}
}

func TestJoinPlainKubeconfig(t *testing.T) {
	fc := newFakeCluster(t, guildnet(testToken))
	st := openStore(t)
	data, err := clientcmd.Write(*kubeconfig(fc.URL, fc.caPEM(), &clientcmdapi.AuthInfo{Token: testToken}))
	if err != nil {
		t.Fatal(err)
	}
	res, err := Join(t.Context(), st, data, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Cluster.ID != "test-cluster" || res.Cluster.Name != "test-cluster" {
		t.Fatalf("joined %+v; want the kubeconfig's cluster name", res.Cluster)
	}
	res, err = Join(t.Context(), st, data, Options{Name: "My Lab"})
	if err != nil || res.Cluster.ID != "my-lab" {
		t.Fatalf("with a name: %+v, %v", res, err)
	}
}

func TestJoinFailuresStoreNothing(t *testing.T) {
	ok := newFakeCluster(t, guildnet(testToken))
	otherCA := selfSignedCA(t) // a CA that did not sign ok's certificate

	release := make(chan struct{})
	slow := newFakeCluster(t, func(w http.ResponseWriter, r *http.Request) {
		// Hold the request until the client gives up.
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	t.Cleanup(func() { close(release) }) // runs before slow.Close

	forbidden := newFakeCluster(t, func(w http.ResponseWriter, r *http.Request) {
		writeStatus(w, http.StatusForbidden, metav1.StatusReasonForbidden,
			`forbidden: User "system:serviceaccount:team-a:laptop" cannot get path "/apis/guildnet.io/v1alpha1"`)
	})
	notInstalled := newFakeCluster(t, func(w http.ResponseWriter, r *http.Request) {
		writeStatus(w, http.StatusNotFound, metav1.StatusReasonNotFound, "the server could not find the requested resource")
	})
	unavailable := newFakeCluster(t, func(w http.ResponseWriter, r *http.Request) {
		writeStatus(w, http.StatusServiceUnavailable, metav1.StatusReasonServiceUnavailable, "service unavailable")
	})
	notKube := newFakeCluster(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("<html>hello</html>"))
	})
	plainHTTP := httptest.NewServer(guildnet(testToken))
	t.Cleanup(plainHTTP.Close)

	// A port nothing listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := "https://" + l.Addr().String()
	l.Close()

	token := &clientcmdapi.AuthInfo{Token: testToken}
	for _, tc := range []struct {
		name     string
		server   string
		ca       []byte
		user     *clientcmdapi.AuthInfo
		timeout  time.Duration
		wantKind FailureKind
		wantMsg  []string
	}{
		{name: "401", server: ok.URL, ca: ok.caPEM(), user: &clientcmdapi.AuthInfo{Token: "stolen"},
			wantKind: Unauthorized, wantMsg: []string{"401", "rejected the credentials", "new join file"}},
		{name: "403", server: forbidden.URL, ca: forbidden.caPEM(), user: token,
			wantKind: Forbidden, wantMsg: []string{"403", "system:serviceaccount:team-a:laptop", "system:discovery", "/apis/*"}},
		{name: "404", server: notInstalled.URL, ca: notInstalled.caPEM(), user: token,
			wantKind: NotInstalled, wantMsg: []string{"404", "not installed", "APIService v1alpha1.guildnet.io"}},
		{name: "503", server: unavailable.URL, ca: unavailable.caPEM(), user: token,
			wantKind: Unavailable, wantMsg: []string{"503", "kubectl get apiservice v1alpha1.guildnet.io"}},
		{name: "bad CA", server: ok.URL, ca: otherCA, user: token,
			wantKind: TLS, wantMsg: []string{"TLS", "not signed by the certificate authority"}},
		{name: "no CA (system roots)", server: ok.URL, user: token,
			wantKind: TLS, wantMsg: []string{"TLS", "the join file names none"}},
		{name: "name mismatch", server: strings.Replace(ok.URL, "127.0.0.1", "localhost", 1), ca: ok.caPEM(), user: token,
			wantKind: TLS, wantMsg: []string{"TLS", `not valid for the host name "localhost"`, "tls-server-name"}},
		{name: "not TLS", server: strings.Replace(plainHTTP.URL, "http://", "https://", 1), ca: ok.caPEM(), user: token,
			wantKind: TLS, wantMsg: []string{"does not speak TLS"}},
		{name: "refused", server: closedPort, ca: ok.caPEM(), user: token,
			wantKind: Unreachable, wantMsg: []string{"connection refused"}},
		{name: "slow", server: slow.URL, ca: slow.caPEM(), user: token, timeout: 300 * time.Millisecond,
			wantKind: Unreachable, wantMsg: []string{"no answer", "within 300ms"}},
		{name: "not kube", server: notKube.URL, ca: notKube.caPEM(), user: token,
			wantKind: Unexpected, wantMsg: []string{"not the Kubernetes discovery"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := openStore(t)
			data := joinFile(t, "c", tc.server, tc.ca, tc.user)
			start := time.Now()
			res, err := Join(t.Context(), st, data, Options{Timeout: tc.timeout})
			elapsed := time.Since(start)
			if err == nil {
				t.Fatalf("Join succeeded: %+v", res.Cluster)
			}
			t.Logf("message: %v", err)
			var ce *CheckError
			if !errors.As(err, &ce) {
				t.Fatalf("error %T %v is not a *CheckError", err, err)
			}
			if ce.Kind != tc.wantKind {
				t.Errorf("kind %s, want %s (%v)", ce.Kind, tc.wantKind, err)
			}
			for _, m := range tc.wantMsg {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("message lacks %q: %v", m, err)
				}
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("message is not one line: %q", err)
			}
			if tc.timeout > 0 && elapsed > tc.timeout+5*time.Second {
				t.Errorf("the check took %s, bound was %s", elapsed, tc.timeout)
			}
			assertNothingStored(t, st)
		})
	}
}

func TestJoinDNSFailure(t *testing.T) {
	// .invalid never resolves (RFC 2606). Depending on the machine's
	// resolver this is "not found" or a lookup error; both are Unreachable.
	st := openStore(t)
	data := joinFile(t, "c", "https://guildnet-join-test.invalid:6443", nil, &clientcmdapi.AuthInfo{Token: testToken})
	_, err := Join(t.Context(), st, data, Options{Timeout: 3 * time.Second})
	t.Logf("message: %v", err)
	var ce *CheckError
	if !errors.As(err, &ce) || ce.Kind != Unreachable {
		t.Fatalf("Join = %v, want an Unreachable CheckError", err)
	}
	assertNothingStored(t, st)
}

func TestJoinCancelled(t *testing.T) {
	started := make(chan struct{})
	fc := newFakeCluster(t, func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-r.Context().Done()
	})
	st := openStore(t)
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		<-started
		cancel()
	}()
	_, err := Join(ctx, st, joinFile(t, "c", fc.URL, fc.caPEM(), &clientcmdapi.AuthInfo{Token: testToken}), Options{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Join = %v, want context.Canceled (not a cluster failure)", err)
	}
	assertNothingStored(t, st)
}

func TestPluginsRefusedUnlessAllowed(t *testing.T) {
	fc := newFakeCluster(t, guildnet("from-plugin"))
	for _, tc := range []struct {
		name string
		user *clientcmdapi.AuthInfo
		want string
	}{
		{name: "exec", user: &clientcmdapi.AuthInfo{Exec: &clientcmdapi.ExecConfig{
			APIVersion: "client.authentication.k8s.io/v1", Command: "aws", Args: []string{"eks", "get-token"}, InteractiveMode: clientcmdapi.NeverExecInteractiveMode,
		}}, want: `runs an exec credential plugin (command aws eks get-token)`},
		{name: "auth-provider", user: &clientcmdapi.AuthInfo{AuthProvider: &clientcmdapi.AuthProviderConfig{Name: "oidc"}},
			want: `runs an auth-provider credential plugin (provider oidc)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := openStore(t)
			_, err := Join(t.Context(), st, joinFile(t, "c", fc.URL, fc.caPEM(), tc.user), Options{})
			var pe *PluginError
			if !errors.As(err, &pe) {
				t.Fatalf("Join = %v, want a PluginError", err)
			}
			for _, m := range []string{tc.want, "kubeconfigs are code", "--allow-exec-plugins"} {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("message lacks %q: %v", m, err)
				}
			}
			assertNothingStored(t, st)
		})
	}
	if n := fc.requests.Load(); n != 0 {
		t.Fatalf("a refused kubeconfig reached the cluster (%d requests)", n)
	}
}

func TestExecPluginAllowed(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("the test plugin is a shell script")
	}
	fc := newFakeCluster(t, guildnet("from-plugin"))
	plugin := filepath.Join(t.TempDir(), "plugin.sh")
	script := "#!/bin/sh\necho '{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\",\"status\":{\"token\":\"from-plugin\"}}'\n"
	if err := os.WriteFile(plugin, []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	user := &clientcmdapi.AuthInfo{Exec: &clientcmdapi.ExecConfig{
		APIVersion: "client.authentication.k8s.io/v1", Command: plugin, InteractiveMode: clientcmdapi.NeverExecInteractiveMode,
	}}
	st := openStore(t)
	res, err := Join(t.Context(), st, joinFile(t, "plugged", fc.URL, fc.caPEM(), user), Options{AllowExecPlugins: true})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Cluster.AllowExecPlugins {
		t.Fatal("the consent was not recorded with the cluster")
	}
	if _, err := RESTConfigFor(st, res.Cluster.ID); err != nil {
		t.Fatalf("RESTConfigFor a consented plugin: %v", err)
	}

	// A stored kubeconfig that runs a plugin nobody consented to (the file
	// was edited, or an older bug stored it) is refused when used.
	kc, _ := clientcmd.Write(*kubeconfig(fc.URL, fc.caPEM(), user))
	c, err := st.Add(store.NewCluster{Name: "sneaky", Server: fc.URL, Kubeconfig: kc})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := RESTConfigFor(st, c.ID); err == nil || !strings.Contains(err.Error(), "was not allowed when it was joined") {
		t.Fatalf("RESTConfigFor without consent = %v", err)
	}
}

func TestFileReferences(t *testing.T) {
	fc := newFakeCluster(t, guildnet(testToken))
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "ca.crt"), fc.caPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte(testToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	kc := kubeconfig(fc.URL, nil, &clientcmdapi.AuthInfo{TokenFile: "token"})
	kc.Clusters["test-cluster"].CertificateAuthority = "ca.crt"
	data, err := clientcmd.Write(*kc)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}

	// Bytes with no folder to resolve against (an upload) are refused.
	st := openStore(t)
	if _, err := Join(t.Context(), st, data, Options{}); err == nil || !strings.Contains(err.Error(), "refers to a file (certificate-authority: ca.crt)") {
		t.Fatalf("Join of an upload with file references = %v", err)
	}
	assertNothingStored(t, st)

	// From a file, references resolve against its folder and are inlined.
	res, err := JoinFile(t.Context(), st, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	stored, _ := st.Kubeconfig(res.Cluster.ID)
	got, err := clientcmd.Load(stored)
	if err != nil {
		t.Fatal(err)
	}
	cl, u := got.Clusters["test-cluster"], got.AuthInfos["device"]
	if cl.CertificateAuthority != "" || string(cl.CertificateAuthorityData) != string(fc.caPEM()) || u.TokenFile != "" || u.Token != testToken {
		t.Fatalf("stored kubeconfig is not self-contained: %s", stored)
	}
	// It keeps working after the original files are gone.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	cfg, err := RESTConfigFor(st, res.Cluster.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Check(t.Context(), cfg, 0); err != nil {
		t.Fatal(err)
	}
}

func TestExportRoundTrip(t *testing.T) {
	fc := newFakeCluster(t, guildnet(testToken))
	st := openStore(t)
	res, err := Join(t.Context(), st, joinFile(t, "Prod EU", fc.URL, fc.caPEM(), &clientcmdapi.AuthInfo{Token: testToken}), Options{})
	if err != nil {
		t.Fatal(err)
	}
	out, err := Export(st, res.Cluster.ID)
	if err != nil {
		t.Fatal(err)
	}
	var jc JoinConfig
	if err := yamlUnmarshalStrict(out, &jc); err != nil {
		t.Fatal(err)
	}
	if jc.APIVersion != APIVersion || jc.Kind != Kind || jc.Name != "Prod EU" || jc.Server != fc.URL || string(jc.CertificateAuthorityData) != string(fc.caPEM()) {
		t.Fatalf("exported hints: %+v", jc)
	}
	// Another device joins the exported file.
	other := openStore(t)
	res2, err := Join(t.Context(), other, out, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res2.Cluster.ID != res.Cluster.ID || res2.Cluster.Server != fc.URL {
		t.Fatalf("joined the export as %+v", res2.Cluster)
	}
	if _, err := Export(st, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Export of an unknown id = %v", err)
	}
}

func TestParse(t *testing.T) {
	kc := func(server string) string {
		return `apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "` + server + `"}
users:
- name: u
  user: {token: t}
contexts:
- name: x
  context: {cluster: c, user: u}
current-context: x
`
	}
	indent := func(s string) string { return "  " + strings.ReplaceAll(strings.TrimSpace(s), "\n", "\n  ") }

	t.Run("hints override", func(t *testing.T) {
		data := "apiVersion: guildnet.io/v1alpha1\nkind: JoinConfig\nname: Lab\nserver: https://tailnet-name:6443\ncertificateAuthorityData: Y2E=\nkubeconfig:\n" + indent(kc("https://10.0.0.1:6443"))
		cfg, err := Parse([]byte(data), Options{})
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Name != "Lab" || cfg.Server != "https://tailnet-name:6443" {
			t.Fatalf("parsed %+v", cfg)
		}
		if ca := cfg.kubeconfig.Clusters["c"].CertificateAuthorityData; string(ca) != "ca" {
			t.Fatalf("CA hint not applied: %q", ca)
		}
	})
	t.Run("kubeconfig as a string", func(t *testing.T) {
		b, _ := json.Marshal(map[string]any{"apiVersion": APIVersion, "kind": Kind, "kubeconfig": kc("https://a:6443")})
		cfg, err := Parse(b, Options{})
		if err != nil || cfg.Server != "https://a:6443" || cfg.Name != "c" {
			t.Fatalf("Parse = %+v, %v", cfg, err)
		}
	})
	t.Run("only the current context is kept", func(t *testing.T) {
		multi := kc("https://a:6443") + `
`
		raw, _ := clientcmd.Load([]byte(multi))
		raw.Clusters["other"] = &clientcmdapi.Cluster{Server: "https://other:6443"}
		raw.AuthInfos["admin"] = &clientcmdapi.AuthInfo{Token: "admin-secret"}
		raw.Contexts["admin"] = &clientcmdapi.Context{Cluster: "other", AuthInfo: "admin"}
		data, _ := clientcmd.Write(*raw)
		cfg, err := Parse(data, Options{})
		if err != nil {
			t.Fatal(err)
		}
		out, _ := cfg.Kubeconfig()
		if strings.Contains(string(out), "admin-secret") || strings.Contains(string(out), "other") {
			t.Fatalf("stored kubeconfig keeps other contexts' credentials:\n%s", out)
		}
	})

	for _, tc := range []struct{ name, data, want string }{
		{"empty", "  \n", "empty"},
		{"garbage", "{{{", "neither YAML nor JSON"},
		{"other kind", "apiVersion: v1\nkind: Pod\n", `expected a guildnet.config (kind: JoinConfig) or a kubeconfig`},
		{"other version", "apiVersion: guildnet.io/v2\nkind: JoinConfig\n", `apiVersion "guildnet.io/v2"`},
		{"typo", "apiVersion: guildnet.io/v1alpha1\nkind: JoinConfig\nsever: https://x\nkubeconfig:\n" + indent(kc("https://a:6443")), `unknown field "sever"`},
		{"no kubeconfig", "apiVersion: guildnet.io/v1alpha1\nkind: JoinConfig\nname: x\n", "no kubeconfig field"},
		{"http", kc("http://a:8080"), "not https"},
		{"not a URL", kc("a:6443"), "not a URL"},
		{"no server", kc(""), "no server address"},
		{"no context", "apiVersion: v1\nkind: Config\nclusters: []\n", "0 contexts and no current-context"},
		{"dangling context", strings.Replace(kc("https://a:6443"), "user: u}", "user: nobody}", 1), `names user "nobody"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.data), Options{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Parse = %v, want an error containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("message is not one line: %q", err)
			}
		})
	}
}

// selfSignedCA returns the PEM of a fresh CA certificate.
func selfSignedCA(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "some other CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
