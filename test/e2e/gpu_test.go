package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/eci-dev/eci/internal/agent"
	"github.com/eci-dev/eci/internal/poll"
	"github.com/eci-dev/eci/internal/testbed"
)

// GPUs through CDI, on a machine without any: the bed's containerd reads
// a CDI spec of two pretend nvidia.com/gpu devices (each sets an
// environment variable and mounts a file, where a real one gives device
// nodes); the agent finds them there, as it would the vendor's spec. The
// virtual node offers nvidia.com/gpu: 2. Two pods of one GPU each run,
// each with its own device, and a container of the same pod that asks for
// none sees none; a third stays Pending (Insufficient nvidia.com/gpu, the
// cluster's scheduler's words) until one of the first two is deleted,
// then runs with the device it freed.
func TestGPUs(t *testing.T) {
	bed := testbed.New(t, testbed.Options{Kube: true, Containerd: true})
	writeFakeGPUs(t, bed.Containerd.CDIDir, 2)
	c := startOn(t, bed, func(cfg *agent.Config) {
		devices, err := agent.DiscoverGPUs([]string{bed.Containerd.CDIDir}, "nvidia.com/gpu")
		if err != nil || len(devices) != 2 {
			t.Fatalf("the pretend GPUs: %v, %v", devices, err)
		}
		cfg.UseGPUs(devices)
	})
	ctx := context.Background()
	ns := "default"
	poll.Eventually(t, 30*time.Second, "the node offers nvidia.com/gpu: 2", func() error {
		n, err := c.kube.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if q := n.Status.Allocatable["nvidia.com/gpu"]; q.Value() != 2 {
			return fmt.Errorf("allocatable nvidia.com/gpu %v", q.String())
		}
		return nil
	})
	gpu := corev1.ResourceRequirements{Limits: corev1.ResourceList{"nvidia.com/gpu": resource.MustParse("1")}}
	show := []string{"sh", "-c", "env | grep ECI_FAKE_GPU | sort; cat /dev/fake-gpu* 2>/dev/null; echo done; sleep 3600"}
	pod := func(name string, plain bool) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.PodSpec{Containers: []corev1.Container{
			{Name: "main", Image: c.bed.Registry.Busybox, Command: show, Resources: gpu}}}}
		if plain {
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "plain", Image: c.bed.Registry.Busybox, Command: show})
		}
		return p
	}
	c.createPod(t, ns, pod("g1", false))
	c.createPod(t, ns, pod("g2", true))
	for _, name := range []string{"g1", "g2"} {
		c.waitPod(t, ns, name, "Running", 90*time.Second, running)
	}
	g1, g2 := c.gpuOf(t, ns, "g1", "main"), c.gpuOf(t, ns, "g2", "main")
	if g1 == g2 {
		t.Fatalf("both pods have GPU %s", g1)
	}
	if plain := c.gpuOf(t, ns, "g2", "plain"); plain != "" {
		t.Errorf("a container asking for no GPU has %q", plain)
	}

	c.createPod(t, ns, pod("g3", false))
	c.waitPod(t, ns, "g3", "Unschedulable for want of a GPU", 60*time.Second, func(p *corev1.Pod) error {
		for _, cond := range p.Status.Conditions {
			if cond.Type == corev1.PodScheduled && cond.Reason == corev1.PodReasonUnschedulable && strings.Contains(cond.Message, "Insufficient nvidia.com/gpu") {
				return nil
			}
		}
		return fmt.Errorf("node %q, conditions %+v", p.Spec.NodeName, p.Status.Conditions)
	})
	if err := c.kube.CoreV1().Pods(ns).Delete(ctx, "g1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	c.waitPod(t, ns, "g3", "Running once g1 freed its GPU", 120*time.Second, running)
	if g3 := c.gpuOf(t, ns, "g3", "main"); g3 != g1 {
		t.Errorf("g3 has GPU %q, want g1's %q", g3, g1)
	}
}

// writeFakeGPUs writes a CDI spec of n pretend nvidia.com/gpu devices into
// dir: device i sets ECI_FAKE_GPU_i=present and mounts a file reading
// "gpu i" at /dev/fake-gpu<i>.
func writeFakeGPUs(t *testing.T, dir string, n int) {
	t.Helper()
	var devices []string
	for i := range n {
		file := filepath.Join(dir, fmt.Sprintf("gpu%d", i))
		if err := os.WriteFile(file, fmt.Appendf(nil, "gpu %d\n", i), 0o644); err != nil {
			t.Fatal(err)
		}
		devices = append(devices, fmt.Sprintf(`{"name": "%d", "containerEdits": {"env": ["ECI_FAKE_GPU_%d=present"], `+
			`"mounts": [{"hostPath": %q, "containerPath": "/dev/fake-gpu%d", "options": ["ro", "bind"]}]}}`, i, i, file, i))
	}
	spec := `{"cdiVersion": "0.6.0", "kind": "nvidia.com/gpu", "devices": [` + strings.Join(devices, ", ") + `]}`
	if err := os.WriteFile(filepath.Join(dir, "fake-gpus.json"), []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
}

// gpuOf is the pretend GPU container of pod sees ("" for none): its
// environment and mounted file must agree.
func (c *cluster) gpuOf(t *testing.T, ns, pod, container string) string {
	t.Helper()
	var raw []byte
	poll.Eventually(t, 30*time.Second, "the log of "+pod+"/"+container, func() (err error) {
		raw, err = c.kube.CoreV1().Pods(ns).GetLogs(pod, &corev1.PodLogOptions{Container: container}).Do(context.Background()).Raw()
		if err == nil && !strings.Contains(string(raw), "done") {
			err = fmt.Errorf("not done: %s", raw)
		}
		return err
	})
	var envs, files []string
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		switch {
		case strings.HasPrefix(line, "ECI_FAKE_GPU_"):
			envs = append(envs, strings.TrimSuffix(strings.TrimPrefix(line, "ECI_FAKE_GPU_"), "=present"))
		case strings.HasPrefix(line, "gpu "):
			files = append(files, strings.TrimPrefix(line, "gpu "))
		}
	}
	if strings.Join(envs, ",") != strings.Join(files, ",") || len(envs) > 1 {
		t.Fatalf("%s/%s sees GPUs %v by env and %v by file, want the same one at most", pod, container, envs, files)
	}
	return strings.Join(envs, ",")
}
