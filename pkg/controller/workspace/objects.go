package workspace

import (
	"crypto/rand"
	"fmt"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"

	"github.com/guildnet/guildnet/apis/guildnet"
	"github.com/guildnet/guildnet/apis/guildnet/v1alpha1"
)

// FieldOwner is the server-side apply field manager of what the reconciler writes.
const FieldOwner = "guildnet-workspace"

const (
	homeVolumeName = "home"
	// codeServerGID is the group of the "coder" user in code-server's
	// images. A fresh volume is owned by root; fsGroup makes it writable.
	codeServerGID int64 = 1000
)

// Probe timings. Readiness is probed every second from the start: the
// status says Running (and kubectl wait returns) only once the pod is
// ready, and code-server answers about a second after its container starts,
// so a slower probe would be most of the time a user waits (measured on the
// real node: period 2 s put Ready ~2.6 s after the container started).
// Liveness is generous, because a workspace image may take a while to start
// (other IDEs more than code-server), and restarting a slow but healthy
// workspace loses the user's session.
const (
	readinessInitialDelay = 0
	readinessPeriod       = 1
	livenessInitialDelay  = 60
	livenessPeriod        = 20
	probeTimeout          = 5
	probeFailureThreshold = 6
)

// Environment variables the container gets or that code-server reads.
const (
	portEnv           = "PORT"
	passwordEnv       = "PASSWORD"
	hashedPasswordEnv = "HASHED_PASSWORD"
)

// IsCodeServer reports whether image looks like code-server: its
// repository (registry and path, without tag or digest) contains
// "code-server", as codercom/code-server does.
func IsCodeServer(image string) bool {
	ref := strings.ToLower(image)
	if at := strings.Index(ref, "@"); at >= 0 {
		ref = ref[:at]
	}
	// A tag is what follows the last colon after the last slash; a colon
	// before it belongs to the registry's port.
	if colon := strings.LastIndex(ref, ":"); colon > strings.LastIndex(ref, "/") {
		ref = ref[:colon]
	}
	return strings.Contains(ref, "code-server")
}

// CodeServerArgs are the arguments a code-server image gets when spec.args
// is empty: listen on every address at port with password authentication,
// no calls home from inside the cluster, and open folder. Arguments replace
// the image's CMD, and with it the folder code-server's images open by
// default ("."), which would leave the user in an empty window.
func CodeServerArgs(port int32, folder string) []string {
	return []string{
		"--bind-addr", "0.0.0.0:" + strconv.Itoa(int(port)),
		"--auth", "password",
		"--disable-telemetry",
		"--disable-update-check",
		folder,
	}
}

// codeServerFolder is the folder a code-server workspace opens: its
// persistent home when it has one, else the image's working directory.
func codeServerFolder(spec *v1alpha1.WorkspaceSpec) string {
	if spec.Storage != nil {
		return HomeMountPath(spec.Storage)
	}
	return "."
}

// Ports are the workspace's ports, each named: spec.ports, or 8080 when
// there are none; the first is named "http" unless it has a name, the
// others "port-<number>" (a Service with several ports needs every one
// named).
func Ports(spec *v1alpha1.WorkspaceSpec) []v1alpha1.WorkspacePort {
	if len(spec.Ports) == 0 {
		return []v1alpha1.WorkspacePort{{Name: v1alpha1.DefaultPortName, Port: guildnet.WorkspaceDefaultPort}}
	}
	used := map[string]bool{}
	for _, p := range spec.Ports {
		if p.Name != "" {
			used[p.Name] = true
		}
	}
	ports := make([]v1alpha1.WorkspacePort, len(spec.Ports))
	for i, p := range spec.Ports {
		if p.Name == "" {
			p.Name = fmt.Sprintf("port-%d", p.Port)
			if i == 0 && !used[v1alpha1.DefaultPortName] {
				p.Name = v1alpha1.DefaultPortName
			}
			used[p.Name] = true
		}
		ports[i] = p
	}
	return ports
}

// PasswordSecret says where a code-server container's PASSWORD comes from:
// the Secret name (key "password"), and whether the reconciler generates
// that Secret. name is empty when the container gets no PASSWORD: the image
// is not code-server, or spec.env already sets PASSWORD or HASHED_PASSWORD.
func PasswordSecret(ws *v1alpha1.Workspace) (name string, generated bool) {
	if !IsCodeServer(ws.Spec.Image) {
		return "", false
	}
	for _, e := range ws.Spec.Env {
		if e.Name == passwordEnv || e.Name == hashedPasswordEnv {
			return "", false
		}
	}
	if ws.Spec.PasswordSecretName != "" {
		return ws.Spec.PasswordSecretName, false
	}
	return guildnet.WorkspacePasswordSecretName(ws.Name), true
}

// HomeMountPath is where the home volume is mounted.
func HomeMountPath(s *v1alpha1.WorkspaceStorage) string {
	if s.MountPath != "" {
		return s.MountPath
	}
	return v1alpha1.DefaultHomeMountPath
}

func workspaceLabels(ws *v1alpha1.Workspace) map[string]string {
	return map[string]string{guildnet.WorkspaceLabel: ws.Name}
}

