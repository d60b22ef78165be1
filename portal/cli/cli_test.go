package cli

import (
	"bytes"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/guildnet/guildnet/portal/store"
)

const adminToken = "admin-token"

// fakeAPIServer answers what make-join-config asks as an admin and what
// join asks as a device: enough of a kube-apiserver to run the two
// commands end to end over real HTTPS with client-go.
type fakeAPIServer struct {
	*httptest.Server
	mu     sync.Mutex
	tokens map[string]bool // device tokens minted
	made   []string        // "POST path" of every create
}

func newFakeAPIServer(t *testing.T) *fakeAPIServer {
	t.Helper()
	f := &fakeAPIServer{tokens: map[string]bool{}}
	f.Server = httptest.NewUnstartedServer(http.HandlerFunc(f.serve))
	f.Config.ErrorLog = log.New(io.Discard, "", 0)
	f.StartTLS()
	t.Cleanup(f.Close)
	return f
}

func (f *fakeAPIServer) serve(w http.ResponseWriter, r *http.Request) {
	reply := func(code int, obj any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(obj)
	}
	status := func(code int, reason metav1.StatusReason) {
		reply(code, metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}, Status: metav1.StatusFailure, Code: int32(code), Reason: reason, Message: string(reason)})
	}
	token := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	f.mu.Lock()
	device := f.tokens[token]
	f.mu.Unlock()

	if r.URL.Path == "/apis/guildnet.io/v1alpha1" && (device || token == adminToken) {
		reply(http.StatusOK, metav1.APIResourceList{TypeMeta: metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"}, GroupVersion: "guildnet.io/v1alpha1",
			APIResources: []metav1.APIResource{{Name: "workspaces"}, {Name: "databases"}, {Name: "tables"}}})
		return
	}
	if token != adminToken {
		status(http.StatusUnauthorized, metav1.StatusReasonUnauthorized)
		return
	}
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/api/v1/namespaces/team-a":
		reply(http.StatusOK, corev1.Namespace{TypeMeta: metav1.TypeMeta{Kind: "Namespace", APIVersion: "v1"}, ObjectMeta: metav1.ObjectMeta{Name: "team-a"}})
	case r.Method == http.MethodPost:
		// client-go sends protobuf (or JSON); decode either, as the real
		// server does, and answer in JSON, which the client also accepts.
		body, err := io.ReadAll(r.Body)
		if err != nil {
			status(http.StatusBadRequest, metav1.StatusReasonBadRequest)
			return
		}
		obj, gvk, err := scheme.Codecs.UniversalDeserializer().Decode(body, nil, nil)
		if err != nil {
			status(http.StatusBadRequest, metav1.StatusReasonBadRequest)
			return
		}
		obj.GetObjectKind().SetGroupVersionKind(*gvk)
		f.mu.Lock()
		defer f.mu.Unlock()
		f.made = append(f.made, "POST "+r.URL.Path)
		if tr, ok := obj.(*authenticationv1.TokenRequest); ok && strings.HasSuffix(r.URL.Path, "/token") {
			if tr.Spec.ExpirationSeconds == nil {
				status(http.StatusBadRequest, metav1.StatusReasonBadRequest)
				return
			}
			tok := fmt.Sprintf("device-token-%d", len(f.tokens)+1)
			f.tokens[tok] = true
			tr.Status.Token = tok
			tr.Status.ExpirationTimestamp = metav1.NewTime(time.Now().Add(time.Duration(*tr.Spec.ExpirationSeconds) * time.Second))
		}
		reply(http.StatusCreated, obj)
	default:
		status(http.StatusNotFound, metav1.StatusReasonNotFound)
	}
}

