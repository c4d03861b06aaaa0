package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/agent"
	"github.com/eci-dev/eci/internal/agent/agenttest"
	"github.com/eci-dev/eci/internal/client"
	"github.com/eci-dev/eci/internal/poll"
	"github.com/eci-dev/eci/internal/server/servertest"
	"github.com/eci-dev/eci/internal/testbed"
	"github.com/eci-dev/eci/internal/vnode"
)

// BenchmarkPodBurst creates 100 pods at once for the virtual node, each
// measured from its create request until a watch sees it Running, then
// ECI_BENCH_BURST pods (1000) for the throughput; then, on a second bed with
// the same containerd build and config, 100 pods for a real kubelet node
// (built by hack/kube). The two can't share one containerd at the same time:
// the kubelet kills every sandbox it did not create. The image is cached.
func BenchmarkPodBurst(b *testing.B) {
	big := 1000
	// ECI_BENCH_BURST=0 leaves the big burst out.
	if v, err := strconv.Atoi(os.Getenv("ECI_BENCH_BURST")); err == nil && v >= 0 {
		big = v
	}
	// ECI_BENCH_KUBELET=0 leaves the kubelet column out (a quicker run).
	withKubelet := os.Getenv("ECI_BENCH_KUBELET") != "0"
	for i := 0; i < b.N; i++ {
		vn, warm, thr := vnodeBursts(b, big)
		for _, q := range []float64{0.5, 0.9, 0.99} {
			if len(vn) > 0 {
				b.ReportMetric(ms(quantile(vn, q)), fmt.Sprintf("vnode-100-p%02.0f-ms", q*100))
			}
		}
		for _, q := range []float64{0.5, 0.9, 0.99} {
			b.ReportMetric(ms(quantile(warm, q)), fmt.Sprintf("vnode-warm-100-p%02.0f-ms", q*100))
		}
		if big > 0 {
			b.ReportMetric(thr, fmt.Sprintf("vnode-%d-pods/s", big))
		}
		if withKubelet {
			kl := kubeletBurst(b)
			for _, q := range []float64{0.5, 0.9, 0.99} {
				b.ReportMetric(ms(quantile(kl, q)), fmt.Sprintf("kubelet-100-p%02.0f-ms", q*100))
			}
		}
	}
}

// vnodeBursts runs the virtual node's bursts: 100 pods cold, 100 pods on
// a full warm pool of 100 sandboxes (docs/fast-start.md), and big pods
// with the pool refilled in the background.
func vnodeBursts(b *testing.B, big int) (cold, warm []time.Duration, thr float64) {
	bed := testbed.New(b, testbed.Options{Kube: true, Containerd: true})
	defer func() { _ = bed.Stop() }()
	srv := servertest.Start(b)
	defer srv.Stop()
	// The host's vSwitch has 1,022 addresses (the bed's own has 253) for the
	// big burst.
	if !bed.Network.LargeVSwitchCIDR.IsValid() {
		b.Fatalf("slot of %s has no large vSwitch range (slots 0-15 do)", bed.Dir)
	}
	agenttest.StartWithVSwitch(b, srv, bed, "host-1", bed.Network.LargeVSwitchCIDR.String(), func(c *agent.Config) {
		res := apiv1.Resources{MilliCPU: 1_000_000, MemoryMiB: 4 << 20, Pods: 5000}
		c.Host.Spec.Capacity, c.Host.Spec.Allocatable = res, res
	})
	c := &cluster{bed: bed, srv: srv, eci: srv.TenantClient(b, "cluster-a"), kube: fastClient(b, bed)}
	c.stopVNode = c.startVNode(b)
	defer c.stopVNode()
	toVNode := func(p *corev1.Pod) { p.Spec = onVNode(p.Spec) }
	c.burst(b, "first-pod", 1, toVNode, burstOpts{})
	// ECI_BENCH_COLD=0 leaves the cold burst out.
	if os.Getenv("ECI_BENCH_COLD") != "0" {
		cold, _ = c.burst(b, "vnode-100", 100, toVNode, burstOpts{})
	}
	fillWarmPool(b, c, "host-1", 100)
	warm, _ = c.burst(b, "vnode-warm-100", 100, toVNode, burstOpts{last: big == 0})
	if big == 0 {
		return cold, warm, 0
	}
	// The big burst may not finish on a small machine: its throughput is
	// what ran before the deadline.
	ran, took := c.burst(b, "vnode-big", big, toVNode, burstOpts{partial: true, last: true})
	b.ReportMetric(float64(len(ran)), fmt.Sprintf("vnode-%d-ran", big))
	return cold, warm, float64(len(ran)) / took.Seconds()
}