func ownerRef(ws *v1alpha1.Workspace) *metav1ac.OwnerReferenceApplyConfiguration {
	return metav1ac.OwnerReference().
		WithAPIVersion(v1alpha1.SchemeGroupVersion.String()).
		WithKind("Workspace").
		WithName(ws.Name).
		WithUID(ws.UID).
		WithController(true).
		WithBlockOwnerDeletion(true)
}

func ownerReference(ws *v1alpha1.Workspace) metav1.OwnerReference {
	yes := true
	return metav1.OwnerReference{
		APIVersion: v1alpha1.SchemeGroupVersion.String(), Kind: "Workspace",
		Name: ws.Name, UID: ws.UID, Controller: &yes, BlockOwnerDeletion: &yes,
	}
}

// Deployment is the workspace's Deployment as the reconciler applies it.
func Deployment(ws *v1alpha1.Workspace) *appsv1ac.DeploymentApplyConfiguration {
	spec := &ws.Spec
	ports := Ports(spec)
	first := ports[0].Port

	container := corev1ac.Container().
		WithName(guildnet.WorkspaceContainerName).
		WithImage(spec.Image)
	if spec.ImagePullPolicy != "" {
		container.WithImagePullPolicy(corev1.PullPolicy(spec.ImagePullPolicy))
	}
	if len(spec.Command) > 0 {
		container.WithCommand(spec.Command...)
	}
	switch {
	case len(spec.Args) > 0:
		container.WithArgs(spec.Args...)
	case IsCodeServer(spec.Image):
		container.WithArgs(CodeServerArgs(first, codeServerFolder(spec))...)
	}

	// PORT and PASSWORD come first so that spec.env can refer to them as $(PORT).
	container.WithEnv(corev1ac.EnvVar().WithName(portEnv).WithValue(strconv.Itoa(guildnet.WorkspaceDefaultPort)))
	if secret, _ := PasswordSecret(ws); secret != "" {
		container.WithEnv(corev1ac.EnvVar().WithName(passwordEnv).WithValueFrom(corev1ac.EnvVarSource().
			WithSecretKeyRef(corev1ac.SecretKeySelector().WithName(secret).WithKey(guildnet.WorkspacePasswordKey))))
		// When the Secret also holds the hash, code-server checks each
		// request's cookie against it instead of hashing the password
		// again for every request (see HashPassword). Optional: Secrets
		// made before the hash key existed, and users' own, may lack it.
		container.WithEnv(corev1ac.EnvVar().WithName(hashedPasswordEnv).WithValueFrom(corev1ac.EnvVarSource().
			WithSecretKeyRef(corev1ac.SecretKeySelector().WithName(secret).WithKey(guildnet.WorkspaceHashedPasswordKey).WithOptional(true))))
	}
	for _, e := range spec.Env {
		env := corev1ac.EnvVar().WithName(e.Name)
		if e.SecretKeyRef != nil {
			env.WithValueFrom(corev1ac.EnvVarSource().
				WithSecretKeyRef(corev1ac.SecretKeySelector().WithName(e.SecretKeyRef.Name).WithKey(e.SecretKeyRef.Key)))
		} else {
			env.WithValue(e.Value)
		}
		container.WithEnv(env)
	}

	for _, p := range ports {
		container.WithPorts(corev1ac.ContainerPort().WithName(p.Name).WithContainerPort(p.Port).WithProtocol(corev1.ProtocolTCP))
	}
	if res := resources(spec.Resources); res != nil {
		container.WithResources(res)
	}
	container.WithReadinessProbe(httpProbe(first, readinessInitialDelay, readinessPeriod))
	container.WithLivenessProbe(httpProbe(first, livenessInitialDelay, livenessPeriod))

	pod := corev1ac.PodSpec()
	for _, s := range spec.ImagePullSecrets {
		pod.WithImagePullSecrets(corev1ac.LocalObjectReference().WithName(s))
	}

	// Without storage, the new pod starts before the old one stops, so a
	// spec change does not interrupt a working session until the new one is
	// ready. A RWO volume cannot be attached to both pods at once, so a
	// workspace with storage is replaced instead. Both strategies are spelled
	// out: a defaulted rollingUpdate left behind would make Recreate invalid.
	strategy := appsv1ac.DeploymentStrategy().WithType(appsv1.RollingUpdateDeploymentStrategyType).
		WithRollingUpdate(appsv1ac.RollingUpdateDeployment().
			WithMaxSurge(intstr.FromInt32(1)).
			WithMaxUnavailable(intstr.FromInt32(0)))
	if s := spec.Storage; s != nil {
		strategy = appsv1ac.DeploymentStrategy().WithType(appsv1.RecreateDeploymentStrategyType)
		container.WithVolumeMounts(corev1ac.VolumeMount().WithName(homeVolumeName).WithMountPath(HomeMountPath(s)))
		pod.WithVolumes(corev1ac.Volume().WithName(homeVolumeName).
			WithPersistentVolumeClaim(corev1ac.PersistentVolumeClaimVolumeSource().WithClaimName(guildnet.WorkspaceHomeClaimName(ws.Name))))
		if IsCodeServer(spec.Image) {
			pod.WithSecurityContext(corev1ac.PodSecurityContext().WithFSGroup(codeServerGID))
		}
	}
	pod.WithContainers(container)

	replicas := int32(1)
	if spec.Suspend {
		replicas = 0
	}
	return appsv1ac.Deployment(guildnet.WorkspaceServiceName(ws.Name), ws.Namespace).
		WithLabels(workspaceLabels(ws)).
		WithOwnerReferences(ownerRef(ws)).
		WithSpec(appsv1ac.DeploymentSpec().
			WithReplicas(replicas).
			WithSelector(metav1ac.LabelSelector().WithMatchLabels(workspaceLabels(ws))).
			WithStrategy(strategy).
			WithTemplate(corev1ac.PodTemplateSpec().
				WithLabels(workspaceLabels(ws)).
				WithSpec(pod)))
}

