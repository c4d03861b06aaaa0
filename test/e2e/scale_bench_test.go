package e2e

import (
	"bufio"
	"cmp"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/client"
	"github.com/eci-dev/eci/internal/fakeagent"
	"github.com/eci-dev/eci/internal/poll"
	"github.com/eci-dev/eci/internal/server"
	"github.com/eci-dev/eci/internal/server/servertest"
	"github.com/eci-dev/eci/internal/testbed"
	"github.com/eci-dev/eci/internal/vnode"
)

// BenchmarkVNodeScale: one virtual node (the eci binary, its own process)
// with 1,000, then 5,000, then 10,000 pods (ECI_BENCH_SCALE: the steps,
// comma-separated), on hosts of the fake agent over the real API and a
// real Kubernetes control plane. Pods are bound to the node by name (no
// scheduler), 0.25 vCPU / 0.5 GiB each. At each step: the node's CPU per
// pod while the step's pods were made and started, and the pod update
// events it got per pod; then, every pod Running, the node's RSS; the
// status lag: 100 of the pods' groups reported Succeeded
// through the API, each measured from the report's request until a watch
// sees its pod Succeeded (the path: service watch -> node -> apiserver);
// and what a list of the tenant's groups costs the server.
// ECI_BENCH_PROFILE=DIR writes the node's log there, and a 30 s CPU profile
// of it taken while each step's status lag is measured.
func BenchmarkVNodeScale(b *testing.B) {
	steps := []int{1000, 5000, 10000}
	if v := os.Getenv("ECI_BENCH_SCALE"); v != "" {
		steps = nil
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n <= 0 {
				b.Fatalf("ECI_BENCH_SCALE %q: allowed: pod counts, comma-separated", v)
			}
			steps = append(steps, n)
		}
	}
	for i := 0; i < b.N; i++ {
		s := newScaleBed(b, steps[len(steps)-1])
		made := 0
		for _, n := range steps {
			_, cpu0 := procStat(b, s.vnode.Process.Pid)
			upd0 := s.updates()
			s.grow(b, made, n)
			_, cpu1 := procStat(b, s.vnode.Process.Pid)
			upd1 := s.updates()
			b.ReportMetric((cpu1-cpu0)*1e3/float64(n-made), fmt.Sprintf("vnode-cpu-ms-per-pod-at-%d", n))
			b.ReportMetric((upd1-upd0)/float64(n-made), fmt.Sprintf("update-events-per-pod-at-%d", n))
			s.measure(b, made, n)
			made = n
		}
	}
}

// scaleBed is the bed of BenchmarkVNodeScale.
type scaleBed struct {
	kube    kubernetes.Interface
	srv     *servertest.Server
	eci     *client.Client
	vnode   *exec.Cmd
	updates func() float64 // pod update events the node received (its /metrics)
	ns      string
	debug   string // the node's --debug-address
}

func newScaleBed(b *testing.B, most int) *scaleBed {
	bed := testbed.New(b, testbed.Options{Kube: true})
	srv := servertest.Start(b, func(c *server.Config) {
		c.TenantRateLimit = server.RateLimit{QPS: -1} // (the node's creates are the load, not the limit)
		c.Control.MaxStoredGroups = 2 * most
	})
	srv.VSwitch(b, "vsw-scale", "zone-a", "198.19.0.0/17")
	per := most/10 + 100
	var hosts []apiv1.Host
	for h := range 10 {
		res := apiv1.Resources{MilliCPU: int64(per) * 250, MemoryMiB: int64(per) * 512, Pods: per}
		hosts = append(hosts, apiv1.Host{Metadata: apiv1.ObjectMeta{Name: fmt.Sprintf("fake-%02d", h)}, Spec: apiv1.HostSpec{Zone: "zone-a", Capacity: res, Allocatable: res}})
	}
	fake := fakeagent.New(fakeagent.Config{Client: srv.Admin, Hosts: hosts})
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	go func() { _ = fake.Run(ctx) }()
	select {
	case <-fake.Ready():
	case <-time.After(60 * time.Second):
		b.Fatal("the fake agent is not ready")
	}
	s := &scaleBed{kube: fastClient(b, bed), srv: srv, eci: srv.TenantClient(b, "cluster-a"), ns: "scale"}
	s.startVNode(b, bed, srv.TenantToken(b, "cluster-a"), most)
	if _, err := s.kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: s.ns}}, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	return s
}

