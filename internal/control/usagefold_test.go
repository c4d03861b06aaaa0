package control

import (
	"fmt"
	"strings"
	"testing"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/auth"
	"github.com/eci-dev/eci/internal/billing"
	"github.com/eci-dev/eci/internal/store"
)

// foldBook changes its prices at 13:30, within an hour of the test.
const foldBook = `currency: USD
periods:
  - from: 2026-11-01
    vcpu: 0.0000077
    memory: 0.00000096
  - from: 2026-11-23T13:30:00Z
    vcpu: 0.0000081
    memory: 0.00000101
`

// Short groups' usage records are summed by hour after the detail period,
// and every bill reads the same after as before: the groups, the seconds,
// the resource-seconds and the cost, by hour, by tenant, by tag.
func TestShortGroupsAreSummed(t *testing.T) {
	e := newEnv(t, false)
	e.vswitch(t, "vsw-a", "zone-a", "198.19.128.0/20")
	e.host(t, "h1", "zone-a", 64000, 1<<20, 100)
	book, err := billing.Parse([]byte(foldBook))
	if err != nil {
		t.Fatal(err)
	}
	e.svc.SetPriceBook(book)
	start := e.clock.Now() // 12:00
	// Groups made, run and removed through the service: 4 min each, within
	// the hours 12:00, 13:00 (price change at 13:30) and 14:00; three cross
	// 13:00, 13:30 and 14:00.
	for i := 0; i < 30; i++ {
		spec := groupSpec(fmt.Sprintf("job-%d", i), 1, 2)
		spec.Spec.Tags = map[string]string{"team": []string{"a", "b"}[i%2]}
		g := e.placed(t, spec)
		e.clock.Add(20 * time.Second)
		if _, err := e.svc.ReportStatus(e.ctx, hostPrincipal("h1"), g.Metadata.ID, apiv1.StatusReport{State: apiv1.StateRunning}); err != nil {
			t.Fatal(err)
		}
		e.clock.Add(220 * time.Second)
		if _, err := e.svc.DeleteGroup(e.ctx, auth.Admin, g.Metadata.ID, nil, true); err != nil {
			t.Fatal(err)
		}
		e.clock.Add(17 * time.Second) // 30 x 257 s: 12:00 to 14:08
	}
	// Many more short records, written as the removals write them: 250 of
	// tenant t2 in the hour 12:00 (three transactions of a sum), and 60 of
	// tenant t3 each with a tag set of its own and of two sizes: 50 sums,
	// and the rest of 10 of both sizes.
	var ops []store.Op
	put := func(tenant, id string, tags map[string]string, at time.Time, vcpu int64) {
		u := &apiv1.UsageRecord{
			Metadata: apiv1.ObjectMeta{ID: usageKey(tenant, id), Tenant: tenant, CreatedAt: at.Add(time.Minute)},
			Group:    id, Name: id, Tags: tags, Zone: "zone-a", InstanceSpec: fmt.Sprintf("%d.0-2.0Gi", vcpu), MilliCPU: vcpu * 1000, MemoryMiB: 2048,
			Start: at, End: at.Add(time.Minute),
		}
		op, err := e.svc.records.PutOp(u)
		if err != nil {
			t.Fatal(err)
		}
		if ops = append(ops, op); len(ops) == 100 {
			if _, err := e.svc.st.Commit(e.ctx, nil, ops); err != nil {
				t.Fatal(err)
			}
			ops = nil
		}
	}
	for i := 0; i < 250; i++ {
		put("t2", fmt.Sprintf("eci-t2-%03d", i), map[string]string{"team": "c"}, start.Add(time.Duration(i)*10*time.Second), 1)
	}
	for i := 0; i < 60; i++ {
		put("t3", fmt.Sprintf("eci-t3-%03d", i), map[string]string{"run": fmt.Sprint(i)}, start.Add(time.Duration(i)*time.Minute/2), int64(1+i%2))
	}
	if _, err := e.svc.st.Commit(e.ctx, nil, ops); err != nil {
		t.Fatal(err)
	}
	end := start.Add(3 * time.Hour)
	bills := func() map[string]string {
		t.Helper()
		out := map[string]string{}
		for _, q := range []billing.Query{
			{From: start, To: end, Granularity: "hour", By: "tenant"},
			{From: start, To: end, By: "tag:team"},
			{From: start.Add(90 * time.Minute), To: end, By: "tenant"}, // from the price change
		} {
			b, err := e.svc.Bill(e.ctx, auth.Admin, q)
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range b.Lines {
				p := ""
				if l.Period != nil {
					p = l.Period.Format("15:04")
				}
				out[fmt.Sprintf("%s %s %s", q.From.Format("15:04"), p, l.Key)] = fmt.Sprintf("groups %d pending %d running %d cpu %d mem %d amount %s",
					l.Groups, l.PendingSeconds, l.RunningSeconds, l.MilliCPUSeconds, l.MemoryMiBSeconds, l.Amount)
			}
			out[q.From.Format("15:04")+" "+q.By+" total"] = b.Total
		}
		return out
	}
	count := func() int64 {
		t.Helper()
		n, err := e.svc.records.Count(e.ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	before, n0 := bills(), count()
	if n0 != 340 {
		t.Fatalf("%d usage records before, want 340", n0)
	}

	// Within the detail period nothing is summed.
	e.clock.Add(DefaultUsageDetail - 3*time.Hour)
	e.svc.usageGC.Store(0)
	e.svc.collectUsage(e.ctx)
	if n := count(); n != n0 {
		t.Fatalf("%d usage records within the detail period, want %d", n, n0)
	}
	e.clock.Add(4 * time.Hour)
	e.svc.usageGC.Store(0)
	e.svc.collectUsage(e.ctx)
	after, n1 := bills(), count()
	// The default tenant: 7 sums (a and b at 12:00, 13:00 before and after
	// 13:30; b at 14:00) and 3 kept apart; t2: 1 sum; t3: 50 and the rest.
	if n1 != 62 {
		t.Fatalf("%d usage records after the fold, want 62 (of %d)", n1, n0)
	}
	for k, v := range before {
		if after[k] != v {
			t.Errorf("%s: %s before the fold, %s after", k, v, after[k])
		}
	}
	if len(after) != len(before) {
		t.Errorf("%d lines after, %d before", len(after), len(before))
	}
	recs, _, _, err := e.svc.records.List(e.ctx, store.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tagged3, rest3, kept := 0, 0, 0
	for _, r := range recs {
		switch {
		case r.Groups == 0:
			kept++
		case r.Metadata.Tenant == "t3" && r.MilliCPU == 0:
			if rest3 = r.Groups; r.Tags != nil || r.MilliCPUSeconds != 5*60*1000+5*60*2000 {
				t.Errorf("the rest of t3: %+v, want no tags and 900,000 milli-vCPU-seconds", r)
			}
		case r.Metadata.Tenant == "t3":
			tagged3++
		}
		if r.Groups > 0 && !strings.HasPrefix(r.Metadata.ID, r.Metadata.Tenant+"/~") {
			t.Errorf("sum %s: not TENANT/~...", r.Metadata.ID)
		}
	}
	if tagged3 != MaxFoldSums || rest3 != 60-MaxFoldSums {
		t.Errorf("tenant t3: %d sums and the rest of %d groups, want %d and %d", tagged3, rest3, MaxFoldSums, 60-MaxFoldSums)
	}
	// A bill by group shows the sums as one key.
	b, err := e.svc.Bill(e.ctx, auth.Admin, billing.Query{From: start, To: end, By: "group"})
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Lines) != 4 || b.Lines[0].Key != billing.SummedKey || b.Lines[0].Groups != 337 {
		t.Errorf("by group: %+v, want %s of 337 groups and the 3 kept apart", b.Lines, billing.SummedKey)
	}
	// Another pass changes nothing.
	e.svc.usageGC.Store(0)
	e.svc.collectUsage(e.ctx)
	if n := count(); n != n1 {
		t.Errorf("%d records after a second pass, want %d", n, n1)
	}
}

// A fold whose record changed after it was read writes nothing: the
// record and the sum stay as they were.
func TestFoldIsAllOrNothing(t *testing.T) {
	e := newEnv(t, false)
	at := e.clock.Now().Add(-72 * time.Hour)
	var members []*apiv1.UsageRecord
	for i := 0; i < 3; i++ {
		u := &apiv1.UsageRecord{
			Metadata: apiv1.ObjectMeta{ID: usageKey("t1", fmt.Sprintf("eci-%d", i)), Tenant: "t1", CreatedAt: at},
			Group:    fmt.Sprintf("eci-%d", i), MilliCPU: 1000, MemoryMiB: 2048, Start: at, End: at.Add(time.Minute),
		}
		if err := e.svc.records.Create(e.ctx, u, nil); err != nil {
			t.Fatal(err)
		}
		members = append(members, u)
	}
	stale := *members[1]
	members[1].Name = "changed"
	if err := e.svc.records.Update(e.ctx, members[1], nil); err != nil {
		t.Fatal(err)
	}
	members[1] = &stale
	f := &fold{sum: &apiv1.UsageRecord{Metadata: apiv1.ObjectMeta{ID: usageKey("t1", "~sum"), Tenant: "t1"}, Start: at, End: at.Add(time.Hour)}}
	book, _ := billing.Parse([]byte(billing.DefaultBook))
	if err := e.svc.foldBatch(e.ctx, book, f, members); err == nil {
		t.Fatal("a fold over a changed record was written")
	}
	if n, _ := e.svc.records.Count(e.ctx, ""); n != 3 || f.stored || f.sum.Groups != 0 {
		t.Fatalf("after a refused fold: %d records (want 3), sum stored %v with %d groups", n, f.stored, f.sum.Groups)
	}
}
