package integration

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/diff"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"

	"github.com/guildnet/guildnet/apis/guildnet"
	"github.com/guildnet/guildnet/apis/guildnet/v1alpha1"
	guildnetclient "github.com/guildnet/guildnet/generated/clientset/versioned"
	gnv1alpha1 "github.com/guildnet/guildnet/generated/clientset/versioned/typed/guildnet/v1alpha1"
	"github.com/guildnet/guildnet/pkg/controller/workspace"
	"github.com/guildnet/guildnet/test/framework"
	"github.com/guildnet/guildnet/test/workspacetest"
)

// The control plane has no kubelet and no scheduler: the deployment and
// replicaset controllers create pods that never run. Where a test needs a
// pod to be ready or to fail, it writes the pod's status itself, as the
// kubelet would, and says so.

const wsrCodeServer = "codercom/code-server:4.100.3"

type wsrClients struct {
	kube kubernetes.Interface
	gn   gnv1alpha1.GuildnetV1alpha1Interface
	ns   string
}

func newWSRClients(t *testing.T, prefix string) *wsrClients {
	env := framework.Env(t)
	kube := kubernetes.NewForConfigOrDie(env.AdminConfig())
	return &wsrClients{
		kube: kube,
		gn:   guildnetclient.NewForConfigOrDie(env.AdminConfig()).GuildnetV1alpha1(),
		ns:   createNamespace(t, kube, prefix),
	}
}

func (c *wsrClients) create(t *testing.T, ws *v1alpha1.Workspace) *v1alpha1.Workspace {
	t.Helper()
	got, err := c.gn.Workspaces(c.ns).Create(context.Background(), ws, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating workspace %s: %v", ws.Name, err)
	}
	return got
}

// update changes a workspace's spec, retrying on conflicts with the reconciler's status writes.
func (c *wsrClients) update(t *testing.T, name string, change func(*v1alpha1.Workspace)) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		ws, err := c.gn.Workspaces(c.ns).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		change(ws)
		_, err = c.gn.Workspaces(c.ns).Update(context.Background(), ws, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatalf("updating workspace %s: %v", name, err)
	}
}

