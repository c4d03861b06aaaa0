package control

import (
	"fmt"
	"math/big"
	"syscall"
	"testing"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/auth"
	"github.com/eci-dev/eci/internal/billing"
	"github.com/eci-dev/eci/internal/store"
)

// BenchmarkBillMonth measures a month's bill of 10,000 groups (9,000 gone,
// their usage records; 1,000 still stored and running) on the embedded
// etcd: the bill by tag per day, the cost metrics' totals, and what
// metering writes (docs/billing.md: one usage record a group, at its
// removal; nothing while it runs).
func BenchmarkBillMonth(b *testing.B) {
	const gone, live = 9000, 1000
	e := newEnv(b, false)
	month := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	var ops []store.Op
	bytes := 0
	for i := 0; i < gone; i++ {
		start := month.Add(time.Duration(i) * 259 * time.Second) // spread over the month
		u := &apiv1.UsageRecord{
			Metadata: apiv1.ObjectMeta{ID: usageKey(fmt.Sprintf("t%d", i%20), fmt.Sprintf("eci-%08d", i)), Tenant: fmt.Sprintf("t%d", i%20), CreatedAt: start},
			Name:     fmt.Sprintf("g%d", i), Tags: map[string]string{"team": fmt.Sprintf("team-%d", i%40)}, VirtualNode: "eci-vnode",
			Zone: "zone-a", InstanceSpec: "1.0-2.0Gi", MilliCPU: 1000, MemoryMiB: 2048,
			Start: start, End: start.Add(time.Duration(600+i%3600) * time.Second),
		}
		op, err := e.svc.records.PutOp(u)
		if err != nil {
			b.Fatal(err)
		}
		bytes += op.Size()
		ops = append(ops, op)
		if len(ops) == 100 {
			if _, err := e.svc.st.Commit(e.ctx, nil, ops); err != nil {
				b.Fatal(err)
			}
			ops = nil
		}
	}
	e.clock.mu.Lock()
	e.clock.t = month.Add(29 * 24 * time.Hour)
	e.clock.mu.Unlock()
	e.vswitch(b, "vsw-a", "zone-a", "198.19.128.0/20")
	e.host(b, "h1", "zone-a", 1_000_000, 1<<24, live)
	st, err := e.svc.loadPlacementState(e.ctx)
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < live; i++ {
		g, _, err := e.svc.CreateGroup(e.ctx, auth.Admin, groupSpec(fmt.Sprintf("live%d", i), 1, 2))
		if err != nil {
			b.Fatal(err)
		}
		if err := e.svc.placeOne(e.ctx, st, g, nil); err != nil {
			b.Fatal(err)
		}
	}
	book, err := billing.Parse([]byte(billing.DefaultBook))
	if err != nil {
		b.Fatal(err)
	}
	e.svc.SetPriceBook(book)
	e.clock.Add(24 * time.Hour)
	q := billing.Query{From: month, To: month.AddDate(0, 1, 0), Granularity: "day", By: "tag:team"}
	b.ResetTimer()
	var billTook, totalsTook time.Duration
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		bill, err := e.svc.Bill(e.ctx, auth.Admin, q)
		if err != nil || len(bill.Lines) == 0 {
			b.Fatal(err)
		}
		billTook += time.Since(t0)
		t0 = time.Now()
		if _, _, err := e.svc.CostTotals(e.ctx, "team"); err != nil {
			b.Fatal(err)
		}
		totalsTook += time.Since(t0)
	}
	b.ReportMetric(float64(billTook.Milliseconds())/float64(b.N), "bill-month-10k-ms")
	b.ReportMetric(float64(totalsTook.Milliseconds())/float64(b.N), "cost-totals-10k-ms")
	b.ReportMetric(float64(bytes)/gone, "usage-record-bytes")
	// Metering's own periodic work: the hourly look for usage records past
	// their retention, and the monitor's look for silent virtual nodes.
	t0 := time.Now()
	e.svc.pass.last.Store(0)
	e.svc.collectUsage(e.ctx)
	if err := e.svc.closeSilentVNodes(e.ctx, e.svc.now()); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(time.Since(t0).Microseconds())/1000, "metering-gc-10k-ms")
}