func httpProbe(port int32, initialDelay, period int32) *corev1ac.ProbeApplyConfiguration {
	p := corev1ac.Probe().
		WithHTTPGet(corev1ac.HTTPGetAction().WithPath("/").WithPort(intstr.FromInt32(port))).
		WithPeriodSeconds(period).
		WithTimeoutSeconds(probeTimeout).
		WithFailureThreshold(probeFailureThreshold)
	// A zero delay is left out, not applied: the server omits zero values,
	// so it would never record the field as ours.
	if initialDelay > 0 {
		p.WithInitialDelaySeconds(initialDelay)
	}
	return p
}

func resources(r v1alpha1.ResourceRequirements) *corev1ac.ResourceRequirementsApplyConfiguration {
	if len(r.Requests) == 0 && len(r.Limits) == 0 {
		return nil
	}
	res := corev1ac.ResourceRequirements()
	if len(r.Requests) > 0 {
		list := corev1.ResourceList{}
		for k, v := range r.Requests {
			list[corev1.ResourceName(k)] = v
		}
		res.WithRequests(list)
	}
	if len(r.Limits) > 0 {
		list := corev1.ResourceList{}
		for k, v := range r.Limits {
			list[corev1.ResourceName(k)] = v
		}
		res.WithLimits(list)
	}
	return res
}

// Service is the workspace's Service as the reconciler applies it. It
// publishes not-ready addresses so that workspaces/proxy can reach a
// workspace whose readiness probe has not passed yet (code-server's login
// page, a dev server still compiling).
func Service(ws *v1alpha1.Workspace) *corev1ac.ServiceApplyConfiguration {
	svcType := corev1.ServiceTypeClusterIP
	if ws.Spec.Exposure == v1alpha1.ExposureLoadBalancer {
		svcType = corev1.ServiceTypeLoadBalancer
	}
	spec := corev1ac.ServiceSpec().
		WithType(svcType).
		WithSelector(workspaceLabels(ws)).
		WithPublishNotReadyAddresses(true)
	for _, p := range Ports(&ws.Spec) {
		spec.WithPorts(corev1ac.ServicePort().
			WithName(p.Name).
			WithProtocol(corev1.ProtocolTCP).
			WithPort(p.Port).
			WithTargetPort(intstr.FromInt32(p.Port)))
	}
	return corev1ac.Service(guildnet.WorkspaceServiceName(ws.Name), ws.Namespace).
		WithLabels(workspaceLabels(ws)).
		WithOwnerReferences(ownerRef(ws)).
		WithSpec(spec)
}

// HomeClaim is the workspace's PersistentVolumeClaim as the reconciler
// applies it, or nil without spec.storage.
func HomeClaim(ws *v1alpha1.Workspace) *corev1ac.PersistentVolumeClaimApplyConfiguration {
	s := ws.Spec.Storage
	if s == nil {
		return nil
	}
	spec := corev1ac.PersistentVolumeClaimSpec().
		WithAccessModes(corev1.ReadWriteOnce).
		WithResources(corev1ac.VolumeResourceRequirements().
			WithRequests(corev1.ResourceList{corev1.ResourceStorage: s.Size}))
	if s.StorageClassName != nil {
		spec.WithStorageClassName(*s.StorageClassName)
	}
	return corev1ac.PersistentVolumeClaim(guildnet.WorkspaceHomeClaimName(ws.Name), ws.Namespace).
		WithLabels(workspaceLabels(ws)).
		WithOwnerReferences(ownerRef(ws)).
		WithSpec(spec)
}

// PasswordSecretObject is a new generated password Secret for ws, with a
// random password (128 bits from crypto/rand) and its hash.
func PasswordSecretObject(ws *v1alpha1.Workspace) *corev1.Secret {
	password := rand.Text()
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name:            guildnet.WorkspacePasswordSecretName(ws.Name),
			Namespace:       ws.Namespace,
			Labels:          workspaceLabels(ws),
			OwnerReferences: []metav1.OwnerReference{ownerReference(ws)},
		},
		Type: corev1.SecretTypeOpaque,
		StringData: map[string]string{
			guildnet.WorkspacePasswordKey:       password,
			guildnet.WorkspaceHashedPasswordKey: HashPassword(password),
		},
	}
}
