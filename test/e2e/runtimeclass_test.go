package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/eci-dev/eci/internal/agent"
	"github.com/eci-dev/eci/internal/testbed"
)

// A pod's runtimeClassName runs its instance with its RuntimeClass's
// handler on a host that offers it: the sandbox containerd made has that
// handler. A class whose handler no host offers leaves the pod Pending,
// saying so where kubectl shows it.
func TestRuntimeClass(t *testing.T) {
	c := start(t, func(cfg *agent.Config) {
		cfg.Host.Spec.RuntimeHandlers = []string{"runc", testbed.AltRuntimeHandler}
	})
	ctx := context.Background()
	ns := "default"
	for name, handler := range map[string]string{"alt": testbed.AltRuntimeHandler, "kata": "kata"} {
		rc := &nodev1.RuntimeClass{ObjectMeta: metav1.ObjectMeta{Name: name}, Handler: handler}
		if _, err := c.kube.NodeV1().RuntimeClasses().Create(ctx, rc, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	pod := func(name, class string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.PodSpec{RuntimeClassName: &class,
			Containers: []corev1.Container{{Name: "main", Image: c.bed.Registry.Busybox, Command: []string{"sleep", "3600"}}}}}
	}
	c.createPod(t, ns, pod("alt", "alt"))
	c.createPod(t, ns, pod("kata", "kata"))
	p := c.waitPod(t, ns, "alt", "Running", 90*time.Second, running)
	sbs, err := c.bed.Containerd.Runtime.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{
		LabelSelector: map[string]string{agent.LabelGroup: p.Annotations["k8s.aliyun.com/eci-instance-id"]}})
	if err != nil || len(sbs) != 1 {
		t.Fatalf("the instance's sandbox: %v, %d found", err, len(sbs))
	}
	if sbs[0].RuntimeHandler != testbed.AltRuntimeHandler {
		t.Errorf("the sandbox runs with handler %q, want %q", sbs[0].RuntimeHandler, testbed.AltRuntimeHandler)
	}
	c.waitPod(t, ns, "kata", "Pending, saying why", 60*time.Second, func(p *corev1.Pod) error {
		if p.Status.Phase != corev1.PodPending || len(p.Status.ContainerStatuses) != 1 {
			return fmt.Errorf("phase %s", p.Status.Phase)
		}
		if w := p.Status.ContainerStatuses[0].State.Waiting; w == nil || !strings.Contains(w.Message, `offers runtime handler "kata"`) {
			return fmt.Errorf("waiting %+v", w)
		}
		return nil
	})
}
