package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"

	"github.com/eci-dev/eci/internal/poll"
)

// In-place resize (the resize subresource, kubectl patch --subresource
// resize) of two containers at once on the virtual node, as on a 1.35
// kubelet: within the instance's size (0.3 vCPU asked, a 0.5 vCPU
// instance), a's CPU rises in place (its cgroup's CPU quota changes, it is
// not restarted) and b's memory falls by a restart (its resizePolicy says
// RestartContainer); the container statuses say the new limits and the
// kubelet's Events tell it. Then more than the instance has is
// PodResizePending (Infeasible), and nothing changes.
func TestInPlaceResize(t *testing.T) {
	c := start(t)
	ns := "default"
	res := func(cpu, mem string) corev1.ResourceRequirements {
		l := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse(mem)}
		return corev1.ResourceRequirements{Requests: l, Limits: l}
	}
	sleep := []string{"sleep", "3600"}
	c.createPod(t, ns, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "resize"}, Spec: corev1.PodSpec{Containers: []corev1.Container{
		{Name: "a", Image: c.bed.Registry.Busybox, Command: sleep, Resources: res("200m", "256Mi")},
		{Name: "b", Image: c.bed.Registry.Busybox, Command: sleep, Resources: res("100m", "256Mi"),
			ResizePolicy: []corev1.ContainerResizePolicy{{ResourceName: corev1.ResourceMemory, RestartPolicy: corev1.RestartContainer}}},
	}}})
	c.waitPod(t, ns, "resize", "Running, both ready", 90*time.Second, func(p *corev1.Pod) error {
		if p.Status.Phase != corev1.PodRunning || len(p.Status.ContainerStatuses) != 2 || !p.Status.ContainerStatuses[0].Ready || !p.Status.ContainerStatuses[1].Ready {
			return fmt.Errorf("phase %s %v", p.Status.Phase, p.Status.ContainerStatuses)
		}
		return nil
	})
	c.cgroupIs(t, ns, "resize", "a", cpuQuota, "20000")
	c.cgroupIs(t, ns, "resize", "b", memoryLimit, fmt.Sprint(256<<20))

	patch := `{"spec":{"containers":[` +
		`{"name":"a","resources":{"requests":{"cpu":"400m"},"limits":{"cpu":"400m"}}},` +
		`{"name":"b","resources":{"requests":{"memory":"128Mi"},"limits":{"memory":"128Mi"}}}]}}`
	if out, err := c.kubectlIn(nil, "patch", "pod", "resize", "-n", ns, "--subresource", "resize", "--patch", patch); err != nil {
		t.Fatalf("kubectl patch --subresource resize: %v\n%s", err, out)
	}
	p := c.waitPod(t, ns, "resize", "resized", 60*time.Second, func(p *corev1.Pod) error {
		for _, cond := range p.Status.Conditions {
			if cond.Type == corev1.PodResizePending || cond.Type == corev1.PodResizeInProgress {
				return fmt.Errorf("condition %s %s: %s", cond.Type, cond.Reason, cond.Message)
			}
		}
		a, b := p.Status.ContainerStatuses[0], p.Status.ContainerStatuses[1]
		if a.Resources == nil || b.Resources == nil || a.Resources.Limits.Cpu().MilliValue() != 400 || b.Resources.Limits.Memory().Value() != 128<<20 || !b.Ready {
			return fmt.Errorf("statuses %+v %+v", a.Resources, b.Resources)
		}
		if a.AllocatedResources.Cpu().MilliValue() != 400 || b.AllocatedResources.Memory().Value() != 128<<20 {
			return fmt.Errorf("allocated %v %v", a.AllocatedResources, b.AllocatedResources)
		}
		return nil
	})
	if a, b := p.Status.ContainerStatuses[0], p.Status.ContainerStatuses[1]; a.RestartCount != 0 || b.RestartCount != 1 {
		t.Errorf("restarts: a %d (in place, want 0), b %d (RestartContainer, want 1)", a.RestartCount, b.RestartCount)
	}
	c.cgroupIs(t, ns, "resize", "a", cpuQuota, "40000")
	c.cgroupIs(t, ns, "resize", "b", memoryLimit, fmt.Sprint(128<<20))
	c.eventsSay(t, ns, p, map[string]string{
		"ResizeStarted":   "Pod resize started: ",
		"ResizeCompleted": "Pod resize completed: ",
		"Killing":         "Container b resize requires restart",
	})

	// More than the 0.5 vCPU instance has: pending, as infeasible.
	patch = `{"spec":{"containers":[{"name":"a","resources":{"requests":{"cpu":"1"},"limits":{"cpu":"1"}}}]}}`
	if out, err := c.kubectlIn(nil, "patch", "pod", "resize", "-n", ns, "--subresource", "resize", "--patch", patch); err != nil {
		t.Fatalf("kubectl patch --subresource resize: %v\n%s", err, out)
	}
	p = c.waitPod(t, ns, "resize", "PodResizePending", 60*time.Second, func(p *corev1.Pod) error {
		for _, cond := range p.Status.Conditions {
			if cond.Type == corev1.PodResizePending && cond.Reason == corev1.PodReasonInfeasible &&
				strings.Contains(cond.Message, "more than the instance's size, 0.5 vCPU") && cond.ObservedGeneration == p.Generation {
				return nil
			}
		}
		return fmt.Errorf("conditions %+v", p.Status.Conditions)
	})
	if a := p.Status.ContainerStatuses[0]; a.Resources.Limits.Cpu().MilliValue() != 400 || a.AllocatedResources.Cpu().MilliValue() != 400 || a.RestartCount != 0 {
		t.Errorf("an infeasible resize changed a: %+v, %v, restarts %d", a.Resources, a.AllocatedResources, a.RestartCount)
	}
	c.cgroupIs(t, ns, "resize", "a", cpuQuota, "40000")
	c.eventsSay(t, ns, p, map[string]string{"ResizeInfeasible": "Pod resize Infeasible: "})
}

