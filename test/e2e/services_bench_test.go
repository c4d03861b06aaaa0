package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/eci-dev/eci/internal/agent/agenttest"
	"github.com/eci-dev/eci/internal/poll"
	"github.com/eci-dev/eci/internal/server/servertest"
	"github.com/eci-dev/eci/internal/testbed"
)

// BenchmarkServiceUpdate: an endpoint change reaches an instance's traffic
// through the whole path (EndpointSlice in the apiserver -> the vnode's
// informer -> the table in the instance service -> the agent's watch ->
// nftables), with 1,000 other Services of 5 endpoints each in the cluster
// and on the host. A client instance fetches a Service's ClusterIP in a
// loop and logs each answer with the host's uptime; the benchmark moves the
// Service's only endpoint between two pods and measures from the change
// (uptime before the update) to the first answer of the new pod.
// ECI_BENCH_UPDATES changes (default 20); update-p50/p99-ms, and
// table-sync-s: how long the 1,000 Services took to reach the host.
func BenchmarkServiceUpdate(b *testing.B) {
	updates := 20
	if v, err := strconv.Atoi(os.Getenv("ECI_BENCH_UPDATES")); err == nil && v > 0 {
		updates = v
	}
	bed := testbed.New(b, testbed.Options{Kube: true, Containerd: true})
	if !bed.Network.LargeServiceCIDR.IsValid() {
		b.Fatalf("slot of %s has no large service range (slots 0-15 do)", bed.Dir)
	}
	srv := servertest.Start(b)
	ag := agenttest.Start(b, srv, bed, "host-1")
	c := &cluster{bed: bed, srv: srv, eci: srv.TenantClient(b, "cluster-a"), kube: fastClient(b, bed)}
	c.stopVNode = c.startVNode(b)
	ctx := context.Background()
	ns := "default"

	if _, err := c.kube.NetworkingV1().ServiceCIDRs().Create(ctx, &networkingv1.ServiceCIDR{ObjectMeta: metav1.ObjectMeta{Name: "bench"},
		Spec: networkingv1.ServiceCIDRSpec{CIDRs: []string{bed.Network.LargeServiceCIDR.String()}}}, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	c.manyServices(b, ns, 1000, 5)
	poll.Eventually(b, 5*time.Minute, "1,000 Services in the instance service's table", func() error {
		vs, err := c.eci.ListVirtualServices(ctx, "")
		if err != nil || len(vs) < 1001 {
			return fmt.Errorf("%d virtual IPs (%v)", len(vs), err)
		}
		return nil
	})
	tableSync := time.Since(start)

	pods := map[string]string{}
	for _, name := range []string{"probe-a", "probe-b"} {
		c.createPod(b, ns, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "web", Image: bed.Registry.Busybox,
				Command: []string{"sh", "-c", "mkdir -p /srv && echo " + name + " > /srv/index.html && exec httpd -f -p 8080 -h /srv"}}}}})
	}
	for name := range map[string]bool{"probe-a": true, "probe-b": true} {
		pods[name] = c.waitPod(b, ns, name, "Running", 120*time.Second, running).Status.PodIP
	}
	c.selectorless(b, ns, "probe", []string{pods["probe-a"]})
	const loop = `while :; do echo "$(cut -d' ' -f1 /proc/uptime) $(wget -q -O- http://$PROBE_SERVICE_HOST/ 2>&1)"; done`
	c.createPod(b, ns, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "probe-client"}, Spec: corev1.PodSpec{
		Containers: []corev1.Container{{Name: "main", Image: bed.Registry.Busybox, Command: []string{"sh", "-c", loop}}}}})
	c.waitPod(b, ns, "probe-client", "Running", 120*time.Second, running)
	c.firstAnswer(b, ns, 0, "probe-a")

	var lat []time.Duration
	b.ResetTimer()
	for i := range updates {
		to := []string{"probe-b", "probe-a"}[i%2]
		t0 := uptime(b)
		c.moveEndpoint(b, ns, "probe", pods[to])
		at := c.firstAnswer(b, ns, t0, to)
		lat = append(lat, time.Duration((at-t0)*float64(time.Second)))
	}
	b.StopTimer()

	// The reference: kube-proxy's nftables mode on the same cluster, after
	// the latencies (it takes a core of its own). Both program the same
	// moves of the endpoint; each one's mean sync, and the size of its rules.
	kp := startKubeProxy(b, bed)
	kp.waitSynced(b, 1000)
	kpN0, kpT0 := kp.syncs(b)
	eci0 := ag.ServiceSyncs()
	for i := range updates {
		c.moveEndpoint(b, ns, "probe", pods[[]string{"probe-b", "probe-a"}[i%2]])
		time.Sleep(1500 * time.Millisecond) // kube-proxy's --min-sync-period is 1 s
	}
	kpN, kpT := kp.syncs(b)
	eci := ag.ServiceSyncs()
	b.Logf("kube-proxy: %d syncs in %s (before: %d in %s); eci: %+v (before: %+v)", kpN, kpT, kpN0, kpT0, eci, eci0)
	if kpN <= kpN0 {
		logged, _ := os.ReadFile(filepath.Join(bed.Dir, "kube-proxy.log"))
		b.Logf("kube-proxy's syncs not counted; its log ends:\n%s", lastLines(string(logged), 20))
	}
	if kpN > kpN0 && eci.Syncs > eci0.Syncs {
		b.ReportMetric(ms((kpT-kpT0)/time.Duration(kpN-kpN0)), "kube-proxy-sync-ms")
		b.ReportMetric(ms((eci.Total-eci0.Total)/time.Duration(eci.Syncs-eci0.Syncs)), "eci-sync-ms")
	}
	b.ReportMetric(float64(tableSize(kp.ns, "ip", "kube-proxy"))/1024, "kube-proxy-rules-KiB")
	b.ReportMetric(float64(tableSize("", "ip", "eci-services-"+bed.Network.AgentNetwork))/1024, "eci-rules-KiB")
	slices.Sort(lat)
	b.ReportMetric(ms(quantile(lat, 0.5)), "update-p50-ms")
	b.ReportMetric(ms(quantile(lat, 0.99)), "update-p99-ms")
	b.ReportMetric(tableSync.Seconds(), "table-sync-s")
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// manyServices makes n selectorless Services in ns, each with an
// EndpointSlice of per endpoints (addresses of 198.18.200.0/21, which
// nothing answers), 20 at a time.
func (c *cluster) manyServices(b *testing.B, ns string, n, per int) {
	var wg sync.WaitGroup
	work := make(chan int)
	errs := make(chan error, n)
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				var addrs []string
				for j := range per {
					k := i*per + j
					addrs = append(addrs, fmt.Sprintf("198.18.%d.%d", 200+k/250, 1+k%250))
				}
				if err := c.selectorlessErr(ns, fmt.Sprintf("many-%d", i), addrs); err != nil {
					errs <- err
				}
			}
		}()
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}