// fillWarmPool sets host's warm pool to n sandboxes and waits until they
// are ready, reporting how fast they were made and the memory each takes:
// the proportional set size (Pss) of its pause and its runtime shim, found
// from the pool's cgroups (the kernel's own memory for its namespaces and
// links is not counted).
func fillWarmPool(b *testing.B, c *cluster, host string, n int) {
	ctx := context.Background()
	start := time.Now()
	if _, err := c.srv.Admin.UpdateHost(ctx, host, apiv1.HostUpdate{WarmPoolTarget: &n}); err != nil {
		b.Fatal(err)
	}
	poll.Eventually(b, 10*time.Minute, fmt.Sprintf("%d ready sandboxes in %s's warm pool", n, host), func() error {
		h, err := c.srv.Admin.GetHost(ctx, host)
		if err != nil || h.Status.WarmPool == nil || len(h.Status.WarmPool.Ready) < n {
			return fmt.Errorf("pool %+v (%v)", h.Status.WarmPool, err)
		}
		return nil
	})
	took := time.Since(start)
	pss, count := warmPoolPss(b, c.bed.CgroupParent)
	perSandbox := float64(pss) / float64(max(count, 1)) / (1 << 20)
	b.ReportMetric(float64(n)/took.Seconds(), "warm-pool-fill-sandboxes/s")
	b.ReportMetric(perSandbox, "warm-sandbox-MiB")
	fmt.Printf("warm pool of %d: filled in %s (%.1f sandboxes/s); %d sandboxes' pause and shim: %.1f MiB each (Pss)\n", n, took.Round(time.Millisecond), float64(n)/took.Seconds(), count, perSandbox)
}

// warmPoolPss sums the Pss of the processes of the warm pool's sandboxes'
// cgroups under parent (cgroup v1's memory hierarchy, or v2: the pause and
// the runtime's shim) and of their parents; and counts the sandboxes.
func warmPoolPss(b *testing.B, parent string) (int64, int) {
	var pauses []string
	for _, root := range []string{"/sys/fs/cgroup/memory", "/sys/fs/cgroup"} {
		found, _ := filepath.Glob(filepath.Join(root, parent, "warm-*", "*", "cgroup.procs"))
		if len(found) > 0 {
			pauses = found
			break
		}
	}
	seen := map[string]bool{}
	var total int64
	count := 0
	for _, procs := range pauses {
		data, err := os.ReadFile(procs)
		if err != nil {
			continue
		}
		pids := strings.Fields(string(data)) // the pause, and the runtime's shim, which joins it
		if len(pids) > 0 {
			count++
		}
		for _, pid := range pids {
			for _, p := range []string{pid, parentPID(pid)} {
				if p != "" && !seen[p] {
					seen[p] = true
					total += pssOf(p)
				}
			}
		}
	}
	if count == 0 {
		b.Logf("no warm pool cgroups under %s", parent)
	}
	return total, count
}

// parentPID is process pid's parent ("" when gone).
func parentPID(pid string) string {
	data, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "PPid:"); ok {
			return strings.TrimSpace(rest)
		}
	}
	return ""
}

// pssOf is process pid's proportional set size, in bytes.
func pssOf(pid string) int64 {
	data, err := os.ReadFile("/proc/" + pid + "/smaps_rollup")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "Pss:"); ok {
			var kb int64
			if _, err := fmt.Sscan(rest, &kb); err == nil {
				return kb << 10
			}
		}
	}
	return 0
}

