package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// cpuUsage is a snapshot of where the machine's CPU time went: each
// process's own user and system time, and the time of its children it
// reaped (runc, iptables: short-lived processes show up there), by
// command name; and the machine's busy time.
type cpuUsage struct {
	at      time.Time
	busy    float64 // seconds of all CPUs not idle
	perProc map[int]procCPU
}

type procCPU struct {
	name        string
	start       string // clock ticks after boot: with the pid, the process
	own, reaped float64
}

// takeCPUUsage reads /proc now.
func takeCPUUsage() cpuUsage {
	u := cpuUsage{at: time.Now(), perProc: map[int]procCPU{}}
	if data, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := strings.Cut(string(data), "\n")
		f := strings.Fields(line)
		// user, nice, system, irq, softirq (not idle, iowait, steal, and
		// not guest, which user already counts).
		for _, i := range []int{0, 1, 2, 5, 6} {
			if i+1 < len(f) {
				n, _ := strconv.ParseFloat(f[i+1], 64)
				u.busy += n / 100
			}
		}
	}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, s := range stats {
		data, err := os.ReadFile(s)
		if err != nil {
			continue
		}
		open, end := strings.IndexByte(string(data), '('), strings.LastIndexByte(string(data), ')')
		if open < 0 || end < open {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(s)))
		name := string(data[open+1 : end])
		// Kernel workers are many, by number: count them by kind.
		if i := strings.IndexAny(name, "/:"); i > 0 && strings.HasPrefix(name, "kworker") {
			name = "kworker"
		}
		f := strings.Fields(string(data[end+1:]))
		if len(f) < 20 {
			continue
		}
		ut, _ := strconv.ParseFloat(f[11], 64)
		st, _ := strconv.ParseFloat(f[12], 64)
		cut, _ := strconv.ParseFloat(f[13], 64)
		cst, _ := strconv.ParseFloat(f[14], 64)
		u.perProc[pid] = procCPU{name: name, start: f[19], own: (ut + st) / 100, reaped: (cut + cst) / 100}
	}
	return u
}

// since reports the CPU seconds spent from before to u, by command (own
// time of processes alive at u, less what they had at before; reaped
// children's time likewise), the largest first, and the machine's busy
// seconds. Processes that ended in between are counted only through
// their parents' reaped time, with their whole life's time (a process
// that began before the window counts in full).
func (u cpuUsage) since(before cpuUsage) (lines []string, busy float64) {
	own, reaped := map[string]float64{}, map[string]float64{}
	for pid, p := range u.perProc {
		b := before.perProc[pid]
		if b.start != p.start { // a new process (the pid reused); an exec keeps its count
			b = procCPU{}
		}
		own[p.name] += p.own - b.own
		reaped[p.name+" (children)"] += p.reaped - b.reaped
	}
	type row struct {
		name string
		s    float64
	}
	var rows []row
	total := 0.0
	for _, m := range []map[string]float64{own, reaped} {
		for n, s := range m {
			if s >= 0.05 {
				rows = append(rows, row{n, s})
			}
			total += s
		}
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].s > rows[j].s })
	for _, r := range rows {
		lines = append(lines, fmt.Sprintf("%-40s %7.2f s", r.name, r.s))
	}
	busy = u.busy - before.busy
	lines = append(lines, fmt.Sprintf("%-40s %7.2f s (machine busy %.2f s over %s)", "sum of the above", total, busy, u.at.Sub(before.at).Round(time.Millisecond)))
	return lines, busy
}

// apiRequests reads the apiserver's request counters
// (apiserver_request_total) by verb, resource and subresource.
func apiRequests(kube kubernetes.Interface) map[string]float64 {
	out := map[string]float64{}
	raw, err := kube.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(context.Background())
	if err != nil {
		return out
	}
	for _, line := range strings.Split(string(raw), "\n") {
		labels, ok := strings.CutPrefix(line, "apiserver_request_total{")
		if !ok {
			continue
		}
		end := strings.LastIndexByte(labels, '}')
		if end < 0 {
			continue
		}
		v, _ := strconv.ParseFloat(strings.TrimSpace(labels[end+1:]), 64)
		l := map[string]string{}
		for _, kv := range strings.Split(labels[:end], ",") {
			k, val, _ := strings.Cut(kv, "=")
			l[k] = strings.Trim(val, `"`)
		}
		key := l["verb"] + " " + l["resource"]
		if l["subresource"] != "" {
			key += "/" + l["subresource"]
		}
		out[key] += v
	}
	return out
}

// apiRequestsSince lists the requests counted from before to after, the
// most first.
func apiRequestsSince(before, after map[string]float64) []string {
	var keys []string
	for k, v := range after {
		if v-before[k] >= 1 {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool { return after[keys[i]]-before[keys[i]] > after[keys[j]]-before[keys[j]] })
	var lines []string
	for _, k := range keys {
		lines = append(lines, fmt.Sprintf("%-40s %6.0f", k, after[k]-before[k]))
	}
	return lines
}

// profileContainerd writes a CPU profile of the bed's containerd over d
// to ECI_BENCH_PROFILE/ns-containerd.pprof, when that variable is set;
// wait waits for it.
func profileContainerd(socket, ns string, d time.Duration) (wait func()) {
	dir := os.Getenv("ECI_BENCH_PROFILE")
	if dir == "" || socket == "" {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		hc := &http.Client{Timeout: d + 30*time.Second, Transport: &http.Transport{DisableKeepAlives: true,
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, "unix", socket+".debug")
			}}}
		resp, err := hc.Get(fmt.Sprintf("http://containerd/debug/pprof/profile?seconds=%d", int(d.Seconds())))
		if err != nil {
			fmt.Printf("%s: containerd profile: %v\n", ns, err)
			return
		}
		defer resp.Body.Close()
		data, err := io.ReadAll(resp.Body)
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, ns+"-containerd.pprof"), data, 0o644)
		}
		if err != nil {
			fmt.Printf("%s: containerd profile: %v\n", ns, err)
		}
	}()
	return func() { <-done }
}

// reportCost prints what burst ns of n pods cost from before (the
// machine's CPU by process, reqs the apiserver's requests): the CPU, the
// requests, who wrote a pod, and the pods' Events by source and reason.
func (c *cluster) reportCost(ns string, n int, before cpuUsage, reqs map[string]float64) {
	ctx := context.Background()
	usage, busy := takeCPUUsage().since(before)
	for _, l := range usage {
		fmt.Printf("%s: cpu: %s\n", ns, l)
	}
	if n > 0 {
		fmt.Printf("%s: %.0f ms of the machine's CPU a pod\n", ns, busy*1000/float64(n))
	}
	for _, l := range apiRequestsSince(reqs, apiRequests(c.kube)) {
		fmt.Printf("%s: apiserver requests: %s\n", ns, l)
	}
	if pods, err := c.kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{Limit: 1}); err == nil && len(pods.Items) > 0 {
		for _, m := range pods.Items[0].ManagedFields {
			fmt.Printf("%s: a pod's writer: %s %s %s\n", ns, m.Manager, m.Operation, m.Subresource)
		}
	}
	if evs, err := c.kube.CoreV1().Events(ns).List(ctx, metav1.ListOptions{}); err == nil {
		reasons := map[string]int{}
		for _, e := range evs.Items {
			reasons[e.Source.Component+" "+e.Reason] += int(max(e.Count, 1))
		}
		fmt.Printf("%s: events by source and reason: %v\n", ns, reasons)
	}
}