func (f *fakeAPIServer) adminKubeconfig(t *testing.T) string {
	t.Helper()
	kc := clientcmdapi.NewConfig()
	kc.Clusters["lab"] = &clientcmdapi.Cluster{Server: f.URL, CertificateAuthorityData: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.Certificate().Raw})}
	kc.AuthInfos["admin"] = &clientcmdapi.AuthInfo{Token: adminToken}
	kc.Contexts["admin@lab"] = &clientcmdapi.Context{Cluster: "lab", AuthInfo: "admin"}
	kc.CurrentContext = "admin@lab"
	path := filepath.Join(t.TempDir(), "admin.kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// run runs guildnet-portal with args and returns stdout, stderr, error.
func run(t *testing.T, stdin string, args ...string) (string, string, error) {
	t.Helper()
	cmd := NewCommand()
	var out, errOut bytes.Buffer
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetIn(strings.NewReader(stdin))
	err := cmd.ExecuteContext(t.Context())
	return out.String(), errOut.String(), err
}

func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, err := run(t, "", args...)
	if err != nil {
		t.Fatalf("guildnet-portal %s: %v\nstderr: %s", strings.Join(args, " "), err, errOut)
	}
	return out
}

func assertMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != want {
		t.Fatalf("%s has mode %v, want %v", path, fi.Mode().Perm(), want)
	}
}

// An admin mints a device's file, the device joins it, lists it, exports
// it, a second device joins the export, and the first removes it.
func TestAdminToDevice(t *testing.T) {
	api := newFakeAPIServer(t)
	work := t.TempDir()
	devFile := filepath.Join(work, "laptop.guildnet.config")

	_, errOut, err := run(t, "", "make-join-config", "--kubeconfig", api.adminKubeconfig(t),
		"--namespace", "team-a", "--name", "laptop", "-o", devFile, "--duration", "24h")
	if err != nil {
		t.Fatalf("make-join-config: %v", err)
	}
	assertMode(t, devFile, 0o600)
	for _, want := range []string{"Device laptop may use namespace team-a", "kubectl -n team-a delete serviceaccount,rolebinding laptop"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("make-join-config stderr lacks %q:\n%s", want, errOut)
		}
	}
	wantMade := []string{
		"POST /api/v1/namespaces/team-a/serviceaccounts",
		"POST /apis/rbac.authorization.k8s.io/v1/namespaces/team-a/rolebindings",
		"POST /api/v1/namespaces/team-a/serviceaccounts/laptop/token",
	}
	if got := strings.Join(api.made, "\n"); got != strings.Join(wantMade, "\n") {
		t.Fatalf("requests:\n%s\nwant:\n%s", got, strings.Join(wantMade, "\n"))
	}

	stateA := filepath.Join(work, "device-a")
	out := mustRun(t, "--state-dir", stateA, "join", devFile)
	if out != "lab\n" {
		t.Fatalf("join printed %q, want the id", out)
	}
	if settings, _ := openAt(t, stateA).Settings("lab"); settings.DefaultNamespace != "team-a" {
		t.Fatalf("default namespace %q", settings.DefaultNamespace)
	}
	out = mustRun(t, "--state-dir", stateA, "clusters")
	if fields := strings.Fields(out); len(fields) != 3 || fields[0] != "lab" || fields[1] != "lab" || fields[2] != api.URL {
		t.Fatalf("clusters printed %q", out)
	}

	export := filepath.Join(work, "export.config")
	mustRun(t, "--state-dir", stateA, "export", "lab", "-o", export)
	assertMode(t, export, 0o600)
	stdoutExport := mustRun(t, "--state-dir", stateA, "export", "lab")
	if b, _ := os.ReadFile(export); string(b) != stdoutExport {
		t.Fatal("export to a file and to stdout differ")
	}

	// The second device reads the export from stdin.
	stateB := filepath.Join(work, "device-b")
	out, errOut, err = run(t, stdoutExport, "--state-dir", stateB, "join", "-", "--name", "Lab (from A)")
	if err != nil || out != "lab-from-a\n" {
		t.Fatalf("join from stdin: %q, %v\n%s", out, err, errOut)
	}

	mustRun(t, "--state-dir", stateA, "remove", "lab")
	out, errOut, err = run(t, "", "--state-dir", stateA, "clusters")
	if err != nil || out != "" || !strings.Contains(errOut, "No clusters joined yet") {
		t.Fatalf("clusters after remove: %q %q %v", out, errOut, err)
	}
	if out := mustRun(t, "--state-dir", stateB, "clusters"); !strings.HasPrefix(out, "lab-from-a ") {
		t.Fatalf("device B lost its cluster: %q", out)
	}
}