func kubeletBurst(b *testing.B) []time.Duration {
	bed := testbed.New(b, testbed.Options{Kube: true, Containerd: true, Kubelet: true, KubeletMaxPods: 110})
	defer func() { _ = bed.Stop() }()
	c := &cluster{bed: bed, kube: fastClient(b, bed)}
	onKubelet := func(p *corev1.Pod) {
		p.Spec.NodeSelector = map[string]string{"kubernetes.io/hostname": bed.Kubelet.NodeName}
	}
	c.burst(b, "first-pod", 1, onKubelet, burstOpts{})
	kl, _ := c.burst(b, "kubelet-100", 100, onKubelet, burstOpts{last: true})
	return kl
}

// burstOpts: partial, the burst ends at its deadline with what ran (else
// the benchmark fails); last, no burst follows (its pods are not waited
// out).
type burstOpts struct{ partial, last bool }

// burstDeadline bounds one burst.
const burstDeadline = 15 * time.Minute

// burst creates n pods in a fresh namespace at once and returns each one's
// create -> Running time, and the time until all ran.
func (c *cluster) burst(b *testing.B, ns string, n int, place func(*corev1.Pod), o burstOpts) ([]time.Duration, time.Duration) {
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
	cpu, reqs := takeCPUUsage(), apiRequests(c.kube)
	stopProfile := profileCPU(ns)
	defer stopProfile()
	if c.bed.Containerd != nil && n > 1 {
		defer profileContainerd(c.bed.Containerd.Socket, ns, 20*time.Second)()
	}
	var mu sync.Mutex
	created, bound, running := map[string]time.Time{}, map[string]time.Time{}, map[string]time.Time{}
	start := time.Now()
	waitCreates := c.createPods(b, ns, n, place, &mu, created)
	deadline := time.After(burstDeadline)
wait:
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
			if isPod && ev.Type != watch.Deleted && p.Spec.NodeName != "" {
				mu.Lock()
				if _, seen := bound[p.Name]; !seen {
					bound[p.Name] = time.Now()
				}
				mu.Unlock()
			}
			if isPod && ev.Type != watch.Deleted && p.Status.Phase == corev1.PodRunning {
				mu.Lock()
				if _, seen := running[p.Name]; !seen {
					running[p.Name] = time.Now()
				}
				mu.Unlock()
			}
		case <-deadline:
			if !o.partial {
				b.Fatalf("%s: %d of %d pods Running after %s", ns, done, n, burstDeadline)
			}
			b.Logf("%s: %d of %d pods Running after %s", ns, done, n, burstDeadline)
			break wait
		}
	}
	took := time.Since(start)
	stopProfile()
	c.reportCost(ns, len(running), cpu, reqs)
	waitCreates()
	mu.Lock()
	defer mu.Unlock()
	var out []time.Duration
	for name, t1 := range running {
		out = append(out, t1.Sub(created[name]))
	}
	if c.eci != nil {
		c.stages(b, ns, created, bound, running)
	}
	c.dropNamespace(b, ns, !o.last)
	return out, took
}

// dropNamespace deletes ns and, when wait, waits until it is gone: the next
// burst starts once this one's pods are gone (the namespace is removed
// after its last pod), so that it never competes with these deletions.
func (c *cluster) dropNamespace(b *testing.B, ns string, wait bool) {
	ctx := context.Background()
	_ = c.kube.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{})
	if wait {
		poll.Eventually(b, 10*time.Minute, ns+": namespace gone", func() error {
			if _, err := c.kube.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				return fmt.Errorf("get: %v", err)
			}
			return nil
		})
	}
}

