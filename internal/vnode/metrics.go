package vnode

import (
	"context"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	statsv1alpha1 "k8s.io/kubelet/pkg/apis/stats/v1alpha1"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/log"
)

// The node's resource figures, sampled from the groups of its running pods:
// /stats/summary (kubectl top through metrics-server's older path) and
// /metrics/resource (metrics-server's path), with the kubelet's names.

type podSample struct {
	id       string // the group's
	pod      *corev1.Pod
	start    time.Time            // the group's, as the pod's StartTime
	ctrStart map[string]time.Time // running containers' start
	stats    *apiv1.GroupStats
}

func (s podSample) containerStart(name string) time.Time {
	if t, ok := s.ctrStart[name]; ok {
		return t
	}
	return s.start
}

// groupStart is the pod's start: when its instance began to be billed (image
// pulls and mounts included), else its creation.
func groupStart(g *apiv1.ContainerGroup) time.Time {
	if g.Status.PendingAt != nil {
		return *g.Status.PendingAt
	}
	return g.Metadata.CreatedAt
}

// sample asks the service for the stats of every running pod's group. A
// group that ended meanwhile is left out, as the kubelet leaves out a
// container it can no longer read. It also returns the node's cumulative
// CPU core-seconds (nanoseconds), which never goes down.
func (p *Provider) sample(ctx context.Context) ([]podSample, uint64) {
	p.mu.Lock()
	var out []podSample
	for _, pod := range p.pods {
		if g := p.groups[string(pod.UID)]; g != nil && g.Status.State == apiv1.StateRunning {
			s := podSample{id: g.Metadata.ID, pod: pod, start: groupStart(g), ctrStart: map[string]time.Time{}}
			for _, c := range g.Status.Containers {
				if c.State.Running != nil {
					s.ctrStart[c.Name] = c.State.Running.StartedAt
				}
			}
			out = append(out, s)
		}
	}
	p.mu.Unlock()
	running := make([]string, 0, len(out))
	for _, s := range out {
		running = append(running, s.id)
	}
	kept := out[:0]
	for _, s := range out {
		st, err := p.cfg.ECI.GroupStats(ctx, s.id)
		if err != nil {
			log.G(ctx).Debug("stats of a group", "group", s.id, "err", err)
			continue
		}
		s.stats = st
		kept = append(kept, s)
	}
	return kept, p.cpu.total(running, kept)
}

// nodeCPU keeps the node's cumulative CPU monotonic, as a counter must be
// (metrics-server drops a node whose counter goes down): the last reading of
// each running group, plus the last readings of the groups that ended.
type nodeCPU struct {
	mu    sync.Mutex
	last  map[string]uint64
	ended uint64
}

func (n *nodeCPU) total(running []string, sampled []podSample) uint64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.last == nil {
		n.last = map[string]uint64{}
	}
	for _, s := range sampled {
		if v := s.stats.CPU.UsageCoreNanoSeconds; v > n.last[s.id] {
			n.last[s.id] = v
		}
	}
	live := map[string]bool{}
	for _, id := range running {
		live[id] = true
	}
	var sum uint64
	for id, v := range n.last {
		if !live[id] {
			n.ended += v // ended: its time stays in the node's
			delete(n.last, id)
			continue
		}
		sum += v
	}
	return n.ended + sum
}

// GetStatsSummary serves /stats/summary.
func (p *Provider) GetStatsSummary(ctx context.Context) (*statsv1alpha1.Summary, error) {
	samples, cpuTotal := p.sample(ctx)
	now := metav1.NewTime(time.Now())
	sum := &statsv1alpha1.Summary{Node: statsv1alpha1.NodeStats{NodeName: p.cfg.NodeName, StartTime: metav1.NewTime(p.started)}}
	var nodeCPU, nodeMem uint64
	for _, s := range samples {
		st := s.stats
		ts, start := metav1.NewTime(st.Time), metav1.NewTime(s.start)
		ps := statsv1alpha1.PodStats{
			PodRef:           statsv1alpha1.PodReference{Name: s.pod.Name, Namespace: s.pod.Namespace, UID: string(s.pod.UID)},
			StartTime:        start,
			CPU:              cpuStats(ts, st.CPU),
			Memory:           memStats(ts, st.Memory),
			Network:          &statsv1alpha1.NetworkStats{Time: ts, InterfaceStats: statsv1alpha1.InterfaceStats{Name: st.Network.Interface, RxBytes: &st.Network.RxBytes, TxBytes: &st.Network.TxBytes}},
			EphemeralStorage: &statsv1alpha1.FsStats{Time: ts, UsedBytes: &st.EphemeralStorage.UsedBytes, CapacityBytes: &st.EphemeralStorage.CapacityBytes},
		}
		for _, c := range st.Containers {
			ps.Containers = append(ps.Containers, statsv1alpha1.ContainerStats{Name: c.Name, StartTime: metav1.NewTime(s.containerStart(c.Name)), CPU: cpuStats(ts, c.CPU), Memory: memStats(ts, c.Memory)})
		}
		nodeCPU += st.CPU.UsageNanoCores
		nodeMem += st.Memory.WorkingSetBytes
		sum.Pods = append(sum.Pods, ps)
	}
	sum.Node.CPU = &statsv1alpha1.CPUStats{Time: now, UsageNanoCores: &nodeCPU, UsageCoreNanoSeconds: &cpuTotal}
	sum.Node.Memory = &statsv1alpha1.MemoryStats{Time: now, WorkingSetBytes: &nodeMem}
	return sum, nil
}

