package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// testHardening: what a tenant may not ask of the virtual node is refused
// with the pod Failed and an Event saying why, and nothing is created.
func testHardening(t *testing.T, c *cluster, ns string) {
	busybox := c.bed.Registry.Busybox
	refused := func(t *testing.T, name, reason string, sc *corev1.SecurityContext, psc *corev1.PodSecurityContext, want ...string) {
		t.Helper()
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.PodSpec{SecurityContext: psc,
			Containers: []corev1.Container{{Name: "main", Image: busybox, Command: []string{"sleep", "3600"}, SecurityContext: sc}}}}
		c.createPod(t, ns, pod)
		p := c.waitPod(t, ns, name, "Failed with "+reason, 30*time.Second, func(p *corev1.Pod) error {
			if p.Status.Phase != corev1.PodFailed || p.Status.Reason != reason {
				return fmt.Errorf("phase %s reason %q", p.Status.Phase, p.Status.Reason)
			}
			return nil
		})
		for _, w := range want {
			if !strings.Contains(p.Status.Message, w) {
				t.Errorf("message %q lacks %q", p.Status.Message, w)
			}
		}
		podEvent(t, c, ns, p, reason, want[0])
		noGroupFor(t, c, p)
	}

	t.Run("capabilities beyond the allowlist and Unconfined seccomp fail the pod with an Event naming what is allowed", func(t *testing.T) {
		refused(t, "cap-sys-admin", "CapabilityNotAllowed",
			&corev1.SecurityContext{Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"NET_ADMIN", "CAP_SYS_ADMIN"}}}, nil,
			"SYS_ADMIN may not be added", "capabilities.add[1]", "allowed: AUDIT_WRITE, CHOWN")
		refused(t, "cap-all", "CapabilityNotAllowed",
			&corev1.SecurityContext{Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"ALL"}}}, nil, "ALL may not be added", "NET_ADMIN")
		refused(t, "cap-sys-module", "CapabilityNotAllowed",
			&corev1.SecurityContext{Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"SYS_MODULE"}}}, nil, "SYS_MODULE may not be added")
		refused(t, "seccomp-unconfined", "SeccompProfileNotAllowed", nil,
			&corev1.PodSecurityContext{SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeUnconfined}}, "allowed: RuntimeDefault")
	})
}