// startVNode runs `eci vnode` for the bed until the benchmark ends.
func (s *scaleBed) startVNode(b *testing.B, bed *testbed.Bed, token string, most int) {
	bin := filepath.Join(b.TempDir(), "eci")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/eci-dev/eci/cmd/eci").CombinedOutput(); err != nil {
		b.Fatalf("build eci: %v\n%s", err, out)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(bed.Network.NodeIP.String(), "0"))
	if err != nil {
		b.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	logDir := cmp.Or(os.Getenv("ECI_BENCH_PROFILE"), b.TempDir())
	logFile, err := os.Create(filepath.Join(logDir, "vnode.log"))
	if err != nil {
		b.Fatal(err)
	}
	s.debug = net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(b)))
	cmd := exec.Command(bin, "vnode", "--debug-address", s.debug, "--kubeconfig", bed.Kube.Kubeconfig, "--server", s.srv.URL(), "--ca-file", s.srv.CAFile(), "--token", token,
		"--node-name", nodeName, "--cluster-id", "cluster-a", "--internal-ip", bed.Network.NodeIP.String(), "--listen", addr,
		"--client-ca-file", bed.Kube.CAFile, "--profile-listen", "", "--image-caches=false", "--services=false",
		"--pods", strconv.Itoa(most+100), "--cpu", strconv.Itoa(most), "--memory", fmt.Sprintf("%dGi", most))
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	s.vnode = cmd
	b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); _ = logFile.Close() })
	poll.Eventually(b, 90*time.Second, "the node Ready", func() error {
		n, err := s.kube.CoreV1().Nodes().Get(context.Background(), nodeName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
				return nil
			}
		}
		return fmt.Errorf("conditions %v", n.Status.Conditions)
	})
	s.updates = func() float64 {
		raw, err := s.kube.CoreV1().RESTClient().Get().AbsPath("/api/v1/nodes/" + nodeName + "/proxy/metrics").DoRaw(context.Background())
		if err != nil {
			b.Fatalf("the node's /metrics: %v", err)
		}
		var total float64
		for _, line := range strings.Split(string(raw), "\n") {
			if strings.HasPrefix(line, "eci_vnode_pod_update_events_total{") {
				f := strings.Fields(line)
				v, _ := strconv.ParseFloat(f[len(f)-1], 64)
				total += v
			}
		}
		return total
	}
}

// grow makes pods from to n and waits until they all run.
func (s *scaleBed) grow(b *testing.B, from, n int) {
	ctx := context.Background()
	rv := s.podsVersion(b)
	begin := time.Now()
	var next atomic.Int64
	next.Store(int64(from))
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("p-%05d", i)}, Spec: corev1.PodSpec{
					NodeName:    nodeName,
					Tolerations: []corev1.Toleration{{Key: "virtual-kubelet.io/provider", Operator: corev1.TolerationOpExists}},
					Containers: []corev1.Container{{Name: "main", Image: "reg.example/app:v1", Resources: corev1.ResourceRequirements{
						Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m"), corev1.ResourceMemory: resource.MustParse("512Mi")}}}}}}
				if _, err := s.kube.CoreV1().Pods(s.ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
					b.Errorf("create %s: %v", pod.Name, err)
					return
				}
			}
		}()
	}
	running := map[string]bool{}
	s.watchPods(b, rv, 30*time.Minute, func(p *corev1.Pod, _ watch.EventType) bool {
		if p.Status.Phase == corev1.PodRunning {
			running[p.Name] = true
		}
		return len(running) >= n-from
	})
	wg.Wait()
	b.Logf("%d pods: %d more Running in %v (%.0f pods/s)", n, n-from, time.Since(begin).Round(time.Millisecond), float64(n-from)/time.Since(begin).Seconds())
}

