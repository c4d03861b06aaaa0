package testbed

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/eci-dev/eci/internal/poll"
)

// testPod is a pod sandbox with one busybox container, run through CRI.
type testPod struct {
	SandboxID, ContainerID string
	IP                     string
	LogPath                string
}

// runBusyboxPod pulls busybox from the bed's registry and runs script in a
// container of a new sandbox under the bed's cgroup parent.
func runBusyboxPod(ctx context.Context, t *testing.T, b *Bed, name, script string) testPod {
	t.Helper()
	c := b.Containerd
	img := &runtimeapi.ImageSpec{Image: b.Registry.Busybox}
	if _, err := c.Images.PullImage(ctx, img, nil, nil); err != nil {
		t.Fatalf("pull %s: %v", b.Registry.Busybox, err)
	}
	uid := name + "-uid"
	logDir := filepath.Join(c.LogDir, uid)
	sandboxCfg := &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: name, Namespace: "bed", Uid: uid},
		Hostname:     name,
		LogDirectory: logDir,
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			CgroupParent: b.CgroupParent + "/" + name,
		},
	}
	podID, err := c.Runtime.RunPodSandbox(ctx, sandboxCfg, "")
	if err != nil {
		t.Fatalf("run pod sandbox: %v", err)
	}
	ctrCfg := &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: "main"},
		Image:    img,
		Command:  []string{"/bin/sh", "-c", script},
		LogPath:  "main.log",
		Linux:    &runtimeapi.LinuxContainerConfig{Resources: &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 64 << 20}},
	}
	ctrID, err := c.Runtime.CreateContainer(ctx, podID, ctrCfg, sandboxCfg)
	if err != nil {
		t.Fatalf("create container: %v", err)
	}
	if err := c.Runtime.StartContainer(ctx, ctrID); err != nil {
		t.Fatalf("start container: %v", err)
	}
	st, err := c.Runtime.PodSandboxStatus(ctx, podID, false)
	if err != nil {
		t.Fatalf("pod sandbox status: %v", err)
	}
	return testPod{
		SandboxID: podID, ContainerID: ctrID,
		IP:      st.GetStatus().GetNetwork().GetIp(),
		LogPath: filepath.Join(logDir, "main.log"),
	}
}

// runKubeletPod creates a busybox pod for the bed's kubelet and waits until it runs.
func runKubeletPod(ctx context.Context, t *testing.T, b *Bed, name string) {
	t.Helper()
	cs := b.Kube.Client
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: corev1.PodSpec{
			NodeName:   b.Kubelet.NodeName,
			Containers: []corev1.Container{{Name: "main", Image: b.Registry.Busybox, Command: []string{"sleep", "3600"}}},
		},
	}
	if _, err := cs.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, 2*time.Minute, "pod "+name+" runs on the kubelet", func() error {
		p, err := cs.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if p.Status.Phase != corev1.PodRunning {
			return fmt.Errorf("phase %s", p.Status.Phase)
		}
		return nil
	})
}
