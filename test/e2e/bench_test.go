package e2e

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/agent"
	"github.com/eci-dev/eci/internal/agent/agenttest"
	"github.com/eci-dev/eci/internal/server/servertest"
	"github.com/eci-dev/eci/internal/testbed"
)

// BenchmarkPodBurst creates 100 pods at once for the virtual node, each
// measured from its create request until a watch sees it Running, then
// ECI_BENCH_BURST pods (1000) for the throughput; then, on a second bed with
// the same containerd build and config, 100 pods for a real kubelet node
// (built by hack/kube). The two can't share one containerd at the same time:
// the kubelet kills every sandbox it did not create. The image is cached.
func BenchmarkPodBurst(b *testing.B) {
	big := 1000
	if v, err := strconv.Atoi(os.Getenv("ECI_BENCH_BURST")); err == nil && v > 0 {
		big = v
	}
	for i := 0; i < b.N; i++ {
		vn, thr := vnodeBursts(b, big)
		kl := kubeletBurst(b)
		for _, q := range []float64{0.5, 0.9, 0.99} {
			b.ReportMetric(ms(quantile(vn, q)), fmt.Sprintf("vnode-100-p%02.0f-ms", q*100))
			b.ReportMetric(ms(quantile(kl, q)), fmt.Sprintf("kubelet-100-p%02.0f-ms", q*100))
		}
		b.ReportMetric(thr, fmt.Sprintf("vnode-%d-pods/s", big))
	}
}

func vnodeBursts(b *testing.B, big int) ([]time.Duration, float64) {
	bed := testbed.New(b, testbed.Options{Kube: true, Containerd: true})
	defer func() { _ = bed.Stop() }()
	srv := servertest.Start(b)
	defer srv.Stop()
	agenttest.Start(b, srv, bed, "host-1", func(c *agent.Config) {
		res := apiv1.Resources{MilliCPU: 1_000_000, MemoryMiB: 4 << 20, Pods: 5000}
		c.Host.Spec.Capacity, c.Host.Spec.Allocatable = res, res
	})
	c := &cluster{bed: bed, srv: srv, eci: srv.TenantClient(b, "cluster-a"), kube: fastClient(b, bed)}
	c.stopVNode = c.startVNode(b)
	defer c.stopVNode()
	c.burst(b, "warm", 1, onVNode)
	vn, _ := c.burst(b, "vnode-100", 100, onVNode)
	_, took := c.burst(b, "vnode-big", big, onVNode)
	return vn, float64(big) / took.Seconds()
}

func kubeletBurst(b *testing.B) []time.Duration {
	bed := testbed.New(b, testbed.Options{Kube: true, Containerd: true, Kubelet: true, KubeletMaxPods: 110})
	defer func() { _ = bed.Stop() }()
	c := &cluster{bed: bed, kube: fastClient(b, bed)}
	onKubelet := func(spec corev1.PodSpec) corev1.PodSpec {
		spec.NodeSelector = map[string]string{"kubernetes.io/hostname": bed.Kubelet.NodeName}
		return spec
	}
	c.burst(b, "warm", 1, onKubelet)
	kl, _ := c.burst(b, "kubelet-100", 100, onKubelet)
	return kl
}

// burst creates n pods in a fresh namespace at once and returns each one's
// create -> Running time, and the time until all ran.
func (c *cluster) burst(b *testing.B, ns string, n int, place func(corev1.PodSpec) corev1.PodSpec) ([]time.Duration, time.Duration) {
	ctx := context.Background()
	if _, err := c.kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	w, err := c.kube.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { w.Stop() }()
	lastRV := ""
	var mu sync.Mutex
	created, running := map[string]time.Time{}, map[string]time.Time{}
	start := time.Now()
	sem := make(chan struct{}, 50)
	var wg sync.WaitGroup
	for j := 0; j < n; j++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(j int) {
			defer wg.Done()
			defer func() { <-sem }()
			name := fmt.Sprintf("p-%04d", j)
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: place(corev1.PodSpec{
				TerminationGracePeriodSeconds: new(int64),
				Containers: []corev1.Container{{Name: "main", Image: c.bed.Registry.Busybox, Command: []string{"sleep", "3600"},
					Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: mustQ("10m"), corev1.ResourceMemory: mustQ("16Mi")}}}},
			})}
			mu.Lock()
			created[name] = time.Now()
			mu.Unlock()
			if _, err := c.kube.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
				b.Error(err)
			}
		}(j)
	}
	deadline := time.After(15 * time.Minute)
	for {
		mu.Lock()
		done := len(running)
		mu.Unlock()
		if done == n {
			break
		}
		select {
		case ev, ok := <-w.ResultChan():
			if !ok { // the apiserver ends watches now and then: resume
				if w, err = c.kube.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{ResourceVersion: lastRV}); err != nil {
					b.Fatalf("%s: watch again after %d of %d pods ran: %v", ns, done, n, err)
				}
				continue
			}
			p, isPod := ev.Object.(*corev1.Pod)
			if isPod {
				lastRV = p.ResourceVersion
			}
			if isPod && ev.Type != watch.Deleted && p.Status.Phase == corev1.PodRunning {
				mu.Lock()
				if _, seen := running[p.Name]; !seen {
					running[p.Name] = time.Now()
				}
				mu.Unlock()
			}
		case <-deadline:
			b.Fatalf("%s: %d of %d pods Running after 15 minutes", ns, done, n)
		}
	}
	took := time.Since(start)
	wg.Wait()
	var out []time.Duration
	for name, t1 := range running {
		out = append(out, t1.Sub(created[name]))
	}
	_ = c.kube.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{})
	return out, took
}

func quantile(d []time.Duration, q float64) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[int(q*float64(len(s)-1))]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func mustQ(s string) resource.Quantity { return resource.MustParse(s) }
