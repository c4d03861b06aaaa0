package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// activeDeadlineSeconds set on a running pod, as Kubernetes allows (set or
// lowered), ends it as on a kubelet: phase Failed, reason DeadlineExceeded.
func TestActiveDeadlineUpdate(t *testing.T) {
	c := start(t)
	ctx := context.Background()
	ns := "default"
	c.createPod(t, ns, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "deadline"}, Spec: corev1.PodSpec{
		Containers: []corev1.Container{{Name: "main", Image: c.bed.Registry.Busybox, Command: []string{"sleep", "3600"}}}}})
	p := c.waitPod(t, ns, "deadline", "Running", 90*time.Second, running)
	if _, err := c.kube.CoreV1().Pods(ns).Patch(ctx, "deadline", types.MergePatchType, []byte(`{"spec":{"activeDeadlineSeconds":5}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	c.waitPod(t, ns, "deadline", "Failed with DeadlineExceeded", 60*time.Second, func(p *corev1.Pod) error {
		if p.Status.Phase != corev1.PodFailed || p.Status.Reason != "DeadlineExceeded" {
			return fmt.Errorf("phase %s reason %q", p.Status.Phase, p.Status.Reason)
		}
		return nil
	})
	if p.Status.StartTime == nil {
		t.Fatal("no start time")
	}
}
