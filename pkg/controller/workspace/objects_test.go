package workspace

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/argon2"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"

	"github.com/guildnet/guildnet/apis/guildnet"
	"github.com/guildnet/guildnet/apis/guildnet/v1alpha1"
)

func newWorkspace(image string) *v1alpha1.Workspace {
	return &v1alpha1.Workspace{
		ObjectMeta: metav1.ObjectMeta{Name: "ws", Namespace: "team", UID: "uid-1"},
		Spec:       v1alpha1.WorkspaceSpec{Image: image},
	}
}

func TestIsCodeServer(t *testing.T) {
	for image, want := range map[string]bool{
		"codercom/code-server":                      true,
		"codercom/code-server:4.100.3":              true,
		"docker.io/codercom/code-server@sha256:ab":  true,
		"registry.local:5000/tools/code-server:1":   true,
		"ghcr.io/me/my-code-server-fork":            true,
		"CODERCOM/Code-Server":                      true,
		"jupyter/base-notebook":                     false,
		"nginx":                                     false,
		"registry.local:5000/tools/ide:code-server": false, // only the tag says so
		"localhost:5000/nginx":                      false,
	} {
		if got := IsCodeServer(image); got != want {
			t.Errorf("IsCodeServer(%q) = %v, want %v", image, got, want)
		}
	}
}

