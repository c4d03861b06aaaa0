package vnode

import (
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	apiv1 "github.com/eci-dev/eci/api/v1"
)

// kubeletMetrics are the node's /metrics, as a kubelet's (names of
// pkg/kubelet/metrics): the running pods and containers, how long pods
// took to start, how long its calls to the instance service (its runtime)
// took, its node name, and the process's own.
type kubeletMetrics struct {
	reg   *prometheus.Registry
	start prometheus.Histogram
	ops   *prometheus.HistogramVec
	// podUpdates counts the pod update events by what the node did with
	// them (podupdates.go).
	podUpdates *prometheus.CounterVec
	mu         sync.Mutex
	observed   map[string]bool // pod UIDs whose start was observed
}

func newKubeletMetrics(p *Provider, nodeName string) *kubeletMetrics {
	m := &kubeletMetrics{reg: prometheus.NewRegistry(), observed: map[string]bool{}}
	m.start = prometheus.NewHistogram(prometheus.HistogramOpts{Subsystem: "kubelet", Name: "pod_start_total_duration_seconds",
		Help:    "Duration in seconds to start a pod since creation, measured from the pod's creation timestamp to its instance running",
		Buckets: []float64{0.5, 1, 2, 3, 4, 5, 6, 8, 10, 20, 30, 45, 60, 120, 180, 240, 300, 360, 480, 600, 900, 1200, 1800, 2700, 3600}})
	m.ops = prometheus.NewHistogramVec(prometheus.HistogramOpts{Subsystem: "kubelet", Name: "runtime_operations_duration_seconds",
		Help: "Duration in seconds of the node's calls to the instance service, by operation", Buckets: prometheus.ExponentialBuckets(.005, 2.5, 14)},
		[]string{"operation_type"})
	m.podUpdates = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "eci", Subsystem: "vnode", Name: "pod_update_events_total",
		Help: "Pod update events of the node's informer, by result: resync, echo (its own status write) and own-annotations (its own annotation patch) are not compared by the pod controller, passed are"},
		[]string{"result"})
	nodeName0 := prometheus.NewGaugeVec(prometheus.GaugeOpts{Subsystem: "kubelet", Name: "node_name", Help: "The node's name. The count is always 1."}, []string{"node"})
	nodeName0.WithLabelValues(nodeName).Set(1)
	counts := &nodeCounts{p: p,
		pods:       prometheus.NewDesc("kubelet_running_pods", "Number of pods whose instance runs", nil, nil),
		containers: prometheus.NewDesc("kubelet_running_containers", "Number of containers currently running (and in other states)", []string{"container_state"}, nil)}
	m.reg.MustRegister(m.start, m.ops, m.podUpdates, nodeName0, counts,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// handler serves the metrics in Prometheus' text format.
func (m *kubeletMetrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// observeStart records how long the pod of uid, created at created, took
// to run, once (the caller saw it start: a node that starts again does
// not count its running pods again).
func (m *kubeletMetrics) observeStart(uid string, created, running time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.observed[uid] || created.IsZero() || running.Before(created) {
		return
	}
	m.observed[uid] = true
	m.start.Observe(running.Sub(created).Seconds())
}

// forget drops pod uid (gone).
func (m *kubeletMetrics) forget(uid string) {
	m.mu.Lock()
	delete(m.observed, uid)
	m.mu.Unlock()
}

// operation times one call to the instance service.
func (m *kubeletMetrics) operation(op string, start time.Time) {
	m.ops.WithLabelValues(op).Observe(time.Since(start).Seconds())
}

// nodeCounts are kubelet_running_pods and kubelet_running_containers by
// state, read in one pass at each scrape.
type nodeCounts struct {
	p                *Provider
	pods, containers *prometheus.Desc
}

func (c *nodeCounts) Describe(ch chan<- *prometheus.Desc) { ch <- c.pods; ch <- c.containers }

func (c *nodeCounts) Collect(ch chan<- prometheus.Metric) {
	pods, states := c.p.counts()
	ch <- prometheus.MustNewConstMetric(c.pods, prometheus.GaugeValue, float64(pods))
	for _, s := range []string{"running", "created", "exited", "unknown"} {
		ch <- prometheus.MustNewConstMetric(c.containers, prometheus.GaugeValue, float64(states[s]), s)
	}
}

// counts are the node's running pods and its containers by state (as the
// kubelet's container_state label has them).
func (p *Provider) counts() (running int, states map[string]int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	states = map[string]int{}
	for uid, g := range p.groups {
		if pod := p.pods[podKey(g.Metadata.Labels[LabelPodNamespace], g.Metadata.Labels[LabelPodName])]; pod == nil || string(pod.UID) != uid {
			continue
		}
		switch g.Status.State {
		case apiv1.StateRunning, apiv1.StateRestarting, apiv1.StateUpdating:
			running++ // its sandbox runs
		}
		// As the runtime has them: a container waiting for its next start
		// is an exited one; one waiting for its first (a pull) is none.
		for _, cs := range append(append([]apiv1.ContainerStatus(nil), g.Status.InitContainers...), g.Status.Containers...) {
			switch {
			case cs.State.Running != nil:
				states["running"]++
			case cs.State.Terminated != nil, cs.State.Waiting != nil && cs.LastState.Terminated != nil:
				states["exited"]++
			}
		}
	}
	return running, states
}