// selectorless makes a Service without a selector and its EndpointSlice of
// addrs (port 8080).
func (c *cluster) selectorless(b *testing.B, ns, name string, addrs []string) {
	b.Helper()
	if err := c.selectorlessErr(ns, name, addrs); err != nil {
		b.Fatal(err)
	}
}

func (c *cluster) selectorlessErr(ns, name string, addrs []string) error {
	ctx := context.Background()
	if _, err := c.kube.CoreV1().Services(ns).Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80}}}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	_, err := c.kube.DiscoveryV1().EndpointSlices(ns).Create(ctx, benchSlice(name, addrs), metav1.CreateOptions{})
	return err
}

func benchSlice(service string, addrs []string) *discoveryv1.EndpointSlice {
	port, name, ready := int32(8080), "http", true
	sl := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: service + "-1", Labels: map[string]string{
			discoveryv1.LabelServiceName: service, discoveryv1.LabelManagedBy: "eci-bench"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: &name, Port: &port}},
	}
	for _, a := range addrs {
		sl.Endpoints = append(sl.Endpoints, discoveryv1.Endpoint{Addresses: []string{a}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}})
	}
	return sl
}

// moveEndpoint makes addr the only endpoint of service.
func (c *cluster) moveEndpoint(b *testing.B, ns, service, addr string) {
	b.Helper()
	ctx := context.Background()
	sl, err := c.kube.DiscoveryV1().EndpointSlices(ns).Get(ctx, service+"-1", metav1.GetOptions{})
	if err != nil {
		b.Fatal(err)
	}
	sl.Endpoints = benchSlice(service, []string{addr}).Endpoints
	if _, err := c.kube.DiscoveryV1().EndpointSlices(ns).Update(ctx, sl, metav1.UpdateOptions{}); err != nil {
		b.Fatal(err)
	}
}

// firstAnswer is the uptime of the client's first answer from want after
// uptime after (it polls the client's log).
func (c *cluster) firstAnswer(b *testing.B, ns string, after float64, want string) float64 {
	b.Helper()
	var at float64
	poll.Eventually(b, 60*time.Second, "an answer from "+want, func() error {
		tail := int64(2000)
		raw, err := c.kube.CoreV1().Pods(ns).GetLogs("probe-client", &corev1.PodLogOptions{TailLines: &tail}).DoRaw(context.Background())
		if err != nil {
			return err
		}
		for _, line := range strings.Split(string(raw), "\n") {
			f := strings.Fields(line)
			if len(f) != 2 || f[1] != want {
				continue
			}
			if t, err := strconv.ParseFloat(f[0], 64); err == nil && t > after {
				at = t
				return nil
			}
		}
		return fmt.Errorf("none after %.2f", after)
	})
	return at
}

// uptime is the host's /proc/uptime, the clock of the client's lines.
func uptime(b *testing.B) float64 {
	b.Helper()
	raw, err := os.ReadFile("/proc/uptime")
	if err != nil {
		b.Fatal(err)
	}
	t, err := strconv.ParseFloat(strings.Fields(string(raw))[0], 64)
	if err != nil {
		b.Fatal(err)
	}
	return t
}