// createPods creates n pods in ns at once (50 requests in flight), noting
// each one's create time in created (under mu); wait waits for the
// requests.
func (c *cluster) createPods(b *testing.B, ns string, n int, place func(*corev1.Pod), mu *sync.Mutex, created map[string]time.Time) (wait func()) {
	ctx := context.Background()
	sem := make(chan struct{}, 50)
	var wg sync.WaitGroup
	for j := 0; j < n; j++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(j int) {
			defer wg.Done()
			defer func() { <-sem }()
			name := fmt.Sprintf("p-%04d", j)
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.PodSpec{
				TerminationGracePeriodSeconds: new(int64),
				Containers: []corev1.Container{{Name: "main", Image: c.bed.Registry.Busybox, Command: []string{"sleep", "3600"},
					Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: mustQ("10m"), corev1.ResourceMemory: mustQ("16Mi")}}}},
			}}
			place(pod)
			mu.Lock()
			created[name] = time.Now()
			mu.Unlock()
			if _, err := c.kube.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
				b.Error(err)
			}
		}(j)
	}
	return wg.Wait
}

// stages splits each virtual-node pod's create -> Running time by its
// group's timestamps, and logs the p50/p99 of each stage: where a burst's
// time goes.
func (c *cluster) stages(b *testing.B, ns string, created, bound, running map[string]time.Time) {
	groups, err := c.eci.ListGroups(context.Background(), client.ListOptions{LabelSelector: vnode.LabelPodNamespace + "=" + ns})
	if err != nil {
		b.Logf("%s: stages: %v", ns, err)
		return
	}
	names := []string{"pod create -> bound watched (apiserver, scheduler)", "bound watched -> group created (vnode)", "group created -> placed (server)", "placed -> Running reported (agent, containerd)", "Running reported -> pod Running watched (vnode, apiserver)"}
	stages := make([][]time.Duration, len(names))
	for _, g := range groups.Items {
		pod := g.Metadata.Labels[vnode.LabelPodName]
		st := g.Status
		if st.ScheduledAt == nil || st.RunningAt == nil || created[pod].IsZero() || bound[pod].IsZero() || running[pod].IsZero() {
			continue
		}
		for i, d := range []time.Duration{bound[pod].Sub(created[pod]), g.Metadata.CreatedAt.Sub(bound[pod]), st.ScheduledAt.Sub(g.Metadata.CreatedAt), st.RunningAt.Sub(*st.ScheduledAt), running[pod].Sub(*st.RunningAt)} {
			stages[i] = append(stages[i], d)
		}
	}
	warm := 0
	for _, g := range groups.Items {
		if evs, err := c.eci.GroupEvents(context.Background(), g.Metadata.ID); err == nil && slices.ContainsFunc(evs, func(e apiv1.Event) bool {
			return strings.Contains(e.Message, "taken from the host's warm pool")
		}) {
			warm++
		}
	}
	fmt.Printf("%s: %d of %d groups took a sandbox of the warm pool\n", ns, warm, len(groups.Items))
	for i, name := range names {
		if len(stages[i]) > 0 {
			// To stdout: a benchmark's b.Log output is not always shown whole.
			fmt.Printf("%s: %-60s p50 %8.1f ms  p99 %8.1f ms  (%d pods)\n", ns, name, ms(quantile(stages[i], 0.5)), ms(quantile(stages[i], 0.99)), len(stages[i]))
		}
	}
}

// profileCPU writes a CPU profile of this process (the server, the agent
// and the virtual node, when they run here) to ECI_BENCH_PROFILE/ns-cpu.pprof
// until stop is called, when that variable is set.
func profileCPU(ns string) (stop func()) {
	dir := os.Getenv("ECI_BENCH_PROFILE")
	if dir == "" {
		return func() {}
	}
	f, err := os.Create(filepath.Join(dir, ns+"-cpu.pprof"))
	if err != nil {
		return func() {}
	}
	if pprof.StartCPUProfile(f) != nil {
		_ = f.Close()
		return func() {}
	}
	var once sync.Once
	return func() { once.Do(func() { pprof.StopCPUProfile(); _ = f.Close() }) }
}

func quantile(d []time.Duration, q float64) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[int(q*float64(len(s)-1))]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func mustQ(s string) resource.Quantity { return resource.MustParse(s) }
