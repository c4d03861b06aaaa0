package control

import (
	"fmt"
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
	e.svc.usageGC.Store(0)
	e.svc.collectUsage(e.ctx)
	if err := e.svc.closeSilentVNodes(e.ctx, e.svc.now()); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(time.Since(t0).Microseconds())/1000, "metering-gc-10k-ms")
}
