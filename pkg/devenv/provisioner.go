package devenv

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
)

// startLocalProvisioner gives the local node storage: a default
// StorageClass whose claims become hostPath volumes in folders under dir
// (one node, so a folder on it is as good as a disk), deleted with their
// claim. Kubernetes ships no provisioner a bare cluster could use
// (kube-controller-manager's hostpath one writes under /tmp, outside the
// environment's folder).
func startLocalProvisioner(ctx context.Context, kube kubernetes.Interface, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	bind := storagev1.VolumeBindingImmediate
	reclaim := corev1.PersistentVolumeReclaimDelete
	_, err := kube.StorageV1().StorageClasses().Create(ctx, &storagev1.StorageClass{
		ObjectMeta: metav1.ObjectMeta{Name: StorageClassName, Annotations: map[string]string{
			"storageclass.kubernetes.io/is-default-class": "true",
		}},
		Provisioner:       provisionerName,
		ReclaimPolicy:     &reclaim,
		VolumeBindingMode: &bind,
	}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating StorageClass %s: %w", StorageClassName, err)
	}
	p := &localProvisioner{kube: kube, dir: dir}
	factory := informers.NewSharedInformerFactory(kube, 10*time.Minute)
	claims := factory.Core().V1().PersistentVolumeClaims().Informer()
	volumes := factory.Core().V1().PersistentVolumes().Informer()
	onClaim := func(obj any) {
		if pvc, ok := obj.(*corev1.PersistentVolumeClaim); ok {
			p.provision(ctx, pvc)
		}
	}
	onVolume := func(obj any) {
		if pv, ok := obj.(*corev1.PersistentVolume); ok {
			p.reclaim(ctx, pv)
		}
	}
	if _, err := claims.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: onClaim, UpdateFunc: func(_, o any) { onClaim(o) }}); err != nil {
		return err
	}
	if _, err := volumes.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: onVolume, UpdateFunc: func(_, o any) { onVolume(o) }}); err != nil {
		return err
	}
	factory.Start(ctx.Done())
	return nil
}

type localProvisioner struct {
	kube kubernetes.Interface
	dir  string
}

func volumeName(pvc *corev1.PersistentVolumeClaim) string { return "pvc-" + string(pvc.UID) }

func (p *localProvisioner) provision(ctx context.Context, pvc *corev1.PersistentVolumeClaim) {
	if pvc.Spec.VolumeName != "" || pvc.Spec.StorageClassName == nil || *pvc.Spec.StorageClassName != StorageClassName || pvc.DeletionTimestamp != nil {
		return
	}
	name := volumeName(pvc)
	path := filepath.Join(p.dir, name)
	// World-writable: hostPath volumes get no fsGroup, and a workspace
	// image may run as any user.
	if err := os.MkdirAll(path, 0o777); err != nil {
		klog.ErrorS(err, "Making a local volume", "claim", klog.KObj(pvc))
		return
	}
	_ = os.Chmod(path, 0o777)
	hostPathType := corev1.HostPathDirectory
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{"pv.kubernetes.io/provisioned-by": provisionerName}},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: pvc.Spec.Resources.Requests[corev1.ResourceStorage]},
			AccessModes:                   pvc.Spec.AccessModes,
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimDelete,
			StorageClassName:              StorageClassName,
			ClaimRef:                      &corev1.ObjectReference{Kind: "PersistentVolumeClaim", Namespace: pvc.Namespace, Name: pvc.Name, UID: pvc.UID},
			PersistentVolumeSource: corev1.PersistentVolumeSource{
				HostPath: &corev1.HostPathVolumeSource{Path: path, Type: &hostPathType},
			},
		},
	}
	if _, err := p.kube.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		klog.ErrorS(err, "Creating a local volume", "claim", klog.KObj(pvc))
	}
}

func (p *localProvisioner) reclaim(ctx context.Context, pv *corev1.PersistentVolume) {
	if pv.Annotations["pv.kubernetes.io/provisioned-by"] != provisionerName || pv.Status.Phase != corev1.VolumeReleased ||
		pv.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimDelete || pv.Spec.HostPath == nil {
		return
	}
	path := pv.Spec.HostPath.Path
	if !strings.HasPrefix(path, p.dir+string(filepath.Separator)) {
		return // never delete outside our folder, whatever a PV says
	}
	if err := os.RemoveAll(path); err != nil {
		klog.ErrorS(err, "Deleting a local volume's folder", "volume", pv.Name)
		return
	}
	if err := p.kube.CoreV1().PersistentVolumes().Delete(ctx, pv.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		klog.ErrorS(err, "Deleting a local volume", "volume", pv.Name)
	}
}