func openAt(t *testing.T, dir string) *store.Store {
	t.Helper()
	st, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestStateDirFromEnvironment(t *testing.T) {
	api := newFakeAPIServer(t)
	envDir := filepath.Join(t.TempDir(), "from-env")
	t.Setenv(store.EnvStateDir, envDir)
	out := mustRun(t, "join", api.adminKubeconfig(t))
	if out != "lab\n" {
		t.Fatalf("join printed %q", out)
	}
	if cs, _ := openAt(t, envDir).List(); len(cs) != 1 {
		t.Fatalf("$%s not used: %v", store.EnvStateDir, cs)
	}
	// Joining the same server again works, with a note.
	out, errOut, err := run(t, "", "join", api.adminKubeconfig(t))
	if err != nil || out != "lab-2\n" || !strings.Contains(errOut, "Note: lab already points at the same server") {
		t.Fatalf("second join: %q %q %v", out, errOut, err)
	}
	// --state-dir wins over the environment.
	flagDir := filepath.Join(t.TempDir(), "from-flag")
	if out := mustRun(t, "--state-dir", flagDir, "clusters"); out != "" {
		t.Fatalf("--state-dir ignored: %q", out)
	}
}

func TestErrors(t *testing.T) {
	api := newFakeAPIServer(t)
	state := filepath.Join(t.TempDir(), "state")
	// A kubeconfig whose credentials the cluster rejects.
	kc, err := clientcmd.LoadFromFile(api.adminKubeconfig(t))
	if err != nil {
		t.Fatal(err)
	}
	kc.AuthInfos["admin"].Token = "wrong"
	bad := filepath.Join(t.TempDir(), "bad.kubeconfig")
	if err := clientcmd.WriteToFile(*kc, bad); err != nil {
		t.Fatal(err)
	}
	// And one that runs a plugin.
	kc.AuthInfos["admin"] = &clientcmdapi.AuthInfo{Exec: &clientcmdapi.ExecConfig{APIVersion: "client.authentication.k8s.io/v1", Command: "gke-gcloud-auth-plugin", InteractiveMode: clientcmdapi.NeverExecInteractiveMode}}
	plugin := filepath.Join(t.TempDir(), "plugin.kubeconfig")
	if err := clientcmd.WriteToFile(*kc, plugin); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"join"}, "usage: guildnet-portal join FILE"},
		{[]string{"join", filepath.Join(t.TempDir(), "missing")}, "reading the join file"},
		{[]string{"join", bad}, "rejected the credentials (401 Unauthorized)"},
		{[]string{"join", plugin}, "--allow-exec-plugins"},
		{[]string{"remove", "nope"}, `no joined cluster has id "nope" (guildnet-portal clusters lists the ids)`},
		{[]string{"export", "nope"}, `no joined cluster has id "nope"`},
		{[]string{"clusters", "extra"}, "usage: guildnet-portal clusters"},
		{[]string{"join", "--bogus", "x"}, "unknown flag: --bogus (see guildnet-portal join --help)"},
		{[]string{"make-join-config", "--name", "x", "-o", "-"}, `required flag(s) "namespace" not set`},
		{[]string{"make-join-config", "--kubeconfig", api.adminKubeconfig(t), "--namespace", "nope", "--name", "x", "-o", "-"}, `namespace "nope" does not exist`},
	} {
		_, _, err := run(t, "", append([]string{"--state-dir", state}, tc.args...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("guildnet-portal %s = %v, want an error containing %q", strings.Join(tc.args, " "), err, tc.want)
		}
	}
	if cs, _ := openAt(t, state).List(); len(cs) != 0 {
		t.Fatalf("failed commands stored %v", cs)
	}
}
