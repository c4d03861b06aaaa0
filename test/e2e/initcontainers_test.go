package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/eci-dev/eci/internal/poll"
)

// Init containers on the virtual node as on a kubelet: in a restartPolicy
// Always pod a failing one is retried with back-off (kubectl:
// Init:CrashLoopBackOff) while the app container waits, PodInitializing,
// never started; in a Never pod they run in order and the first failing one
// fails the pod, no app container having run.
func TestInitContainers(t *testing.T) {
	c := start(t)
	ctx := context.Background()
	ns := "default"
	busybox := c.bed.Registry.Busybox

	c.createPod(t, ns, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "init-always"}, Spec: corev1.PodSpec{
		InitContainers: []corev1.Container{{Name: "setup", Image: busybox, Command: []string{"sh", "-c", "exit 1"}}},
		Containers:     []corev1.Container{{Name: "main", Image: busybox, Command: []string{"sleep", "3600"}}},
	}})
	c.waitPod(t, ns, "init-always", "Init:CrashLoopBackOff, main PodInitializing", 90*time.Second, func(p *corev1.Pod) error {
		if len(p.Status.InitContainerStatuses) != 1 || len(p.Status.ContainerStatuses) != 1 {
			return fmt.Errorf("statuses %v %v", p.Status.InitContainerStatuses, p.Status.ContainerStatuses)
		}
		ic, mc := p.Status.InitContainerStatuses[0], p.Status.ContainerStatuses[0]
		if ic.RestartCount < 1 || ic.State.Waiting == nil || ic.State.Waiting.Reason != "CrashLoopBackOff" {
			return fmt.Errorf("init container %+v", ic)
		}
		if p.Status.Phase != corev1.PodPending || mc.State.Waiting == nil || mc.State.Waiting.Reason != "PodInitializing" || mc.ContainerID != "" || mc.RestartCount != 0 {
			return fmt.Errorf("phase %s, main %+v", p.Status.Phase, mc)
		}
		return nil
	})
	poll.Eventually(t, 30*time.Second, "kubectl shows Init:CrashLoopBackOff", func() error {
		out, err := c.kubectlIn(nil, "get", "pod", "-n", ns, "init-always", "--no-headers")
		if err != nil || !strings.Contains(string(out), "Init:CrashLoopBackOff") {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})

	// Never: one writes, two checks it was written first and fails, main
	// would mark the volume.
	c.createPod(t, ns, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "init-never"}, Spec: corev1.PodSpec{
		RestartPolicy: corev1.RestartPolicyNever,
		InitContainers: []corev1.Container{
			{Name: "one", Image: busybox, Command: []string{"sh", "-c", "touch /shared/one"}, VolumeMounts: []corev1.VolumeMount{{Name: "shared", MountPath: "/shared"}}},
			{Name: "two", Image: busybox, Command: []string{"sh", "-c", "test -f /shared/one && exit 3"}, VolumeMounts: []corev1.VolumeMount{{Name: "shared", MountPath: "/shared"}}},
			{Name: "three", Image: busybox, Command: []string{"true"}},
		},
		Containers: []corev1.Container{{Name: "main", Image: busybox, Command: []string{"touch", "/shared/main"}, VolumeMounts: []corev1.VolumeMount{{Name: "shared", MountPath: "/shared"}}}},
		Volumes:    []corev1.Volume{{Name: "shared", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
	}})
	p := c.waitPod(t, ns, "init-never", "Failed by init container two", 90*time.Second, func(p *corev1.Pod) error {
		if p.Status.Phase != corev1.PodFailed {
			return fmt.Errorf("phase %s %v", p.Status.Phase, p.Status.InitContainerStatuses)
		}
		return nil
	})
	ics := p.Status.InitContainerStatuses
	if len(ics) != 3 || ics[0].State.Terminated == nil || ics[0].State.Terminated.ExitCode != 0 ||
		ics[1].State.Terminated == nil || ics[1].State.Terminated.ExitCode != 3 || ics[2].ContainerID != "" {
		t.Fatalf("init containers: %+v", ics)
	}
	if mc := p.Status.ContainerStatuses[0]; mc.ContainerID != "" || mc.State.Waiting == nil || mc.State.Waiting.Reason != "PodInitializing" {
		t.Fatalf("main ran or ended: %+v", mc)
	}
	if err := c.kube.CoreV1().Pods(ns).Delete(ctx, "init-always", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
}