// measure reports the node's figures with n pods (from made in this
// step): its memory, the status lag (with a CPU profile of the node over
// the same window when ECI_BENCH_PROFILE is set), a list's cost.
func (s *scaleBed) measure(b *testing.B, from, n int) {
	rss, _ := procStat(b, s.vnode.Process.Pid)
	b.ReportMetric(rss/(1<<20), fmt.Sprintf("vnode-rss-MiB-at-%d", n))
	var wg sync.WaitGroup
	if dir := os.Getenv("ECI_BENCH_PROFILE"); dir != "" {
		wg.Add(1)
		go func() { defer wg.Done(); s.profile(b, filepath.Join(dir, fmt.Sprintf("vnode-cpu-at-%d.pprof", n))) }()
	}
	lag := s.statusLag(b, from, n)
	wg.Wait()
	b.ReportMetric(ms(quantile(lag, 0.5)), fmt.Sprintf("status-lag-p50-ms-at-%d", n))
	b.ReportMetric(ms(quantile(lag, 0.99)), fmt.Sprintf("status-lag-p99-ms-at-%d", n))
	begin := time.Now()
	list, err := s.eci.ListGroups(context.Background(), client.ListOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(ms(time.Since(begin)), fmt.Sprintf("server-list-ms-at-%d", n))
	b.Logf("%d pods: node RSS %.0f MiB, a list of %d groups in %v", n, rss/(1<<20), len(list.Items), time.Since(begin).Round(time.Millisecond))
}

// statusLag reports 100 of the pods from to n (made in this step) as
// Succeeded, 10 a second, and measures each from its report's request
// until a watch sees its pod Succeeded.
func (s *scaleBed) statusLag(b *testing.B, from, n int) []time.Duration {
	ctx := context.Background()
	rv := s.podsVersion(b)
	groups, err := s.eci.ListGroups(ctx, client.ListOptions{LabelSelector: vnode.LabelPodNamespace + "=" + s.ns})
	if err != nil {
		b.Fatal(err)
	}
	byPod := map[string]*apiv1.ContainerGroup{}
	for i := range groups.Items {
		g := &groups.Items[i]
		byPod[g.Metadata.Labels[vnode.LabelPodName]] = g
	}
	reported := map[string]time.Time{}
	var mu sync.Mutex
	var failed error
	go func() {
		fail := func(err error) {
			mu.Lock()
			failed = err
			mu.Unlock()
		}
		for i := range 100 {
			name := fmt.Sprintf("p-%05d", from+i*(n-from)/100)
			g := byPod[name]
			if g == nil {
				fail(fmt.Errorf("no group of pod %s", name))
				return
			}
			now := time.Now().UTC()
			r := apiv1.StatusReport{State: apiv1.StateSucceeded, Reason: "Completed", Containers: []apiv1.ContainerStatus{{Name: "main", Image: "reg.example/app:v1",
				State: apiv1.ContainerState{Terminated: &apiv1.ContainerStateTerminated{ExitCode: 0, Reason: "Completed", StartedAt: now.Add(-time.Second), FinishedAt: now}}}}}
			mu.Lock()
			reported[name] = time.Now() // (its pod may change before the report answers)
			mu.Unlock()
			if _, err := s.srv.Admin.ReportStatus(ctx, g.Metadata.ID, r); err != nil {
				fail(fmt.Errorf("report %s: %w", g.Metadata.ID, err))
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	var lag []time.Duration
	s.watchPods(b, rv, 5*time.Minute, func(p *corev1.Pod, typ watch.EventType) bool {
		mu.Lock()
		defer mu.Unlock()
		if at, ok := reported[p.Name]; ok && typ == watch.Modified && p.Status.Phase == corev1.PodSucceeded {
			delete(reported, p.Name)
			lag = append(lag, time.Since(at))
		}
		return len(lag) >= 100 || failed != nil
	})
	if failed != nil {
		b.Fatal(failed)
	}
	return lag
}

// podsVersion is the resourceVersion of the namespace's pods now.
func (s *scaleBed) podsVersion(b *testing.B) string {
	l, err := s.kube.CoreV1().Pods(s.ns).List(context.Background(), metav1.ListOptions{Limit: 1})
	if err != nil {
		b.Fatal(err)
	}
	return l.ResourceVersion
}

// watchPods gives the namespace's pod events from rv to seen until it
// says it has seen enough, opening the watch again when the apiserver
// ends it; it fails the benchmark after timeout.
func (s *scaleBed) watchPods(b *testing.B, rv string, timeout time.Duration, seen func(*corev1.Pod, watch.EventType) bool) {
	deadline := time.After(timeout)
	for {
		w, err := s.kube.CoreV1().Pods(s.ns).Watch(context.Background(), metav1.ListOptions{ResourceVersion: rv})
		if err != nil {
			b.Fatal(err)
		}
		for open := true; open; {
			select {
			case ev, ok := <-w.ResultChan():
				if !ok {
					open = false
					break
				}
				p, isPod := ev.Object.(*corev1.Pod)
				if !isPod {
					w.Stop()
					b.Fatalf("the watch of pods: %v", ev.Object)
				}
				rv = p.ResourceVersion
				if seen(p, ev.Type) {
					w.Stop()
					return
				}
			case <-deadline:
				w.Stop()
				b.Fatalf("not done after %v", timeout)
			}
		}
	}
}

// procStat is process pid's resident memory (bytes) and CPU time
// (seconds, user and system).
func procStat(b *testing.B, pid int) (rss, cpu float64) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			rss = kb * 1024
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// The fields after the command's closing parenthesis: utime and
	// stime are the 12th and 13th of them, in clock ticks (100 a second).
	f2 := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	ut, _ := strconv.ParseFloat(f2[11], 64)
	st, _ := strconv.ParseFloat(f2[12], 64)
	return rss, (ut + st) / 100
}

// profile writes a 30 s CPU profile of the node to file.
func (s *scaleBed) profile(b *testing.B, file string) {
	resp, err := http.Get("http://" + s.debug + "/debug/pprof/profile?seconds=30")
	if err != nil {
		b.Logf("CPU profile: %v", err)
		return
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err == nil {
		err = os.WriteFile(file, data, 0o644)
	}
	b.Logf("CPU profile %s: %v", file, err)
}

// freePort is a free TCP port of the loopback address.
func freePort(b *testing.B) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
