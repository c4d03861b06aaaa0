package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/agent"
	"github.com/eci-dev/eci/internal/agent/agenttest"
	"github.com/eci-dev/eci/internal/poll"
	"github.com/eci-dev/eci/internal/server/servertest"
	"github.com/eci-dev/eci/internal/sizes"
	"github.com/eci-dev/eci/internal/testbed"
	"github.com/eci-dev/eci/internal/vnode"
)

// A small pool, as a new user's: one host of 2 vCPU / 4 GiB. The node
// shows what the pool can place; a pod that asks for no size gets the
// node's default size and an Event saying so; of a Deployment too large
// for the pool, the scheduler keeps Pending (Unschedulable, FailedScheduling
// "Insufficient cpu") what the node cannot hold, and a bound pod whose
// instance the pool cannot place yet says so in its status.
func TestCapacityAndDefaultSize(t *testing.T) {
	bed := testbed.New(t, testbed.Options{Kube: true, Containerd: true})
	srv := servertest.Start(t)
	small := apiv1.Resources{MilliCPU: 2000, MemoryMiB: 4096, Pods: 50}
	agenttest.Start(t, srv, bed, "host-1", func(c *agent.Config) { c.Host.Spec.Capacity, c.Host.Spec.Allocatable = small, small })
	c := &cluster{bed: bed, srv: srv, eci: srv.TenantClient(t, "cluster-a"), kube: fastClient(t, bed)}
	c.stopVNode = c.startVNodeAs(t, nodeName, "cluster-a", c.eci, func(cfg *vnode.Config) {
		cfg.DefaultSize = sizes.Size{MilliCPU: 500, MemoryMiB: 1024}
		cfg.Capacity = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1000"), corev1.ResourceMemory: resource.MustParse("4Ti"), corev1.ResourcePods: resource.MustParse("1000")}
	})
	ctx := context.Background()
	ns := "default"

	poll.Eventually(t, 30*time.Second, "the node's allocatable is the pool's 2 vCPU / 4 GiB / 50 pods", func() error {
		n, err := c.kube.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		a := n.Status.Allocatable
		if a.Cpu().Cmp(resource.MustParse("2")) != 0 || a.Memory().Cmp(resource.MustParse("4Gi")) != 0 || a.Pods().Cmp(resource.MustParse("50")) != 0 {
			return fmt.Errorf("allocatable %v, capacity %v", a, n.Status.Capacity)
		}
		return nil
	})

	plain := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "plain"}, Spec: onVNode(corev1.PodSpec{
		Containers: []corev1.Container{{Name: "main", Image: bed.Registry.Busybox, Command: []string{"sleep", "3600"}}}})}
	c.createPod(t, ns, plain)
	got := c.waitPod(t, ns, "plain", "Running", 90*time.Second, running)
	if spec := got.Annotations[vnode.AnnInstanceSpec]; spec != "0.5-1.0Gi" {
		t.Fatalf("the plain pod's instance is %q; want the node's default 0.5-1.0Gi", spec)
	}
	podEvent(t, c, ns, got, "DefaultSize", "0.5 vCPU and 1 GiB (the virtual node's --default-size)")

	// Five pods of 0.5 vCPU: the scheduler binds four (the plain pod asks
	// for nothing, so counts as nothing); the pool runs three of them
	// beside the plain one.
	replicas := int32(5)
	half := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("1Gi")}
	labels := map[string]string{"app": "fill"}
	if _, err := c.kube.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "fill"},
		Spec: appsv1.DeploymentSpec{Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: onVNode(corev1.PodSpec{
				Containers: []corev1.Container{{Name: "main", Image: bed.Registry.Busybox, Command: []string{"sleep", "3600"},
					Resources: corev1.ResourceRequirements{Requests: half, Limits: half}}}})}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, 90*time.Second, "3 running, 1 bound and waiting for capacity, 1 unschedulable", func() error {
		pods, err := c.kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=fill"})
		if err != nil {
			return err
		}
		var run, waiting, unschedulable int
		var seen []string
		for _, p := range pods.Items {
			switch {
			case p.Status.Phase == corev1.PodRunning:
				run++
			case p.Spec.NodeName == "":
				for _, cond := range p.Status.Conditions {
					if cond.Type == corev1.PodScheduled && cond.Reason == corev1.PodReasonUnschedulable && strings.Contains(cond.Message, "Insufficient cpu") {
						unschedulable++
					}
				}
			default:
				for _, cs := range p.Status.ContainerStatuses {
					if w := cs.State.Waiting; w != nil && strings.Contains(w.Message, "waits for capacity") {
						waiting++
					}
				}
			}
			seen = append(seen, fmt.Sprintf("%s node=%q %s %v %v", p.Name, p.Spec.NodeName, p.Status.Phase, p.Status.Conditions, p.Status.ContainerStatuses))
		}
		if run != 3 || waiting != 1 || unschedulable != 1 {
			return fmt.Errorf("%d running, %d waiting, %d unschedulable:\n%s", run, waiting, unschedulable, strings.Join(seen, "\n"))
		}
		return nil
	})
}
