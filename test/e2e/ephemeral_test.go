package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/eci-dev/eci/internal/poll"
)

// kubectl debug on the virtual node: an ephemeral container targeting the
// pod's container runs in the instance, sees the target's processes (its
// process namespace), shows in ephemeralContainerStatuses, and answers
// kubectl logs and exec by its name; the pod's own container is not
// restarted.
func TestKubectlDebug(t *testing.T) {
	c := start(t)
	ns := "default"
	c.createPod(t, ns, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "debugged"}, Spec: corev1.PodSpec{
		Containers: []corev1.Container{{Name: "main", Image: c.bed.Registry.Busybox, Command: []string{"sleep", "3601"}}}}})
	c.waitPod(t, ns, "debugged", "Running", 90*time.Second, running)
	if out, err := c.kubectlIn(nil, "debug", "-n", ns, "debugged", "--image="+c.bed.Registry.Busybox, "--target=main", "-c", "debugger",
		"--profile=baseline", "--", "sh", "-c", "ps; echo done; exec sleep 3600"); err != nil {
		t.Fatalf("kubectl debug: %v\n%s", err, out)
	}
	p := c.waitPod(t, ns, "debugged", "the debugger running", 60*time.Second, func(p *corev1.Pod) error {
		if len(p.Status.EphemeralContainerStatuses) != 1 || p.Status.EphemeralContainerStatuses[0].State.Running == nil {
			return fmt.Errorf("ephemeral statuses %+v", p.Status.EphemeralContainerStatuses)
		}
		return nil
	})
	if p.Status.ContainerStatuses[0].RestartCount != 0 {
		t.Errorf("main restarted %d times", p.Status.ContainerStatuses[0].RestartCount)
	}
	poll.Eventually(t, 30*time.Second, "the debugger sees main's sleep", func() error {
		out, err := c.kubectlIn(nil, "logs", "-n", ns, "debugged", "-c", "debugger")
		if err != nil || !strings.Contains(string(out), "done") {
			return fmt.Errorf("%v: %s", err, out)
		}
		if !strings.Contains(string(out), "sleep 3601") {
			return fmt.Errorf("no sleep 3601 among its processes:\n%s", out)
		}
		return nil
	})
	out, err := c.kubectlIn(nil, "exec", "-n", ns, "debugged", "-c", "debugger", "--", "ps")
	if err != nil || !strings.Contains(string(out), "sleep 3601") {
		t.Errorf("kubectl exec into the debugger: %v: %q", err, out)
	}
}