func TestPorts(t *testing.T) {
	if got := Ports(&v1alpha1.WorkspaceSpec{}); !slices.Equal(got, []v1alpha1.WorkspacePort{{Name: "http", Port: 8080}}) {
		t.Errorf("no ports: got %v, want http/8080", got)
	}
	got := Ports(&v1alpha1.WorkspaceSpec{Ports: []v1alpha1.WorkspacePort{{Port: 3000}, {Port: 9000}, {Name: "debug", Port: 9229}}})
	want := []v1alpha1.WorkspacePort{{Name: "http", Port: 3000}, {Name: "port-9000", Port: 9000}, {Name: "debug", Port: 9229}}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	// A later port already called "http" keeps the name; the first gets another.
	got = Ports(&v1alpha1.WorkspaceSpec{Ports: []v1alpha1.WorkspacePort{{Port: 3000}, {Name: "http", Port: 80}}})
	want = []v1alpha1.WorkspacePort{{Name: "port-3000", Port: 3000}, {Name: "http", Port: 80}}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestPasswordSecret(t *testing.T) {
	ws := newWorkspace("codercom/code-server:4.100.3")
	if name, gen := PasswordSecret(ws); name != "ws-password" || !gen {
		t.Errorf("code-server without a Secret: got %q generated=%v, want ws-password generated", name, gen)
	}
	ws.Spec.PasswordSecretName = "mine"
	if name, gen := PasswordSecret(ws); name != "mine" || gen {
		t.Errorf("code-server with passwordSecretName: got %q generated=%v, want mine not generated", name, gen)
	}
	ws.Spec.Env = []v1alpha1.EnvVar{{Name: "HASHED_PASSWORD", Value: "$argon2..."}}
	if name, _ := PasswordSecret(ws); name != "" {
		t.Errorf("code-server with HASHED_PASSWORD in env: got %q, want no PASSWORD", name)
	}
	if name, _ := PasswordSecret(newWorkspace("nginx")); name != "" {
		t.Errorf("nginx: got %q, want no PASSWORD", name)
	}
}

func env(c *corev1ac.ContainerApplyConfiguration, name string) *corev1ac.EnvVarApplyConfiguration {
	for i := range c.Env {
		if *c.Env[i].Name == name {
			return &c.Env[i]
		}
	}
	return nil
}

func TestDeploymentCodeServerDefaults(t *testing.T) {
	ws := newWorkspace("codercom/code-server:4.100.3")
	d := Deployment(ws)
	if *d.Name != "ws" || *d.Namespace != "team" || d.Labels[guildnet.WorkspaceLabel] != "ws" {
		t.Fatalf("metadata: %s/%s labels %v", *d.Namespace, *d.Name, d.Labels)
	}
	if len(d.OwnerReferences) != 1 || *d.OwnerReferences[0].UID != "uid-1" || !*d.OwnerReferences[0].Controller || *d.OwnerReferences[0].Kind != "Workspace" {
		t.Errorf("owner references: %+v", d.OwnerReferences)
	}
	if *d.Spec.Replicas != 1 {
		t.Errorf("replicas = %d, want 1", *d.Spec.Replicas)
	}
	if *d.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType {
		t.Errorf("strategy without storage = %s, want RollingUpdate", *d.Spec.Strategy.Type)
	}
	if d.Spec.Template.Labels[guildnet.WorkspaceLabel] != "ws" || d.Spec.Selector.MatchLabels[guildnet.WorkspaceLabel] != "ws" {
		t.Errorf("template labels %v, selector %v", d.Spec.Template.Labels, d.Spec.Selector.MatchLabels)
	}
	c := &d.Spec.Template.Spec.Containers[0]
	if *c.Name != guildnet.WorkspaceContainerName {
		t.Errorf("container name = %s", *c.Name)
	}
	// Without storage it opens the image's working directory, as the image's own CMD would.
	if want := []string{"--bind-addr", "0.0.0.0:8080", "--auth", "password", "--disable-telemetry", "--disable-update-check", "."}; !slices.Equal(c.Args, want) {
		t.Errorf("args = %v, want %v", c.Args, want)
	}
	if e := env(c, "PORT"); e == nil || *e.Value != "8080" {
		t.Errorf("PORT = %+v, want 8080", e)
	}
	if e := env(c, "PASSWORD"); e == nil || e.ValueFrom == nil || *e.ValueFrom.SecretKeyRef.Name != "ws-password" || *e.ValueFrom.SecretKeyRef.Key != "password" {
		t.Errorf("PASSWORD = %+v, want from Secret ws-password key password", e)
	}
	if e := env(c, "HASHED_PASSWORD"); e == nil || e.ValueFrom == nil || *e.ValueFrom.SecretKeyRef.Name != "ws-password" ||
		*e.ValueFrom.SecretKeyRef.Key != "hashed-password" || e.ValueFrom.SecretKeyRef.Optional == nil || !*e.ValueFrom.SecretKeyRef.Optional {
		t.Errorf("HASHED_PASSWORD = %+v, want from Secret ws-password key hashed-password, optional", e)
	}
	if len(c.Ports) != 1 || *c.Ports[0].ContainerPort != 8080 || *c.Ports[0].Name != "http" {
		t.Errorf("ports = %+v, want http/8080", c.Ports)
	}
	r, l := c.ReadinessProbe, c.LivenessProbe
	if *r.HTTPGet.Path != "/" || r.HTTPGet.Port.IntValue() != 8080 || *r.PeriodSeconds > 1 {
		// Probed every second: the status says Running only once the pod is ready.
		t.Errorf("readiness probe: %+v, want / on 8080 every second", r)
	}
	if *l.HTTPGet.Path != "/" || l.HTTPGet.Port.IntValue() != 8080 || *l.InitialDelaySeconds < 60 || *l.FailureThreshold < 3 {
		t.Errorf("liveness probe: %+v", l)
	}
	if len(d.Spec.Template.Spec.Volumes) != 0 || len(c.VolumeMounts) != 0 {
		t.Errorf("no storage but volumes %+v mounts %+v", d.Spec.Template.Spec.Volumes, c.VolumeMounts)
	}

	// With storage, code-server's user can write its fresh home volume,
	// and code-server opens it.
	ws.Spec.Storage = &v1alpha1.WorkspaceStorage{Size: resource.MustParse("1Gi")}
	if sc := Deployment(ws).Spec.Template.Spec.SecurityContext; sc == nil || *sc.FSGroup != 1000 {
		t.Errorf("code-server with storage: security context %+v, want fsGroup 1000", sc)
	}
	if args := Deployment(ws).Spec.Template.Spec.Containers[0].Args; args[len(args)-1] != "/home/coder" {
		t.Errorf("code-server with storage: args %v, want the home /home/coder opened", args)
	}
	ws.Spec.Storage.MountPath = "/work"
	if args := Deployment(ws).Spec.Template.Spec.Containers[0].Args; args[len(args)-1] != "/work" {
		t.Errorf("code-server with storage at /work: args %v, want /work opened", args)
	}
	ws.Spec.Storage.MountPath = ""
	// A code-server image on another port binds that port.
	ws.Spec.Ports = []v1alpha1.WorkspacePort{{Name: "http", Port: 3000}}
	if args := Deployment(ws).Spec.Template.Spec.Containers[0].Args; args[1] != "0.0.0.0:3000" {
		t.Errorf("code-server on 3000: args %v", args)
	}
}

func TestDeploymentFromSpec(t *testing.T) {
	ws := newWorkspace("ghcr.io/me/jupyter:1")
	ws.Spec.ImagePullPolicy = "Always"
	ws.Spec.ImagePullSecrets = []string{"regcred"}
	ws.Spec.Command = []string{"start.sh"}
	ws.Spec.Args = []string{"--port", "$(PORT)"}
	ws.Spec.Env = []v1alpha1.EnvVar{{Name: "A", Value: "1"}, {Name: "TOKEN", SecretKeyRef: &v1alpha1.SecretKeySelector{Name: "s", Key: "k"}}}
	ws.Spec.Ports = []v1alpha1.WorkspacePort{{Name: "web", Port: 8888}, {Port: 9000}}
	ws.Spec.Resources = v1alpha1.ResourceRequirements{Requests: map[string]resource.Quantity{"cpu": resource.MustParse("500m")}, Limits: map[string]resource.Quantity{"memory": resource.MustParse("1Gi")}}
	ws.Spec.Storage = &v1alpha1.WorkspaceStorage{Size: resource.MustParse("5Gi")}
	ws.Spec.Suspend = true

	d := Deployment(ws)
	if *d.Spec.Replicas != 0 {
		t.Errorf("suspended: replicas = %d, want 0", *d.Spec.Replicas)
	}
	if *d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType || d.Spec.Strategy.RollingUpdate != nil {
		t.Errorf("strategy with storage = %+v, want Recreate", d.Spec.Strategy)
	}
	pod := d.Spec.Template.Spec
	c := &pod.Containers[0]
	if *c.ImagePullPolicy != corev1.PullAlways || len(pod.ImagePullSecrets) != 1 || *pod.ImagePullSecrets[0].Name != "regcred" {
		t.Errorf("pull policy %v, secrets %+v", *c.ImagePullPolicy, pod.ImagePullSecrets)
	}
	if !slices.Equal(c.Command, []string{"start.sh"}) || !slices.Equal(c.Args, []string{"--port", "$(PORT)"}) {
		t.Errorf("command %v args %v", c.Command, c.Args)
	}
	if *c.Env[0].Name != "PORT" || env(c, "PASSWORD") != nil || *env(c, "A").Value != "1" || *env(c, "TOKEN").ValueFrom.SecretKeyRef.Key != "k" {
		t.Errorf("env: %+v", c.Env)
	}
	if len(c.Ports) != 2 || *c.Ports[0].Name != "web" || *c.Ports[1].Name != "port-9000" {
		t.Errorf("ports: %+v", c.Ports)
	}
	if c.ReadinessProbe.HTTPGet.Port.IntValue() != 8888 {
		t.Errorf("probe on port %v, want the first port 8888", c.ReadinessProbe.HTTPGet.Port)
	}
	if q := (*c.Resources.Requests)[corev1.ResourceCPU]; q.String() != "500m" {
		t.Errorf("cpu request = %s", q.String())
	}
	if len(pod.Volumes) != 1 || *pod.Volumes[0].PersistentVolumeClaim.ClaimName != "ws-home" ||
		len(c.VolumeMounts) != 1 || *c.VolumeMounts[0].MountPath != "/home/coder" {
		t.Errorf("volumes %+v mounts %+v", pod.Volumes, c.VolumeMounts)
	}
	if pod.SecurityContext != nil {
		t.Errorf("not code-server: no fsGroup guess, got %+v", pod.SecurityContext)
	}
}

func TestServiceAndClaim(t *testing.T) {
	ws := newWorkspace("nginx")
	s := Service(ws)
	if *s.Name != "ws" || *s.Spec.Type != corev1.ServiceTypeClusterIP || !*s.Spec.PublishNotReadyAddresses || s.Spec.Selector[guildnet.WorkspaceLabel] != "ws" {
		t.Errorf("service: %+v", s.Spec)
	}
	if len(s.Spec.Ports) != 1 || *s.Spec.Ports[0].Name != "http" || *s.Spec.Ports[0].Port != 8080 || s.Spec.Ports[0].TargetPort.IntValue() != 8080 {
		t.Errorf("service ports: %+v", s.Spec.Ports)
	}
	ws.Spec.Exposure = v1alpha1.ExposureLoadBalancer
	if got := *Service(ws).Spec.Type; got != corev1.ServiceTypeLoadBalancer {
		t.Errorf("exposure LoadBalancer: type %s", got)
	}

	if HomeClaim(ws) != nil {
		t.Errorf("claim without spec.storage")
	}
	class := "fast"
	ws.Spec.Storage = &v1alpha1.WorkspaceStorage{Size: resource.MustParse("10Gi"), StorageClassName: &class, MountPath: "/data"}
	c := HomeClaim(ws)
	if *c.Name != "ws-home" || c.Spec.AccessModes[0] != corev1.ReadWriteOnce || *c.Spec.StorageClassName != "fast" {
		t.Errorf("claim: %+v", c.Spec)
	}
	if q := (*c.Spec.Resources.Requests)[corev1.ResourceStorage]; q.String() != "10Gi" {
		t.Errorf("claim size %s", q.String())
	}
	if got := *Deployment(ws).Spec.Template.Spec.Containers[0].VolumeMounts[0].MountPath; got != "/data" {
		t.Errorf("mount path %s, want /data", got)
	}
}

func TestPasswordSecretObjectIsRandom(t *testing.T) {
	ws := newWorkspace("codercom/code-server")
	a, b := PasswordSecretObject(ws), PasswordSecretObject(ws)
	pa, pb := a.StringData[guildnet.WorkspacePasswordKey], b.StringData[guildnet.WorkspacePasswordKey]
	if len(pa) < 20 || pa == pb {
		t.Errorf("passwords %q and %q: want long and different", pa, pb)
	}
	if a.Name != "ws-password" || a.Labels[guildnet.WorkspaceLabel] != "ws" || a.OwnerReferences[0].UID != "uid-1" {
		t.Errorf("secret metadata: %+v", a.ObjectMeta)
	}
	for _, s := range []*corev1.Secret{a, b} {
		password, hash := s.StringData[guildnet.WorkspacePasswordKey], s.StringData[guildnet.WorkspaceHashedPasswordKey]
		if !argon2idMatches(t, hash, password) {
			t.Errorf("hashed-password %q is not the argon2id hash of password %q", hash, password)
		}
	}
}

// argon2idMatches recomputes a PHC argon2id string from its own parameters
// and salt, as code-server's verify does.
func argon2idMatches(t *testing.T, phc, password string) bool {
	t.Helper()
	f := strings.Split(phc, "$") // "", "argon2id", "v=19", "m=..,t=..,p=..", salt, hash
	if len(f) != 6 || f[1] != "argon2id" || f[2] != fmt.Sprintf("v=%d", argon2.Version) {
		t.Errorf("%q is not an argon2id PHC string", phc)
		return false
	}
	var m, tm uint32
	var p uint8
	if _, err := fmt.Sscanf(f[3], "m=%d,t=%d,p=%d", &m, &tm, &p); err != nil {
		t.Errorf("parameters %q: %v", f[3], err)
		return false
	}
	salt, err1 := base64.RawStdEncoding.DecodeString(f[4])
	key, err2 := base64.RawStdEncoding.DecodeString(f[5])
	if err1 != nil || err2 != nil || len(salt) < 16 || len(key) < 32 {
		t.Errorf("salt or hash of %q: want unpadded base64 of at least 16 and 32 bytes", phc)
		return false
	}
	return bytes.Equal(argon2.IDKey([]byte(password), salt, tm, m, p, uint32(len(key))), key) &&
		!bytes.Equal(argon2.IDKey([]byte(password+"x"), salt, tm, m, p, uint32(len(key))), key)
}
