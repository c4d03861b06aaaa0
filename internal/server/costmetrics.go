package server

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/eci-dev/eci/internal/control"
	"github.com/eci-dev/eci/internal/errdefs"
	"github.com/eci-dev/eci/internal/log"
)

// The cost metrics (docs/billing.md) name tenants and what they spend, so
// they are not on the open /metrics: GET /metrics/billing takes the admin's
// token (a Prometheus scrape's bearer token). They are remade from the
// usage at most every costMetricsEvery, as a scrape comes.
const costMetricsEvery = 30 * time.Second

var (
	costDesc = prometheus.NewDesc("eci_cost_total", "What the groups were billed for, summed over the usage kept (a gauge: it falls when usage past its retention goes), by tenant and the value of the --cost-metrics-tag tag (\"-\": none; \"other\": past a tenant's 50 costliest values), in the price book's currency.",
		[]string{"tenant", "tag", "currency"}, nil)
	secondsDesc = prometheus.NewDesc("eci_billed_seconds_total", "Billed seconds of the groups, summed over the usage kept (a gauge, as eci_cost_total), by tenant, tag value and state (pending, running).",
		[]string{"tenant", "tag", "state"}, nil)
)

// costCollector serves the cost metrics from a cached computation.
type costCollector struct {
	svc    *control.Service
	tagKey string

	mu       sync.Mutex
	at       time.Time
	totals   []control.CostTotal
	currency string
}

func (c *costCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- costDesc
	ch <- secondsDesc
}

func (c *costCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.at) > costMetricsEvery {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		totals, currency, err := c.svc.CostTotals(ctx, c.tagKey)
		cancel()
		if err != nil {
			log.G(context.Background()).Warn("cost metrics", "err", err)
		} else {
			c.totals, c.currency, c.at = totals, currency, time.Now()
		}
	}
	for _, t := range c.totals {
		ch <- prometheus.MustNewConstMetric(costDesc, prometheus.GaugeValue, t.Amount, t.Tenant, t.Tag, c.currency)
		ch <- prometheus.MustNewConstMetric(secondsDesc, prometheus.GaugeValue, float64(t.Pending), t.Tenant, t.Tag, "pending")
		ch <- prometheus.MustNewConstMetric(secondsDesc, prometheus.GaugeValue, float64(t.Running), t.Tenant, t.Tag, "running")
	}
}

// costMetrics answers GET /metrics/billing (admin only).
func (s *Server) costMetrics(w http.ResponseWriter, r *http.Request) {
	if !principal(r).IsAdmin() {
		writeError(w, r, errdefs.ErrPermissionDenied)
		return
	}
	s.costOnce.Do(func() {
		s.costReg = prometheus.NewRegistry()
		s.costReg.MustRegister(&costCollector{svc: s.svc, tagKey: s.cfg.CostMetricsTag})
	})
	promhttp.HandlerFor(s.costReg, promhttp.HandlerOpts{}).ServeHTTP(w, r)
}
