package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/eci-dev/eci/internal/agent/agenttest"
	"github.com/eci-dev/eci/internal/client"
	"github.com/eci-dev/eci/internal/server/servertest"
	"github.com/eci-dev/eci/internal/testbed"
	"github.com/eci-dev/eci/internal/vnode"
)

// BenchmarkStatusLatency: a container's state change in the runtime -> the
// pod's status in the apiserver, seen by a watch. 20 pods whose container
// exits after 2-6 s (restartPolicy Never); each is measured from the exit
// time containerd recorded (nanoseconds, carried in the group's status) to
// the watch event that shows the pod Succeeded. The path: containerd event ->
// agent -> instance service -> vnode's group watch -> pod status update.
func BenchmarkStatusLatency(b *testing.B) {
	bed := testbed.New(b, testbed.Options{Kube: true, Containerd: true})
	srv := servertest.Start(b)
	agenttest.Start(b, srv, bed, "host-1")
	c := &cluster{bed: bed, srv: srv, eci: srv.TenantClient(b, "cluster-a"), kube: fastClient(b, bed)}
	c.startVNode(b)
	ctx := context.Background()
	for i := 0; i < b.N; i++ {
		ns := fmt.Sprintf("status-%d", i)
		if _, err := c.kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
		w, err := c.kube.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{})
		if err != nil {
			b.Fatal(err)
		}
		const n = 20
		for j := 0; j < n; j++ {
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("p-%02d", j)}, Spec: onVNode(corev1.PodSpec{
				RestartPolicy: corev1.RestartPolicyNever,
				Containers:    []corev1.Container{{Name: "main", Image: bed.Registry.Busybox, Command: []string{"sleep", fmt.Sprint(2 + j%5)}}},
			})}
			if _, err := c.kube.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
				b.Fatal(err)
			}
		}
		seen := map[string]time.Time{}
		deadline := time.After(3 * time.Minute)
		for len(seen) < n {
			select {
			case ev := <-w.ResultChan():
				if p, ok := ev.Object.(*corev1.Pod); ok && ev.Type == watch.Modified && p.Status.Phase == corev1.PodSucceeded {
					if _, dup := seen[p.Name]; !dup {
						seen[p.Name] = time.Now()
					}
				}
			case <-deadline:
				b.Fatalf("%d of %d pods Succeeded after 3 minutes", len(seen), n)
			}
		}
		w.Stop()
		groups, err := c.eci.ListGroups(ctx, client.ListOptions{LabelSelector: vnode.LabelPodNamespace + "=" + ns})
		if err != nil {
			b.Fatal(err)
		}
		var lat []time.Duration
		for _, g := range groups.Items {
			if len(g.Status.Containers) == 0 || g.Status.Containers[0].State.Terminated == nil {
				b.Fatalf("group %s: no terminated state", g.Metadata.ID)
			}
			lat = append(lat, seen[g.Metadata.Labels[vnode.LabelPodName]].Sub(g.Status.Containers[0].State.Terminated.FinishedAt))
		}
		b.ReportMetric(ms(quantile(lat, 0.5)), "exit-to-pod-status-p50-ms")
		b.ReportMetric(ms(quantile(lat, 0.99)), "exit-to-pod-status-p99-ms")
		_ = c.kube.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{})
	}
}
