package testbed

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
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

// eventually polls cond every 100 ms until it returns nil or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true after %s: %v", what, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
