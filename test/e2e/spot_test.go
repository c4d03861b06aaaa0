package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/agent"
	"github.com/eci-dev/eci/internal/control"
	"github.com/eci-dev/eci/internal/poll"
	"github.com/eci-dev/eci/internal/server"
	"github.com/eci-dev/eci/internal/testbed"
	"github.com/eci-dev/eci/internal/vnode"
)

// A spot pod (eci-spot-strategy, no protected hours) fills a 2 vCPU pool;
// the node offers its capacity again, so a pay-as-you-go pod is bound and
// takes it back: the spot pod gets the DisruptionTarget condition and a
// SpotToBeReleased Event, ends Failed (its instance Expired) after the
// notice, and the pay-as-you-go pod, of a named instance type, runs on its
// capacity at that type's size.
func TestSpotInstances(t *testing.T) {
	bed := testbed.New(t, testbed.Options{Kube: true, Containerd: true})
	c := startServing(t, bed, func(cfg *server.Config) {
		cfg.Control.SpotNotice = 5 * time.Second
		cfg.Control.InstanceTypes = map[string]control.InstanceType{"ecs.test.c2m2": {CPU: 2, Memory: 2}}
	}, func(cfg *agent.Config) {
		res := apiv1.Resources{MilliCPU: 2000, MemoryMiB: 4096, Pods: 20}
		cfg.Host.Spec.Capacity, cfg.Host.Spec.Allocatable = res, res
	})
	ctx := context.Background()
	ns := "default"
	size := corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2"), corev1.ResourceMemory: resource.MustParse("2Gi")}}
	pod := func(name string, annotations map[string]string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: annotations}, Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "main", Image: c.bed.Registry.Busybox, Command: []string{"sleep", "3600"}, Resources: size}}}}
	}
	c.createPod(t, ns, pod("spot", map[string]string{vnode.AnnSpotStrategy: "SpotAsPriceGo", vnode.AnnSpotDuration: "0"}))
	spot := c.waitPod(t, ns, "spot", "Running", 90*time.Second, running)
	poll.Eventually(t, 30*time.Second, "the node offers the spot instance's 2 vCPU again", func() error {
		n, err := c.kube.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if a := n.Status.Allocatable; a.Cpu().Cmp(resource.MustParse("4")) != 0 {
			return fmt.Errorf("allocatable cpu %s", a.Cpu())
		}
		return nil
	})

	// A named instance type sizes it (over its containers' resources).
	c.createPod(t, ns, pod("paid", map[string]string{vnode.AnnInstanceType: "ecs.test.c2m2"}))
	c.waitPod(t, ns, "spot", "told it is released", 60*time.Second, func(p *corev1.Pod) error {
		for _, cond := range p.Status.Conditions {
			if cond.Type == corev1.DisruptionTarget && cond.Status == corev1.ConditionTrue && cond.Reason == "SpotToBeReleased" {
				return nil
			}
		}
		return fmt.Errorf("phase %s, conditions %+v", p.Status.Phase, p.Status.Conditions)
	})
	c.eventsSay(t, ns, spot, map[string]string{"SpotToBeReleased": "the spot instance is released at "})
	c.waitPod(t, ns, "spot", "Failed, its instance Expired", 60*time.Second, func(p *corev1.Pod) error {
		if p.Status.Phase != corev1.PodFailed || p.Status.Reason != "SpotReleased" {
			return fmt.Errorf("phase %s reason %q", p.Status.Phase, p.Status.Reason)
		}
		return nil
	})
	paid := c.waitPod(t, ns, "paid", "Running on the spot instance's capacity", 90*time.Second, running)
	if paid.Annotations[vnode.AnnInstanceSpec] != "2.0-2.0Gi" {
		t.Errorf("the paid pod's size: %q", paid.Annotations[vnode.AnnInstanceSpec])
	}
}