func cpuStats(ts metav1.Time, c apiv1.CPUStats) *statsv1alpha1.CPUStats {
	return &statsv1alpha1.CPUStats{Time: ts, UsageNanoCores: &c.UsageNanoCores, UsageCoreNanoSeconds: &c.UsageCoreNanoSeconds}
}

func memStats(ts metav1.Time, m apiv1.MemoryStats) *statsv1alpha1.MemoryStats {
	return &statsv1alpha1.MemoryStats{Time: ts, UsageBytes: &m.UsageBytes, WorkingSetBytes: &m.WorkingSetBytes, RSSBytes: &m.RSSBytes}
}

// GetMetricsResource serves /metrics/resource with the kubelet's resource
// metrics (k8s.io/kubernetes pkg/kubelet/metrics/collectors): what
// metrics-server scrapes for kubectl top and the HPA. The node's figures are
// the sums over its running groups: a virtual node has no machine of its own.
func (p *Provider) GetMetricsResource(ctx context.Context) ([]*dto.MetricFamily, error) {
	samples, cpuTotal := p.sample(ctx)
	fams := newFamilies()
	nodeCPU := float64(cpuTotal) / 1e9
	var nodeMem float64
	var last time.Time
	for _, s := range samples {
		st := s.stats
		ms := st.Time.UnixMilli()
		pod := []*dto.LabelPair{label("namespace", s.pod.Namespace), label("pod", s.pod.Name)}
		fams.counter("pod_cpu_usage_seconds_total", float64(st.CPU.UsageCoreNanoSeconds)/1e9, ms, pod...)
		fams.gauge("pod_memory_working_set_bytes", float64(st.Memory.WorkingSetBytes), ms, pod...)
		for _, c := range st.Containers {
			ctr := append([]*dto.LabelPair{label("container", c.Name)}, pod...)
			fams.counter("container_cpu_usage_seconds_total", float64(c.CPU.UsageCoreNanoSeconds)/1e9, ms, ctr...)
			fams.gauge("container_memory_working_set_bytes", float64(c.Memory.WorkingSetBytes), ms, ctr...)
			fams.gauge("container_start_time_seconds", float64(s.containerStart(c.Name).UnixNano())/1e9, ms, ctr...)
		}
		nodeMem += float64(st.Memory.WorkingSetBytes)
		if st.Time.After(last) {
			last = st.Time
		}
	}
	if last.IsZero() {
		last = time.Now()
	}
	fams.counter("node_cpu_usage_seconds_total", nodeCPU, last.UnixMilli())
	fams.gauge("node_memory_working_set_bytes", nodeMem, last.UnixMilli())
	fams.gauge("scrape_error", 0, 0)
	return fams.list(), nil
}

var metricHelp = map[string]string{
	"node_cpu_usage_seconds_total":       "Cumulative cpu time consumed by the node in core-seconds",
	"node_memory_working_set_bytes":      "Current working set of the node in bytes",
	"pod_cpu_usage_seconds_total":        "Cumulative cpu time consumed by the pod in core-seconds",
	"pod_memory_working_set_bytes":       "Current working set of the pod in bytes",
	"container_cpu_usage_seconds_total":  "Cumulative cpu time consumed by the container in core-seconds",
	"container_memory_working_set_bytes": "Current working set of the container in bytes",
	"container_start_time_seconds":       "Start time of the container since unix epoch in seconds",
	"scrape_error":                       "1 if there was an error while getting container metrics, 0 otherwise",
}

// families keeps metric families in the order they were first used.
type families struct {
	order  []string
	byName map[string]*dto.MetricFamily
}

func newFamilies() *families { return &families{byName: map[string]*dto.MetricFamily{}} }

func (f *families) family(name string, typ dto.MetricType) *dto.MetricFamily {
	mf := f.byName[name]
	if mf == nil {
		mf = &dto.MetricFamily{Name: ptr(name), Help: ptr(metricHelp[name]), Type: typ.Enum()}
		f.byName[name] = mf
		f.order = append(f.order, name)
	}
	return mf
}

func (f *families) counter(name string, v float64, ms int64, labels ...*dto.LabelPair) {
	mf := f.family(name, dto.MetricType_COUNTER)
	mf.Metric = append(mf.Metric, &dto.Metric{Label: labels, Counter: &dto.Counter{Value: &v}, TimestampMs: timestamp(ms)})
}

func (f *families) gauge(name string, v float64, ms int64, labels ...*dto.LabelPair) {
	mf := f.family(name, dto.MetricType_GAUGE)
	mf.Metric = append(mf.Metric, &dto.Metric{Label: labels, Gauge: &dto.Gauge{Value: &v}, TimestampMs: timestamp(ms)})
}

func (f *families) list() []*dto.MetricFamily {
	out := make([]*dto.MetricFamily, 0, len(f.order))
	for _, n := range f.order {
		out = append(out, f.byName[n])
	}
	return out
}

func label(name, value string) *dto.LabelPair {
	return &dto.LabelPair{Name: ptr(name), Value: ptr(value)}
}

func timestamp(ms int64) *int64 {
	if ms == 0 {
		return nil
	}
	return &ms
}

func ptr[T any](v T) *T { return &v }