func (c *wsrClients) deployment(t *testing.T, name, what string, check func(*appsv1.Deployment) error) *appsv1.Deployment {
	t.Helper()
	var got *appsv1.Deployment
	framework.Eventually(t, 30*time.Second, what, func(ctx context.Context) error {
		d, err := c.kube.AppsV1().Deployments(c.ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		got = d
		return check(d)
	})
	return got
}

func (c *wsrClients) workspace(t *testing.T, name, what string, check func(*v1alpha1.Workspace) error) *v1alpha1.Workspace {
	t.Helper()
	var got *v1alpha1.Workspace
	framework.Eventually(t, 30*time.Second, what, func(ctx context.Context) error {
		ws, err := c.gn.Workspaces(c.ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		got = ws
		return check(ws)
	})
	return got
}

// objects lists what carries workspace name's label, by kind.
func (c *wsrClients) objects(ctx context.Context, name string) (map[string][]metav1.Object, error) {
	sel := metav1.ListOptions{LabelSelector: guildnet.WorkspaceLabel + "=" + name}
	out := map[string][]metav1.Object{}
	deps, err := c.kube.AppsV1().Deployments(c.ns).List(ctx, sel)
	if err != nil {
		return nil, err
	}
	for i := range deps.Items {
		out["Deployment"] = append(out["Deployment"], &deps.Items[i])
	}
	svcs, err := c.kube.CoreV1().Services(c.ns).List(ctx, sel)
	if err != nil {
		return nil, err
	}
	for i := range svcs.Items {
		out["Service"] = append(out["Service"], &svcs.Items[i])
	}
	secrets, err := c.kube.CoreV1().Secrets(c.ns).List(ctx, sel)
	if err != nil {
		return nil, err
	}
	for i := range secrets.Items {
		out["Secret"] = append(out["Secret"], &secrets.Items[i])
	}
	pvcs, err := c.kube.CoreV1().PersistentVolumeClaims(c.ns).List(ctx, sel)
	if err != nil {
		return nil, err
	}
	for i := range pvcs.Items {
		out["PersistentVolumeClaim"] = append(out["PersistentVolumeClaim"], &pvcs.Items[i])
	}
	return out, nil
}

// expectObjects waits until workspace ws owns exactly the named objects,
// each with the label and a controller owner reference to ws.
func (c *wsrClients) expectObjects(t *testing.T, ws *v1alpha1.Workspace, want map[string][]string) {
	t.Helper()
	framework.Eventually(t, 30*time.Second, "workspace "+ws.Name+" owns exactly "+fmt.Sprint(want), func(ctx context.Context) error {
		got, err := c.objects(ctx, ws.Name)
		if err != nil {
			return err
		}
		for _, kind := range []string{"Deployment", "Service", "Secret", "PersistentVolumeClaim"} {
			var names []string
			for _, o := range got[kind] {
				names = append(names, o.GetName())
				ref := metav1.GetControllerOf(o)
				if ref == nil || ref.UID != ws.UID || ref.Kind != "Workspace" || ref.APIVersion != "guildnet.io/v1alpha1" ||
					ref.BlockOwnerDeletion == nil || !*ref.BlockOwnerDeletion {
					return fmt.Errorf("%s %s: controller owner reference %+v, want Workspace %s (uid %s)", kind, o.GetName(), ref, ws.Name, ws.UID)
				}
			}
			if !slices.Equal(names, want[kind]) {
				return fmt.Errorf("%ss labelled %s: %v, want %v", kind, ws.Name, names, want[kind])
			}
		}
		return nil
	})
}

func wsrEnv(c *corev1.Container, name string) *corev1.EnvVar {
	for i := range c.Env {
		if c.Env[i].Name == name {
			return &c.Env[i]
		}
	}
	return nil
}

func wsrReady(ws *v1alpha1.Workspace) *metav1.Condition {
	c := meta.FindStatusCondition(ws.Status.Conditions, v1alpha1.ConditionReady)
	if c == nil {
		return &metav1.Condition{Reason: "(no Ready condition)"}
	}
	return c
}

// The reconciler creates exactly the objects a workspace needs, with the
// defaults carried over from the Host App, and follows spec changes.
func TestWorkspaceReconcilerCreatesItsObjects(t *testing.T) {
	c := newWSRClients(t, "ws-objects")
	ctx := context.Background()

	ide := c.create(t, &v1alpha1.Workspace{
		ObjectMeta: metav1.ObjectMeta{Name: "ide"},
		Spec:       v1alpha1.WorkspaceSpec{Image: wsrCodeServer},
	})
	ide2 := c.create(t, &v1alpha1.Workspace{
		ObjectMeta: metav1.ObjectMeta{Name: "ide2"},
		Spec:       v1alpha1.WorkspaceSpec{Image: wsrCodeServer},
	})
	class := "standard"
	web := c.create(t, &v1alpha1.Workspace{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: v1alpha1.WorkspaceSpec{
			Image:    "nginx:1.27",
			Ports:    []v1alpha1.WorkspacePort{{Port: 3000}, {Name: "debug", Port: 9229}},
			Env:      []v1alpha1.EnvVar{{Name: "A", Value: "1"}, {Name: "B", Value: "2"}},
			Exposure: v1alpha1.ExposureLoadBalancer,
			Storage:  &v1alpha1.WorkspaceStorage{Size: resource.MustParse("1Gi"), StorageClassName: &class},
		},
	})

	c.expectObjects(t, ide, map[string][]string{"Deployment": {"ide"}, "Service": {"ide"}, "Secret": {"ide-password"}})
	c.expectObjects(t, ide2, map[string][]string{"Deployment": {"ide2"}, "Service": {"ide2"}, "Secret": {"ide2-password"}})
	c.expectObjects(t, web, map[string][]string{"Deployment": {"web"}, "Service": {"web"}, "PersistentVolumeClaim": {"web-home"}})
	c.expectOwnFieldsAsApplied(t, "ide")
	c.expectOwnFieldsAsApplied(t, "web")

	// code-server: args, PORT, PASSWORD from the generated Secret, probes.
	d, err := c.kube.AppsV1().Deployments(c.ns).Get(ctx, "ide", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 1 || d.Spec.Template.Labels[guildnet.WorkspaceLabel] != "ide" {
		t.Errorf("ide Deployment: replicas %v, template labels %v", d.Spec.Replicas, d.Spec.Template.Labels)
	}
	ct := &d.Spec.Template.Spec.Containers[0]
	if ct.Name != guildnet.WorkspaceContainerName || ct.Image != wsrCodeServer {
		t.Errorf("container %s image %s", ct.Name, ct.Image)
	}
	// No storage: it opens the image's working directory, as the image's own CMD does.
	if want := []string{"--bind-addr", "0.0.0.0:8080", "--auth", "password", "--disable-telemetry", "--disable-update-check", "."}; !slices.Equal(ct.Args, want) {
		t.Errorf("code-server args = %v, want %v", ct.Args, want)
	}
	if e := wsrEnv(ct, "PORT"); e == nil || e.Value != "8080" {
		t.Errorf("PORT = %+v, want 8080", e)
	}
	if e := wsrEnv(ct, "PASSWORD"); e == nil || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil ||
		e.ValueFrom.SecretKeyRef.Name != "ide-password" || e.ValueFrom.SecretKeyRef.Key != guildnet.WorkspacePasswordKey {
		t.Errorf("PASSWORD = %+v, want secretKeyRef ide-password/password", e)
	}
	if len(ct.Ports) != 1 || ct.Ports[0].ContainerPort != 8080 || ct.Ports[0].Name != "http" {
		t.Errorf("container ports = %+v", ct.Ports)
	}
	for name, p := range map[string]*corev1.Probe{"readiness": ct.ReadinessProbe, "liveness": ct.LivenessProbe} {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/" || p.HTTPGet.Port.IntValue() != 8080 {
			t.Errorf("%s probe = %+v, want HTTP GET / on 8080", name, p)
		}
	}
	// Readiness from the start and often (Running as soon as code-server
	// answers); liveness late and tolerant (a slow start is not a restart).
	if ct.ReadinessProbe.InitialDelaySeconds > 0 || ct.ReadinessProbe.PeriodSeconds > 1 ||
		ct.LivenessProbe.InitialDelaySeconds < 60 || ct.LivenessProbe.FailureThreshold < 3 {
		t.Errorf("probe timings: readiness %+v liveness %+v; want readiness at once every second, liveness after 60 s with 3+ failures", ct.ReadinessProbe, ct.LivenessProbe)
	}
	svc, err := c.kube.CoreV1().Services(c.ns).Get(ctx, "ide", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if svc.Spec.Type != corev1.ServiceTypeClusterIP || !svc.Spec.PublishNotReadyAddresses || svc.Spec.Selector[guildnet.WorkspaceLabel] != "ide" ||
		len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Name != "http" || svc.Spec.Ports[0].Port != 8080 {
		t.Errorf("ide Service spec: %+v", svc.Spec)
	}

	// Generated passwords: present, random, different per workspace.
	password := func(name string) string {
		s, err := c.kube.CoreV1().Secrets(c.ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return string(s.Data[guildnet.WorkspacePasswordKey])
	}
	p1, p2 := password("ide-password"), password("ide2-password")
	if len(p1) < 16 || len(p2) < 16 || p1 == p2 {
		t.Errorf("generated passwords %q and %q: want long, random and different", p1, p2)
	}

	// Not code-server, with storage, two ports, LoadBalancer.
	d, err = c.kube.AppsV1().Deployments(c.ns).Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ct = &d.Spec.Template.Spec.Containers[0]
	if len(ct.Args) != 0 || wsrEnv(ct, "PASSWORD") != nil || wsrEnv(ct, "PORT").Value != "8080" || wsrEnv(ct, "B").Value != "2" {
		t.Errorf("web container: args %v env %+v", ct.Args, ct.Env)
	}
	if d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
		t.Errorf("web strategy = %s, want Recreate (RWO volume)", d.Spec.Strategy.Type)
	}
	vols := d.Spec.Template.Spec.Volumes
	if len(vols) != 1 || vols[0].PersistentVolumeClaim == nil || vols[0].PersistentVolumeClaim.ClaimName != "web-home" ||
		len(ct.VolumeMounts) != 1 || ct.VolumeMounts[0].MountPath != "/home/coder" {
		t.Errorf("web volumes %+v mounts %+v", vols, ct.VolumeMounts)
	}
	if ct.ReadinessProbe.HTTPGet.Port.IntValue() != 3000 {
		t.Errorf("web probes on %v, want the first port 3000", ct.ReadinessProbe.HTTPGet.Port)
	}
	svc, err = c.kube.CoreV1().Services(c.ns).Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if svc.Spec.Type != corev1.ServiceTypeLoadBalancer || len(svc.Spec.Ports) != 2 ||
		svc.Spec.Ports[0].Name != "http" || svc.Spec.Ports[0].Port != 3000 || svc.Spec.Ports[1].Name != "debug" {
		t.Errorf("web Service spec: %+v", svc.Spec)
	}
	pvc, err := c.kube.CoreV1().PersistentVolumeClaims(c.ns).Get(ctx, "web-home", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if q := pvc.Spec.Resources.Requests[corev1.ResourceStorage]; q.String() != "1Gi" ||
		!slices.Equal(pvc.Spec.AccessModes, []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}) ||
		pvc.Spec.StorageClassName == nil || *pvc.Spec.StorageClassName != "standard" {
		t.Errorf("web-home claim spec: %+v", pvc.Spec)
	}

	// A spec change rolls the Deployment; a variable no longer in the spec goes away.
	c.update(t, "web", func(ws *v1alpha1.Workspace) {
		ws.Spec.Image = "nginx:1.28"
		ws.Spec.Env = []v1alpha1.EnvVar{{Name: "A", Value: "changed"}}
		ws.Spec.Exposure = v1alpha1.ExposureClusterIP
	})
	c.deployment(t, "web", "the Deployment follows the new image and env", func(d *appsv1.Deployment) error {
		ct := &d.Spec.Template.Spec.Containers[0]
		if ct.Image != "nginx:1.28" {
			return fmt.Errorf("image %s", ct.Image)
		}
		if a := wsrEnv(ct, "A"); a == nil || a.Value != "changed" || wsrEnv(ct, "B") != nil || wsrEnv(ct, "PORT") == nil {
			return fmt.Errorf("env %+v, want PORT and A=changed without B", ct.Env)
		}
		return nil
	})
	framework.Eventually(t, 30*time.Second, "the Service becomes ClusterIP", func(ctx context.Context) error {
		svc, err := c.kube.CoreV1().Services(c.ns).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if svc.Spec.Type != corev1.ServiceTypeClusterIP {
			return fmt.Errorf("type %s", svc.Spec.Type)
		}
		return nil
	})

	// Many reconciles later, the generated password is still the first one.
	c.update(t, "ide", func(ws *v1alpha1.Workspace) { ws.Spec.Env = []v1alpha1.EnvVar{{Name: "X", Value: "1"}} })
	c.deployment(t, "ide", "ide's Deployment gets X", func(d *appsv1.Deployment) error {
		if wsrEnv(&d.Spec.Template.Spec.Containers[0], "X") == nil {
			return fmt.Errorf("no X in %+v", d.Spec.Template.Spec.Containers[0].Env)
		}
		return nil
	})
	if got := password("ide-password"); got != p1 {
		t.Errorf("the generated password changed after a reconcile")
	}
}

// expectOwnFieldsAsApplied checks that the fields the server records as
// the reconciler's are exactly what the reconciler applies: nothing it
// sends is lost on the way (such as a zero value the server omits), so
// its apply configuration says all it owns.
func (c *wsrClients) expectOwnFieldsAsApplied(t *testing.T, name string) {
	t.Helper()
	ctx := context.Background()
	ws, err := c.gn.Workspaces(c.ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// compare reads what extract finds recorded as the reconciler's in the
	// object get returns, and compares it with applied.
	compare := func(kind string, applied any, get func() (any, error)) {
		t.Helper()
		recorded, err := get()
		if err != nil {
			t.Fatalf("workspace %s: reading its %s: %v", name, kind, err)
		}
		if !equality.Semantic.DeepEqual(recorded, applied) {
			t.Errorf("workspace %s: the %s fields recorded as %s's differ from what it applies (- applied, + recorded):\n%s",
				name, kind, workspace.FieldOwner, diff.Diff(applied, recorded))
		}
	}
	compare("Deployment", workspace.Deployment(ws), func() (any, error) {
		d, err := c.kube.AppsV1().Deployments(c.ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		return appsv1ac.ExtractDeployment(d, workspace.FieldOwner)
	})
	compare("Service", workspace.Service(ws), func() (any, error) {
		s, err := c.kube.CoreV1().Services(c.ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		return corev1ac.ExtractService(s, workspace.FieldOwner)
	})
	if claim := workspace.HomeClaim(ws); claim != nil {
		compare("PersistentVolumeClaim", claim, func() (any, error) {
			pvc, err := c.kube.CoreV1().PersistentVolumeClaims(c.ns).Get(ctx, *claim.Name, metav1.GetOptions{})
			if err != nil {
				return nil, err
			}
			return corev1ac.ExtractPersistentVolumeClaim(pvc, workspace.FieldOwner)
		})
	}
}

// markPodReady plays the kubelet: the pod runs and passes its readiness probe.
func (c *wsrClients) markPodReady(ctx context.Context, pod *corev1.Pod) error {
	return workspacetest.MarkPodReady(ctx, c.kube, pod)
}

// markPodImagePullBackOff plays the kubelet: the image cannot be pulled.
func (c *wsrClients) markPodImagePullBackOff(ctx context.Context, pod *corev1.Pod) error {
	pod.Status.Phase = corev1.PodPending
	pod.Status.ContainerStatuses = []corev1.ContainerStatus{{
		Name: guildnet.WorkspaceContainerName, Image: pod.Spec.Containers[0].Image,
		State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{
			Reason: "ImagePullBackOff", Message: `Back-off pulling image "` + pod.Spec.Containers[0].Image + `"`,
		}},
	}}
	_, err := c.kube.CoreV1().Pods(c.ns).UpdateStatus(ctx, pod, metav1.UpdateOptions{})
	return err
}

// onePod waits for the workspace's one live pod (made by the replicaset controller).
func (c *wsrClients) onePod(t *testing.T, name string) *corev1.Pod {
	t.Helper()
	var pod *corev1.Pod
	framework.Eventually(t, 60*time.Second, "workspace "+name+" has a pod", func(ctx context.Context) error {
		var err error
		pod, err = workspacetest.LivePod(ctx, c.kube, c.ns, name)
		return err
	})
	return pod
}

// A change somebody else makes to what the reconciler applied (kubectl
// edit, scale) is undone: the Deployment is the workspace's spec again.
func TestWorkspaceDeploymentEditIsUndone(t *testing.T) {
	c := newWSRClients(t, "ws-edit")
	ctx := context.Background()
	c.create(t, &v1alpha1.Workspace{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: v1alpha1.WorkspaceSpec{Image: "nginx:1.27"}})
	asApplied := func(d *appsv1.Deployment) error {
		if img := d.Spec.Template.Spec.Containers[0].Image; img != "nginx:1.27" || d.Spec.Replicas == nil || *d.Spec.Replicas != 1 {
			return fmt.Errorf("image %s, replicas %v; want nginx:1.27 and 1", img, d.Spec.Replicas)
		}
		return nil
	}
	applied := c.deployment(t, "web", "web's Deployment is created", asApplied)

	edit := fmt.Sprintf(`{"spec":{"replicas":3,"template":{"spec":{"containers":[{"name":%q,"image":"nginx:edited"}]}}}}`, guildnet.WorkspaceContainerName)
	edited, err := c.kube.AppsV1().Deployments(c.ns).Patch(ctx, "web", types.StrategicMergePatchType, []byte(edit), metav1.PatchOptions{FieldManager: "kubectl-edit"})
	if err != nil {
		t.Fatal(err)
	}
	if edited.Generation == applied.Generation {
		t.Fatalf("the edit left generation %d unchanged", edited.Generation)
	}
	c.deployment(t, "web", "the edit of web's Deployment is undone", func(d *appsv1.Deployment) error {
		if d.Generation == edited.Generation {
			return fmt.Errorf("still the edited generation %d", d.Generation)
		}
		return asApplied(d)
	})
}

// A Service has no generation: an edit of it is noticed by its
// resourceVersion, and undone.
func TestWorkspaceServiceEditIsUndone(t *testing.T) {
	c := newWSRClients(t, "ws-svc-edit")
	ctx := context.Background()
	c.create(t, &v1alpha1.Workspace{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: v1alpha1.WorkspaceSpec{Image: "nginx:1.27"}})
	service := func(what string, check func(*corev1.Service) error) *corev1.Service {
		t.Helper()
		var got *corev1.Service
		framework.Eventually(t, 30*time.Second, what, func(ctx context.Context) error {
			s, err := c.kube.CoreV1().Services(c.ns).Get(ctx, "web", metav1.GetOptions{})
			if err != nil {
				return err
			}
			got = s
			return check(s)
		})
		return got
	}
	publishes := func(s *corev1.Service) error {
		if !s.Spec.PublishNotReadyAddresses {
			return fmt.Errorf("publishNotReadyAddresses is false, want true")
		}
		return nil
	}
	service("web's Service is created", publishes)

	edited, err := c.kube.CoreV1().Services(c.ns).Patch(ctx, "web", types.MergePatchType, []byte(`{"spec":{"publishNotReadyAddresses":false}}`), metav1.PatchOptions{FieldManager: "kubectl-edit"})
	if err != nil {
		t.Fatal(err)
	}
	if edited.Spec.PublishNotReadyAddresses {
		t.Fatal("the edit did not take")
	}
	service("the edit of web's Service is undone", func(s *corev1.Service) error {
		if s.ResourceVersion == edited.ResourceVersion {
			return fmt.Errorf("still the edited resourceVersion %s", s.ResourceVersion)
		}
		return publishes(s)
	})
}

// Status follows the Deployment and pods; suspend scales to zero and keeps
// the home volume; resume scales back; a pod that cannot pull its image
// fails the workspace with a reason; deletion removes everything.
func TestWorkspaceLifecycle(t *testing.T) {
	c := newWSRClients(t, "ws-life")
	ctx := context.Background()
	ws := c.create(t, &v1alpha1.Workspace{
		ObjectMeta: metav1.ObjectMeta{Name: "dev"},
		Spec: v1alpha1.WorkspaceSpec{
			Image:   wsrCodeServer,
			Storage: &v1alpha1.WorkspaceStorage{Size: resource.MustParse("1Gi")},
		},
	})
	proxyTarget := "http://dev." + c.ns + ".svc:8080"
	c.workspace(t, "dev", "dev is Starting with its Service's address", func(ws *v1alpha1.Workspace) error {
		st := ws.Status
		if st.Phase != v1alpha1.WorkspaceStarting || wsrReady(ws).Reason != "Starting" || st.ObservedGeneration != ws.Generation {
			return fmt.Errorf("phase %s, Ready %s, observedGeneration %d", st.Phase, wsrReady(ws).Reason, st.ObservedGeneration)
		}
		if st.ServiceDNS != "dev."+c.ns+".svc" || st.ServiceIP == "" || st.ProxyTarget != proxyTarget {
			return fmt.Errorf("serviceDNS %q serviceIP %q proxyTarget %q", st.ServiceDNS, st.ServiceIP, st.ProxyTarget)
		}
		return nil
	})
	svc, err := c.kube.CoreV1().Services(c.ns).Get(ctx, "dev", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}

	// The kubelet's part: the pod runs and is ready. The replicaset and
	// deployment controllers carry that into the Deployment's status.
	if err := c.markPodReady(ctx, c.onePod(t, "dev")); err != nil {
		t.Fatal(err)
	}
	c.workspace(t, "dev", "dev is Running", func(ws *v1alpha1.Workspace) error {
		if ws.Status.Phase != v1alpha1.WorkspaceRunning || ws.Status.ReadyReplicas != 1 || wsrReady(ws).Status != metav1.ConditionTrue {
			return fmt.Errorf("phase %s, readyReplicas %d, Ready %+v", ws.Status.Phase, ws.Status.ReadyReplicas, wsrReady(ws))
		}
		if ws.Status.ServiceIP != svc.Spec.ClusterIP {
			return fmt.Errorf("serviceIP %s, want the Service's %s", ws.Status.ServiceIP, svc.Spec.ClusterIP)
		}
		return nil
	})

	// Suspend: no replicas, Stopped, the claim stays.
	c.update(t, "dev", func(ws *v1alpha1.Workspace) { ws.Spec.Suspend = true })
	c.deployment(t, "dev", "suspend scales to 0", func(d *appsv1.Deployment) error {
		if *d.Spec.Replicas != 0 {
			return fmt.Errorf("replicas %d", *d.Spec.Replicas)
		}
		return nil
	})
	c.workspace(t, "dev", "dev is Stopped", func(ws *v1alpha1.Workspace) error {
		if ws.Status.Phase != v1alpha1.WorkspaceStopped || wsrReady(ws).Reason != "Suspended" || ws.Status.ReadyReplicas != 0 {
			return fmt.Errorf("phase %s, Ready %+v, readyReplicas %d", ws.Status.Phase, wsrReady(ws), ws.Status.ReadyReplicas)
		}
		return nil
	})
	if pvc, err := c.kube.CoreV1().PersistentVolumeClaims(c.ns).Get(ctx, "dev-home", metav1.GetOptions{}); err != nil || !pvc.DeletionTimestamp.IsZero() {
		t.Fatalf("suspended: the home claim must stay: %v, %+v", err, pvc)
	}

	// Resume: one replica again, the workspace starts.
	c.update(t, "dev", func(ws *v1alpha1.Workspace) { ws.Spec.Suspend = false })
	c.deployment(t, "dev", "resume scales to 1", func(d *appsv1.Deployment) error {
		if *d.Spec.Replicas != 1 {
			return fmt.Errorf("replicas %d", *d.Spec.Replicas)
		}
		return nil
	})

	// The kubelet's part: the new pod cannot pull its image.
	if err := c.markPodImagePullBackOff(ctx, c.onePod(t, "dev")); err != nil {
		t.Fatal(err)
	}
	c.workspace(t, "dev", "dev is Failed with ImagePullBackOff", func(ws *v1alpha1.Workspace) error {
		r := wsrReady(ws)
		if ws.Status.Phase != v1alpha1.WorkspaceFailed || r.Reason != "ImagePullBackOff" || !strings.Contains(r.Message, "spec.image") {
			return fmt.Errorf("phase %s, Ready %+v", ws.Status.Phase, r)
		}
		return nil
	})

	// Deletion: the garbage collector removes what the workspace owned.
	if err := c.gn.Workspaces(c.ns).Delete(ctx, "dev", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	framework.Eventually(t, 90*time.Second, "deleting the workspace removes its Deployment, Service, Secret and claim", func(ctx context.Context) error {
		got, err := c.objects(ctx, ws.Name)
		if err != nil {
			return err
		}
		for kind, objs := range got {
			if len(objs) > 0 {
				return fmt.Errorf("%s %s still there", kind, objs[0].GetName())
			}
		}
		return nil
	})
}

// An idle workspace is suspended after spec.idleTimeout; one whose
// lastActivityTime keeps moving is not, and the reconciler never overwrites
// that time. A resumed workspace gets a full timeout again.
func TestWorkspaceIdleTimeout(t *testing.T) {
	c := newWSRClients(t, "ws-idle")
	ctx := context.Background()
	timeout := &metav1.Duration{Duration: 3 * time.Second}
	for _, name := range []string{"idle", "busy"} {
		c.create(t, &v1alpha1.Workspace{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec:       v1alpha1.WorkspaceSpec{Image: "nginx:1.27", IdleTimeout: timeout},
		})
	}

	// Plays workspaces/proxy for "busy": records activity through the status
	// subresource for three idle timeouts, twice a second (lastActivityTime
	// has one-second precision, and this machine may be slow to answer).
	type activity struct {
		last metav1.Time
		err  error
	}
	done := make(chan activity, 1)
	go func() {
		var a activity
		defer func() { done <- a }()
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for end := time.Now().Add(3 * timeout.Duration); time.Now().Before(end); <-tick.C {
			a.err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
				ws, err := c.gn.Workspaces(c.ns).Get(ctx, "busy", metav1.GetOptions{})
				if err != nil {
					return err
				}
				now := metav1.Now()
				ws.Status.LastActivityTime = &now
				if _, err := c.gn.Workspaces(c.ns).UpdateStatus(ctx, ws, metav1.UpdateOptions{}); err != nil {
					return err
				}
				a.last = now
				return nil
			})
			if a.err != nil {
				return
			}
		}
	}()

	c.workspace(t, "idle", "the idle workspace is suspended", func(ws *v1alpha1.Workspace) error {
		r := wsrReady(ws)
		if !ws.Spec.Suspend || ws.Status.Phase != v1alpha1.WorkspaceStopped || r.Reason != "IdleTimeout" ||
			r.Message != "suspended after 3s of inactivity; set spec.suspend=false to resume" {
			return fmt.Errorf("suspend %v, phase %s, Ready %+v", ws.Spec.Suspend, ws.Status.Phase, r)
		}
		return nil
	})
	c.deployment(t, "idle", "the idle workspace's Deployment has no replicas", func(d *appsv1.Deployment) error {
		if *d.Spec.Replicas != 0 {
			return fmt.Errorf("replicas %d", *d.Spec.Replicas)
		}
		return nil
	})

	// While activity is recorded, "busy" stays up; checked until the refresher ends.
	var a activity
	check := time.NewTicker(200 * time.Millisecond)
	defer check.Stop()
wait:
	for {
		select {
		case a = <-done:
			break wait
		case <-check.C:
			ws, err := c.gn.Workspaces(c.ns).Get(ctx, "busy", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if ws.Spec.Suspend {
				t.Fatalf("busy was suspended although used %s ago (lastActivityTime %v)", time.Since(ws.Status.LastActivityTime.Time), ws.Status.LastActivityTime)
			}
		}
	}
	if a.err != nil {
		t.Fatalf("recording activity: %v", a.err)
	}
	busy, err := c.gn.Workspaces(c.ns).Get(ctx, "busy", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if last := a.last.Rfc3339Copy(); busy.Status.LastActivityTime == nil || !busy.Status.LastActivityTime.Equal(&last) {
		t.Errorf("lastActivityTime = %v, want the last one recorded, %v", busy.Status.LastActivityTime, a.last)
	}
	// Once nobody uses it, "busy" goes idle too.
	c.workspace(t, "busy", "busy is suspended once activity stops", func(ws *v1alpha1.Workspace) error {
		if !ws.Spec.Suspend || wsrReady(ws).Reason != "IdleTimeout" {
			return fmt.Errorf("suspend %v, Ready %+v", ws.Spec.Suspend, wsrReady(ws))
		}
		return nil
	})

	// Resume "idle": its clock starts at the resume, so it runs for a
	// full timeout (not suspended at once because it was idle for long).
	resumed := time.Now()
	patch := []byte(`{"spec":{"suspend":false}}`)
	if _, err := c.gn.Workspaces(c.ns).Patch(ctx, "idle", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	c.workspace(t, "idle", "the resume is recorded", func(ws *v1alpha1.Workspace) error {
		s := meta.FindStatusCondition(ws.Status.Conditions, "Suspended")
		if s == nil || s.Status != metav1.ConditionFalse || s.Reason != "Resumed" {
			return fmt.Errorf("Suspended condition %+v, spec.suspend %v", s, ws.Spec.Suspend)
		}
		if ws.Spec.Suspend {
			return fmt.Errorf("suspended again right after the resume")
		}
		return nil
	})
	c.workspace(t, "idle", "the resumed workspace goes idle again", func(ws *v1alpha1.Workspace) error {
		if !ws.Spec.Suspend {
			return fmt.Errorf("not suspended yet")
		}
		return nil
	})
	// lastTransitionTime has one-second precision: allow for it.
	if ran := time.Since(resumed); ran < timeout.Duration-time.Second {
		t.Errorf("resumed workspace suspended again after %s, want about its idle timeout %s", ran, timeout.Duration)
	}
}
