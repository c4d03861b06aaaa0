package control

import (
	"fmt"
	"strings"
	"testing"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/auth"
	"github.com/eci-dev/eci/internal/billing"
	"github.com/eci-dev/eci/internal/errdefs"
	"github.com/eci-dev/eci/internal/store"
)

func TestMeteringCountsEachGroupOnce(t *testing.T) {
	e := newEnv(t, false)
	e.vswitch(t, "vsw-a", "zone-a", "198.19.128.0/20")
	e.host(t, "h1", "zone-a", 64000, 1<<20, 100)
	create := func(tenant, name string, place bool) *apiv1.ContainerGroup {
		t.Helper()
		spec := groupSpec(name, 1, 2)
		spec.Metadata.Tenant = tenant
		spec.Spec.Tags = map[string]string{"team": tenant}
		g, _, err := e.svc.CreateGroup(e.ctx, auth.Admin, spec)
		if err != nil {
			t.Fatal(err)
		}
		if place {
			st, err := e.svc.loadPlacementState(e.ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := e.svc.placeOne(e.ctx, st, g, nil); err != nil {
				t.Fatal(err)
			}
		}
		return g
	}
	report := func(id string, state apiv1.State) {
		t.Helper()
		if _, err := e.svc.ReportStatus(e.ctx, hostPrincipal("h1"), id, apiv1.StatusReport{State: state}); err != nil {
			t.Fatal(err)
		}
	}
	start := e.clock.Now()
	g1 := create("ta", "one", true) // Pending 10 s, Running 100 s, Succeeded
	g2 := create("tb", "two", true) // still Running
	create("ta", "waiting", false)  // Scheduling: free
	e.clock.Add(10 * time.Second)
	report(g1.Metadata.ID, apiv1.StateRunning)
	report(g2.Metadata.ID, apiv1.StateRunning)
	e.clock.Add(100 * time.Second)
	report(g1.Metadata.ID, apiv1.StateSucceeded)
	e.clock.Add(50 * time.Second)

	seconds := func(svc *Service, p auth.Principal) map[string][2]int64 {
		t.Helper()
		recs, err := svc.Usage(e.ctx, p, start, start.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		out := map[string][2]int64{}
		for _, u := range recs {
			if _, twice := out[u.Metadata.ID]; twice {
				t.Fatalf("group %s metered twice", u.Metadata.ID)
			}
			pend, run := u.Seconds(start, start.Add(time.Hour))
			out[u.Metadata.ID] = [2]int64{pend, run}
		}
		return out
	}
	want := map[string][2]int64{g1.Metadata.ID: {10, 100}, g2.Metadata.ID: {10, 150}}
	check := func(what string, svc *Service) {
		t.Helper()
		got := seconds(svc, auth.Admin)
		if len(got) != 2 || got[g1.Metadata.ID] != want[g1.Metadata.ID] || got[g2.Metadata.ID] != want[g2.Metadata.ID] {
			t.Fatalf("%s: pending/running seconds %v, want %v (the Scheduling group free)", what, got, want)
		}
	}
	check("stored groups", e.svc)
	// The ended group's record goes: its usage record takes its place, in
	// the same transaction.
	if _, err := e.svc.DeleteGroup(e.ctx, auth.Admin, g1.Metadata.ID, nil, false); err != nil {
		t.Fatal(err)
	}
	check("after the removal", e.svc)
	if _, err := e.svc.DeleteGroup(e.ctx, auth.Admin, g1.Metadata.ID, nil, false); !errdefs.IsNotFound(err) {
		t.Fatalf("second delete: %v", err)
	}
	recs, _, _, err := e.svc.records.List(e.ctx, store.ListOptions{})
	if err != nil || len(recs) != 1 || recs[0].Metadata.ID != "ta/"+g1.Metadata.ID || recs[0].Open {
		t.Fatalf("usage records %+v (%v), want g1's, closed", recs, err)
	}
	// A restarted service (another leader) reads the same truth.
	check("a new service on the same store", New(e.svc.st, e.svc.opts))
	// A tenant sees its own.
	if got := seconds(e.svc, tenantPrincipal("tb")); len(got) != 1 || got[g2.Metadata.ID] != want[g2.Metadata.ID] {
		t.Fatalf("tenant tb sees %v", got)
	}
	if _, err := e.svc.Usage(e.ctx, hostPrincipal("h1"), start, start.Add(time.Hour)); err == nil {
		t.Fatal("a host read usage")
	}

	// Rated: 1 vCPU and 2 GiB at 0.0000077 and 0.00000096 a second.
	q := billing.Query{From: start, To: start.Add(time.Hour), By: "tag:team"}
	if _, err := e.svc.Bill(e.ctx, auth.Admin, q); !errdefs.IsUnavailable(err) {
		t.Fatalf("a bill without a price book: %v", err)
	}
	book, err := billing.Parse([]byte("periods:\n  - from: 2026-01-01\n    vcpu: 0.0000077\n    memory: 0.00000096\n"))
	if err != nil {
		t.Fatal(err)
	}
	e.svc.SetPriceBook(book)
	bill, err := e.svc.Bill(e.ctx, auth.Admin, q)
	if err != nil {
		t.Fatal(err)
	}
	// ta: 110 s x 0.00000962 = 0.0010582; tb: 160 s = 0.0015392.
	if len(bill.Lines) != 2 || bill.Lines[0].Key != "ta" || bill.Lines[0].Amount != "0.0010582000" || bill.Lines[1].Amount != "0.0015392000" || bill.Total != "0.00" {
		t.Fatalf("bill %+v", bill)
	}
	q.By = "colour"
	if _, err := e.svc.Bill(e.ctx, auth.Admin, q); !errdefs.IsInvalid(err) {
		t.Fatalf("by colour: %v", err)
	}

	// Kept for the retention, then gone.
	e.clock.Add(DefaultUsageRetention - time.Hour)
	if err := e.svc.CollectGarbage(e.ctx); err != nil {
		t.Fatal(err)
	}
	e.svc.pass.running.Wait() // the usage pass runs in a goroutine of its own
	if n, _ := e.svc.records.Count(e.ctx, ""); n != 1 {
		t.Fatalf("%d usage records within the retention, want 1", n)
	}
	e.clock.Add(3 * time.Hour) // (summed by hour after the detail period: an hour more)
	if err := e.svc.CollectGarbage(e.ctx); err != nil {
		t.Fatal(err)
	}
	e.svc.pass.running.Wait()
	if n, _ := e.svc.records.Count(e.ctx, ""); n != 0 {
		t.Fatalf("%d usage records past the retention, want 0", n)
	}
}

// The cost metrics' series are one per tenant and tag value: past a
// tenant's 50 costliest values the rest join "other", the same series as
// a tag value "other".
func TestCostTotalsSeries(t *testing.T) {
	e := newEnv(t, false)
	e.vswitch(t, "vsw-a", "zone-a", "198.19.128.0/20")
	e.host(t, "h1", "zone-a", 1_000_000, 1<<24, 100)
	book, _ := billing.Parse([]byte(billing.DefaultBook))
	e.svc.SetPriceBook(book)
	st, err := e.svc.loadPlacementState(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 55; i++ {
		spec := groupSpec(fmt.Sprintf("g%d", i), 1, 2)
		spec.Metadata.Tenant = "acme"
		spec.Spec.Tags = map[string]string{"team": fmt.Sprintf("t%02d", i)}
		if i == 0 {
			spec.Spec.Tags["team"] = "other" // the costliest: it runs longest
		}
		g, _, err := e.svc.CreateGroup(e.ctx, auth.Admin, spec)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.svc.placeOne(e.ctx, st, g, nil); err != nil {
			t.Fatal(err)
		}
		e.clock.Add(time.Second)
	}
	totals, _, err := e.svc.CostTotals(e.ctx, "team")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	var pending int64
	for _, c := range totals {
		if seen[c.Tenant+"/"+c.Tag] {
			t.Fatalf("two series for %s/%s: %+v", c.Tenant, c.Tag, totals)
		}
		seen[c.Tenant+"/"+c.Tag] = true
		pending += c.Pending
	}
	// 55 groups placed a second apart: 55+54+...+1 pending seconds in all.
	if len(totals) != MaxTagValues || !seen["acme/other"] || pending != 55*56/2 {
		t.Fatalf("%d series (want %d), other %v, %d seconds: %+v", len(totals), MaxTagValues, seen["acme/other"], pending, totals)
	}
}

// A tag change moves only the cost that follows it, once the part before
// has lasted MinSplit; a shorter part follows the new tags.
func TestTagChangeSplitsTheCost(t *testing.T) {
	e := newEnv(t, false)
	e.vswitch(t, "vsw-a", "zone-a", "198.19.128.0/20")
	e.host(t, "h1", "zone-a", 64000, 1<<20, 100)
	book, _ := billing.Parse([]byte(billing.DefaultBook))
	e.svc.SetPriceBook(book)
	start := e.clock.Now()
	spec := groupSpec("web", 1, 2)
	spec.Spec.Tags = map[string]string{"team": "a"}
	g := e.placed(t, spec)
	tag := func(team string) {
		t.Helper()
		if _, err := e.svc.UpdateGroup(e.ctx, auth.Admin, g.Metadata.ID, apiv1.GroupUpdate{Tags: map[string]string{"team": team}}); err != nil {
			t.Fatal(err)
		}
	}
	e.clock.Add(2 * time.Hour)
	tag("b") // splits: 7,200 s of team a
	e.clock.Add(10 * time.Second)
	tag("b") // the same tags: nothing
	e.clock.Add(50 * time.Minute)
	tag("c") // 50 min 10 s since the split: not kept apart, it follows c
	e.clock.Add(20 * time.Minute)
	bill := func(by string) map[string]int64 {
		t.Helper()
		b, err := e.svc.Bill(e.ctx, auth.Admin, billing.Query{From: start, To: start.Add(24 * time.Hour), By: by})
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]int64{}
		for _, l := range b.Lines {
			out[l.Key] = l.PendingSeconds + l.RunningSeconds
			if by == "group" && l.Groups != 1 {
				t.Fatalf("one group counted %d times: %+v", l.Groups, l)
			}
		}
		return out
	}
	check := func(what string) {
		t.Helper()
		if got := bill("tag:team"); got["a"] != 7200 || got["c"] != 4210 || len(got) != 2 {
			t.Fatalf("%s: by team %v, want a 7200 s and c 4210 s", what, got)
		}
		if got := bill("group"); got[g.Metadata.ID] != 11410 || len(got) != 1 {
			t.Fatalf("%s: by group %v, want one line of 11410 s", what, got)
		}
	}
	check("running")
	if _, err := e.svc.DeleteGroup(e.ctx, auth.Admin, g.Metadata.ID, nil, true); err != nil {
		t.Fatal(err)
	}
	e.clock.Add(time.Hour)
	check("removed")
	if n, _ := e.svc.records.Count(e.ctx, ""); n != 2 {
		t.Fatalf("%d usage records, want 2 (before and after the change)", n)
	}
}

// A reader that took a group before its split was written, and the split
// after, bills the group only after the split.
func TestUsageReadAcrossASplit(t *testing.T) {
	e := newEnv(t, false)
	e.vswitch(t, "vsw-a", "zone-a", "198.19.128.0/20")
	e.host(t, "h1", "zone-a", 64000, 1<<20, 100)
	start := e.clock.Now()
	g := e.placed(t, groupSpec("web", 1, 2))
	e.clock.Add(2 * time.Hour)
	cur, err := e.svc.groups.Get(e.ctx, g.Metadata.ID)
	if err != nil {
		t.Fatal(err)
	}
	// The split's record is there, the group as read before it (no billingFrom).
	part, ok := apiv1.UsageOf(cur, e.clock.Now())
	if !ok {
		t.Fatal("not billed")
	}
	part.Open = false
	part.Metadata.ID = usageKey(cur.Metadata.Tenant, cur.Metadata.ID+"@1")
	op, err := e.svc.records.PutOp(&part)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.st.Commit(e.ctx, nil, []store.Op{op}); err != nil {
		t.Fatal(err)
	}
	e.clock.Add(time.Hour)
	recs, err := e.svc.Usage(e.ctx, auth.Admin, start, start.Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, u := range recs {
		p, r := u.Seconds(start, start.Add(24*time.Hour))
		total += p + r
	}
	if total != 3*3600 {
		t.Fatalf("%d s billed over two records, want 10800 (no second twice)", total)
	}
}

// A group with GPUs is billed at its host's GPU model.
func TestGPUModelOfTheHost(t *testing.T) {
	e := newEnv(t, false)
	e.vswitch(t, "vsw-a", "zone-a", "198.19.128.0/20")
	r := apiv1.Resources{MilliCPU: 64000, MemoryMiB: 1 << 20, GPU: 4, Pods: 100}
	h := &apiv1.Host{Metadata: apiv1.ObjectMeta{Name: "g1"}, Spec: apiv1.HostSpec{Zone: "zone-a", Capacity: r, Allocatable: r, GPUModel: "nvidia-t4"}}
	if _, err := e.svc.RegisterHost(e.ctx, hostPrincipal("g1"), h); err != nil {
		t.Fatal(err)
	}
	bad := *h
	bad.Spec.GPUModel = "NVIDIA T4"
	if _, err := e.svc.RegisterHost(e.ctx, hostPrincipal("g1"), &bad); !errdefs.IsInvalid(err) || !strings.Contains(err.Error(), "spec.gpuModel") {
		t.Fatalf("a GPU model of spaces: %v", err)
	}
	spec := groupSpec("train", 4, 16)
	spec.Spec.GPU = 2
	g := e.placed(t, spec)
	cur, err := e.svc.groups.Get(e.ctx, g.Metadata.ID)
	if err != nil || cur.Status.GPUModel != "nvidia-t4" {
		t.Fatalf("the placed group's GPU model %q (%v)", cur.Status.GPUModel, err)
	}
	cpuOnly := e.placed(t, groupSpec("cpu", 1, 2))
	if c, _ := e.svc.groups.Get(e.ctx, cpuOnly.Metadata.ID); c.Status.GPUModel != "" {
		t.Fatalf("a group without GPUs has GPU model %q", c.Status.GPUModel)
	}
	// Rated at the model's price: 2 GPUs x 0.001, with 4 vCPU and 16 GiB at 0.
	book, err := billing.Parse([]byte("periods:\n  - from: 2026-01-01\n    vcpu: 0\n    memory: 0\n    gpu: 1\n    gpuModels:\n      nvidia-t4: 0.001\n"))
	if err != nil {
		t.Fatal(err)
	}
	e.svc.SetPriceBook(book)
	from := e.clock.Now()
	e.clock.Add(100 * time.Second)
	b, err := e.svc.Bill(e.ctx, auth.Admin, billing.Query{From: from, To: e.clock.Now(), By: "group"})
	if err != nil || len(b.Lines) != 2 || b.Lines[0].Key > b.Lines[1].Key {
		t.Fatalf("bill %+v (%v)", b, err)
	}
	for _, l := range b.Lines {
		want, gpus := "0.0000000000", int64(0) // (the group without GPUs)
		if l.Key == g.Metadata.ID {
			want, gpus = "0.2000000000", 200 // 100 s x 2 GPUs x 0.001
		}
		if l.Amount != want || l.GPUSeconds != gpus {
			t.Fatalf("line %+v: want %s for %d GPU-seconds", l, want, gpus)
		}
	}
}

// placed creates spec (as the admin) and places it at once.
func (e *env) placed(t *testing.T, spec *apiv1.ContainerGroup) *apiv1.ContainerGroup {
	t.Helper()
	g, _, err := e.svc.CreateGroup(e.ctx, auth.Admin, spec)
	if err != nil {
		t.Fatal(err)
	}
	st, err := e.svc.loadPlacementState(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.svc.placeOne(e.ctx, st, g, nil); err != nil {
		t.Fatal(err)
	}
	return g
}