// What a container reads of its own cgroup: its CPU quota (per 100 ms
// period) and memory limit, from cgroup v2's files or v1's (runc mounts
// the container's own cgroup at /sys/fs/cgroup either way; this kind of
// machine has v1 only, docs/dependencies.md).
const (
	cpuQuota    = `{ cut -d' ' -f1 /sys/fs/cgroup/cpu.max || cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us; } 2>/dev/null`
	memoryLimit = `{ cat /sys/fs/cgroup/memory.max || cat /sys/fs/cgroup/memory/memory.limit_in_bytes; } 2>/dev/null`
)

// cgroupIs waits until script (cpuQuota, memoryLimit) run in container
// prints want.
func (c *cluster) cgroupIs(t *testing.T, ns, pod, container, script, want string) {
	t.Helper()
	poll.Eventually(t, 30*time.Second, container+"'s cgroup", func() error {
		out, err := c.kubectlIn(nil, "exec", "-n", ns, pod, "-c", container, "--", "sh", "-c", script)
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		if got := strings.TrimSpace(string(out)); got != want {
			return fmt.Errorf("%s gives %q, want %q", script, got, want)
		}
		return nil
	})
}

// eventsSay waits until pod has an Event of each reason whose message
// begins with the given words.
func (c *cluster) eventsSay(t *testing.T, ns string, pod *corev1.Pod, want map[string]string) {
	t.Helper()
	poll.Eventually(t, 30*time.Second, "the pod's Events", func() error {
		evs, err := c.kube.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("involvedObject.uid", string(pod.UID)).String()})
		if err != nil {
			return err
		}
		for reason, words := range want {
			found := false
			for _, ev := range evs.Items {
				found = found || (ev.Reason == reason && strings.HasPrefix(ev.Message, words))
			}
			if !found {
				return fmt.Errorf("no %s Event saying %q among %d", reason, words, len(evs.Items))
			}
		}
		return nil
	})
}
