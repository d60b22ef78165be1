package devenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func criClient(socket string) (runtimeapi.RuntimeServiceClient, func(), error) {
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, nil, err
	}
	return runtimeapi.NewRuntimeServiceClient(conn), func() { conn.Close() }, nil
}

// criVersion succeeds once containerd serves the CRI.
func criVersion(ctx context.Context, socket string) error {
	c, done, err := criClient(socket)
	if err != nil {
		return err
	}
	defer done()
	_, err = c.Version(ctx, &runtimeapi.VersionRequest{})
	return err
}

// removeAllPods stops and removes every pod sandbox through the CRI, as
// the kubelet would: containerd stops the containers, runs the CNI plugin's
// DEL (the pod's veth and address go) and unmounts the network namespace.
func removeAllPods(ctx context.Context, socket string) error {
	c, done, err := criClient(socket)
	if err != nil {
		return err
	}
	defer done()
	list, err := c.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		return fmt.Errorf("listing pods in containerd: %w", err)
	}
	var errs []error
	for _, sb := range list.Items {
		if _, err := c.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: sb.Id}); err != nil {
			errs = append(errs, fmt.Errorf("stopping pod %s/%s: %w", sb.Metadata.GetNamespace(), sb.Metadata.GetName(), err))
			continue
		}
		if _, err := c.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sb.Id}); err != nil {
			errs = append(errs, fmt.Errorf("removing pod %s/%s: %w", sb.Metadata.GetNamespace(), sb.Metadata.GetName(), err))
		}
	}
	return errors.Join(errs...)
}

// killTree sends SIGKILL to pid and every process below it.
func killTree(pid int) error {
	below, err := Descendants(pid)
	for _, p := range append([]int{pid}, below...) {
		_ = syscall.Kill(p, syscall.SIGKILL)
	}
	return err
}

// Descendants lists the processes below pid (children first, then theirs),
// read from /proc.
func Descendants(pid int) ([]int, error) {
	children := map[int][]int{}
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	for _, p := range procs {
		child, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", p.Name(), "stat"))
		if err != nil {
			continue
		}
		// The command name in parentheses may hold spaces; the fields after
		// the last ')' are state, ppid, ...
		end := strings.LastIndexByte(string(stat), ')')
		if end < 0 {
			continue
		}
		f := strings.Fields(string(stat[end+1:]))
		if len(f) < 2 {
			continue
		}
		if ppid, err := strconv.Atoi(f[1]); err == nil {
			children[ppid] = append(children[ppid], child)
		}
	}
	var out []int
	for queue := []int{pid}; len(queue) > 0; queue = queue[1:] {
		for _, c := range children[queue[0]] {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