// BenchmarkMeteringAt10kGroups measures what metering costs in a minute
// with 10,000 groups running (two tenants of 5,000, each on its virtual
// node), on the embedded etcd: the CPU of this process (the service and
// its etcd) and the store's writes. A minute's metering is two heartbeats
// of each virtual node, each node's bill of its pods' running cost, the
// look for silent nodes, and a sixtieth of the hourly retention and fold
// pass; groups that run write nothing. pod-cost-patches-per-min is how
// many pods' rounded cost changes in a minute: the writes the virtual
// nodes make to their Kubernetes API.
func BenchmarkMeteringAt10kGroups(b *testing.B) {
	const perTenant = 5000
	tenants := []string{"ta", "tb"}
	e := newEnv(b, false)
	book, err := billing.Parse([]byte(billing.DefaultBook))
	if err != nil {
		b.Fatal(err)
	}
	e.svc.SetPriceBook(book)
	e.vswitch(b, "vsw-a", "zone-a", "198.19.128.0/19")
	e.vswitch(b, "vsw-b", "zone-a", "198.19.160.0/19")
	for i := 0; i < 10; i++ {
		e.host(b, fmt.Sprintf("h%d", i), "zone-a", 1_000_000, 1<<24, 1000)
	}
	st, err := e.svc.loadPlacementState(e.ctx)
	if err != nil {
		b.Fatal(err)
	}
	since := e.clock.Now()
	for _, tn := range tenants {
		for i := 0; i < perTenant; i++ {
			spec := groupSpec(fmt.Sprintf("pod-%d", i), 1, 2)
			spec.Metadata.Tenant = tn
			spec.Metadata.Labels = map[string]string{apiv1.LabelVirtualNode: "vk-" + tn}
			g, _, err := e.svc.CreateGroup(e.ctx, auth.Admin, spec)
			if err != nil {
				b.Fatal(err)
			}
			if err := e.svc.placeOne(e.ctx, st, g, nil); err != nil {
				b.Fatal(err)
			}
			e.clock.Add(120 * time.Millisecond) // 10,000 pods made over 20 minutes: their cents tick at different minutes
		}
	}
	revision := func() int64 {
		resp, err := e.svc.st.Client.Get(e.ctx, "health")
		if err != nil {
			b.Fatal(err)
		}
		return resp.Header.Revision
	}
	costs := func(tn string) map[string]string {
		p := auth.Principal{Kind: apiv1.TokenTenant, Tenant: tn}
		// Since the oldest pod, as the node asks; its lines and the node's own.
		bill, err := e.svc.Bill(e.ctx, p, billing.Query{From: since, To: e.clock.Now(), By: "group"})
		if err != nil || len(bill.Lines) < perTenant {
			b.Fatalf("bill of %s: %v (%d lines)", tn, err, len(bill.Lines))
		}
		out := map[string]string{}
		for _, l := range bill.Lines {
			r, _ := new(big.Rat).SetString(l.Amount)
			out[l.Key] = r.FloatString(2)
		}
		return out
	}
	e.clock.Add(2 * time.Hour) // the pods' costs tick by the cent, as they do once they run a while
	prev := map[string]map[string]string{}
	for _, tn := range tenants {
		prev[tn] = costs(tn)
	}
	b.ResetTimer()
	var cpu time.Duration
	var writes, patches int64
	for i := 0; i < b.N; i++ {
		e.clock.Add(time.Minute)
		rev0, cpu0 := revision(), processCPU(b)
		for _, tn := range tenants {
			p := auth.Principal{Kind: apiv1.TokenTenant, Tenant: tn}
			for j := 0; j < 2; j++ {
				if err := e.svc.VirtualNodeHeartbeat(e.ctx, p, "vk-"+tn, apiv1.VirtualNodeHeartbeat{}); err != nil {
					b.Fatal(err)
				}
			}
			cur := costs(tn)
			for k, v := range cur {
				if prev[tn][k] != v {
					patches++
				}
			}
			prev[tn] = cur
		}
		if err := e.svc.closeSilentVNodes(e.ctx, e.svc.now()); err != nil {
			b.Fatal(err)
		}
		cpu += processCPU(b) - cpu0
		t0 := processCPU(b)
		e.svc.pass.last.Store(0)
		e.svc.collectUsage(e.ctx)
		cpu += (processCPU(b) - t0) / 60
		writes += revision() - rev0
	}
	b.ReportMetric(float64(cpu.Milliseconds())/float64(b.N), "cpu-ms-per-min")
	b.ReportMetric(float64(writes)/float64(b.N), "etcd-writes-per-min")
	b.ReportMetric(float64(patches)/float64(b.N), "pod-cost-patches-per-min")
}

// processCPU is the CPU time this process has used, user and system.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
