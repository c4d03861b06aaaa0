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

// foldBook changes its prices at 13:30, within an hour of the test.
const foldBook = `currency: USD
periods:
  - from: 2026-11-01
    vcpu: 0.0000077
    memory: 0.00000096
    gpu: 0.0001
    storage: 0.00000002
  - from: 2026-11-23T13:30:00Z
    vcpu: 0.0000081
    memory: 0.00000101
    gpu: 0.00011
    storage: 0.00000003
`

// foldEnv is a service with short groups' usage of 12:00 to 14:30 (and
// tenant t6's minute across 13:00, its only usage of that hour): 30
// groups run and removed through the service (tags team a and b, three
// across an hour's end or the price change), a group split by a tag
// change, a virtual node's interval, 250 records of tenant t2 (one sum,
// in three transactions), 70 of tenant t3 each with a tag run of its own,
// team x and one of two sizes, and 24 of t3 with a GPU and extra storage.
func foldEnv(t *testing.T) (*env, time.Time) {
	e := newEnv(t, false)
	e.vswitch(t, "vsw-a", "zone-a", "198.19.128.0/20")
	e.host(t, "h1", "zone-a", 64000, 1<<20, 100)
	book, err := billing.Parse([]byte(foldBook))
	if err != nil {
		t.Fatal(err)
	}
	e.svc.SetPriceBook(book)
	start := e.clock.Now() // 12:00
	split := groupSpec("split", 1, 2)
	split.Spec.Tags = map[string]string{"team": "a"}
	sg := e.placed(t, split)
	for i := 0; i < 30; i++ { // 4 min each, 257 s apart: 12:00 to 14:08
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
		e.clock.Add(17 * time.Second)
	}
	// The split group: team a to 14:08, team b to 14:20 (its last part is
	// within an hour, and stays apart with the first).
	if _, err := e.svc.UpdateGroup(e.ctx, auth.Admin, sg.Metadata.ID, apiv1.GroupUpdate{Tags: map[string]string{"team": "b"}}); err != nil {
		t.Fatal(err)
	}
	e.clock.Add(12 * time.Minute)
	if _, err := e.svc.DeleteGroup(e.ctx, auth.Admin, sg.Metadata.ID, nil, true); err != nil {
		t.Fatal(err)
	}
	// A virtual node of tenant t4, Ready for 30 s.
	vk := auth.Principal{Kind: apiv1.TokenTenant, Tenant: "t4"}
	for i := 0; i < 2; i++ {
		if err := e.svc.VirtualNodeHeartbeat(e.ctx, vk, "vk-1", apiv1.VirtualNodeHeartbeat{Tags: map[string]string{"team": "v"}}); err != nil {
			t.Fatal(err)
		}
		e.clock.Add(30 * time.Second)
	}
	e.clock.Add(2 * time.Minute)
	if err := e.svc.closeSilentVNodes(e.ctx, e.svc.now()); err != nil {
		t.Fatal(err)
	}
	var ops []store.Op
	for i := 0; i < 250; i++ {
		ops = e.shortRecord(t, ops, "t2", fmt.Sprintf("eci-t2-%03d", i), map[string]string{"team": "c"}, start.Add(time.Duration(i)*10*time.Second), 1)
	}
	for i := 0; i < 70; i++ {
		ops = e.shortRecord(t, ops, "t3", fmt.Sprintf("eci-t3-%03d", i), map[string]string{"run": fmt.Sprint(i), "team": "x"}, start.Add(time.Duration(i)*time.Minute/2), int64(1+i%2))
		if i%3 == 0 { // GPUs and extra storage on some
			ops = e.gpuRecord(t, ops, "t3", fmt.Sprintf("eci-t3-gpu-%03d", i), start.Add(time.Duration(i)*time.Minute/2))
		}
	}
	// Tenant t6: a minute across 13:00, its only usage of that hour.
	ops = e.shortRecord(t, ops, "t6", "eci-t6-0", nil, start.Add(59*time.Minute+30*time.Second), 1)
	if _, err := e.svc.st.Commit(e.ctx, nil, ops); err != nil {
		t.Fatal(err)
	}
	return e, start
}

// shortRecord adds to ops a usage record of a minute from at, as a
// removal writes it, and commits them by the hundred.
func (e *env) shortRecord(t *testing.T, ops []store.Op, tenant, id string, tags map[string]string, at time.Time, vcpu int64) []store.Op {
	t.Helper()
	u := &apiv1.UsageRecord{
		Metadata: apiv1.ObjectMeta{ID: usageKey(tenant, id), Tenant: tenant, CreatedAt: at.Add(time.Minute)},
		Group:    id, Name: id, Tags: tags, Zone: "zone-a", InstanceSpec: fmt.Sprintf("%d.0-2.0Gi", vcpu), MilliCPU: vcpu * 1000, MemoryMiB: 2048,
		Start: at, End: at.Add(time.Minute),
	}
	op, err := e.svc.records.PutOp(u)
	if err != nil {
		t.Fatal(err)
	}
	if ops = append(ops, op); len(ops) >= 100 {
		if _, err := e.svc.st.Commit(e.ctx, nil, ops); err != nil {
			t.Fatal(err)
		}
		ops = nil
	}
	return ops
}

// gpuRecord adds to ops a usage record of a minute from at with a GPU and
// 20 GiB of extra storage.
func (e *env) gpuRecord(t *testing.T, ops []store.Op, tenant, id string, at time.Time) []store.Op {
	t.Helper()
	u := &apiv1.UsageRecord{
		Metadata: apiv1.ObjectMeta{ID: usageKey(tenant, id), Tenant: tenant, CreatedAt: at.Add(time.Minute)},
		Group:    id, Name: id, Tags: map[string]string{"team": "x"}, InstanceSpec: "4.0-16.0Gi", MilliCPU: 4000, MemoryMiB: 16384,
		GPU: 1, GPUModel: "nvidia-t4", ExtraStorageGiB: 20, Start: at, End: at.Add(time.Minute),
	}
	op, err := e.svc.records.PutOp(u)
	if err != nil {
		t.Fatal(err)
	}
	return append(ops, op)
}

// foldReport is every bill and total a fold must leave as it was.
func (e *env) foldReport(t *testing.T, start time.Time) map[string]string {
	t.Helper()
	out := map[string]string{}
	end := start.Add(4 * time.Hour)
	for _, q := range []billing.Query{
		{From: start, To: end, Granularity: "hour", By: "tenant"},
		{From: start, To: end, Granularity: "hour", By: "tag:team"},
		{From: start, To: end, Granularity: "day", By: "size"},
		{From: start, To: end, By: "vnode"},
		{From: start, To: end, By: "tenant", Tags: map[string]string{"team": "x"}},
		{From: start.Add(90 * time.Minute), To: end, By: "tenant"}, // from the price change
	} {
		b, err := e.svc.Bill(e.ctx, auth.Admin, q)
		if err != nil {
			t.Fatal(err)
		}
		name := fmt.Sprintf("%s %s %s %v", q.From.Format("15:04"), q.Granularity, q.By, q.Tags)
		for _, l := range b.Lines {
			p := ""
			if l.Period != nil {
				p = l.Period.Format("15:04")
			}
			out[fmt.Sprintf("%s: %s %s", name, p, l.Key)] = fmt.Sprintf("groups %d pending %d running %d cpu %d mem %d gpu %d storage %d amount %s",
				l.Groups, l.PendingSeconds, l.RunningSeconds, l.MilliCPUSeconds, l.MemoryMiBSeconds, l.GPUSeconds, l.ExtraStorageGiBSeconds, l.Amount)
		}
		out[name+" total"] = b.Total
	}
	totals, _, err := e.svc.CostTotals(e.ctx, "team")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range totals {
		out["cost metrics "+c.Tenant+" "+c.Tag] = fmt.Sprintf("%.10f %d %d", c.Amount, c.Pending, c.Running)
	}
	return out
}

func (e *env) usagePass(t *testing.T) int64 {
	t.Helper()
	e.svc.pass.last.Store(0)
	e.svc.collectUsage(e.ctx)
	n, err := e.svc.records.Count(e.ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// sums counts the sums stored.
func (e *env) sums(t *testing.T) int {
	t.Helper()
	recs, _, _, err := e.svc.records.List(e.ctx, store.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range recs {
		if r.IsSum() {
			n++
		}
	}
	return n
}

func sameReport(t *testing.T, what string, before, after map[string]string) {
	t.Helper()
	for k, v := range before {
		if after[k] != v {
			t.Errorf("%s: %s: %s before, %s after", what, k, v, after[k])
		}
	}
	if len(after) != len(before) {
		t.Errorf("%s: %d lines after, %d before", what, len(after), len(before))
	}
}

// Short groups' usage records are summed by hour after the detail period,
// and every bill reads the same after as before: the groups, the seconds,
// the resource-seconds and the cost, by hour, tenant, tag, size and node,
// with a tag filter, and the cost metrics.
func TestShortGroupsAreSummed(t *testing.T) {
	e, start := foldEnv(t)
	before := e.foldReport(t, start)
	e.clock.Add(DefaultUsageDetail - 3*time.Hour) // within the detail period: nothing
	if n := e.usagePass(t); n != 378 {
		t.Fatalf("%d usage records within the detail period, want 378", n)
	}
	e.clock.Add(4 * time.Hour)
	// The default tenant: 7 sums (a and b at 12:00, at 13:00 before and
	// after 13:30; b at 14:00; the group across 13:00 is cut there), the
	// records across the price change at 13:30 and across 14:00 (its
	// period began within its first hour), the split group's 2; t2: 1 sum;
	// t3: 50 sums and 2 of the rest; t4: the node's; t6: two, one of a
	// group continued only.
	if n := e.usagePass(t); n != 67 {
		t.Fatalf("%d usage records after the fold, want 67 (of 378)", n)
	}
	sameReport(t, "the fold", before, e.foldReport(t, start))
	recs, _, _, err := e.svc.records.List(e.ctx, store.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	own3, rest3, kept := 0, 0, 0
	for _, r := range recs {
		switch {
		case !r.IsSum():
			kept++
		case isRest(r):
			if rest3 += r.Groups; r.Metadata.Tenant != "t3" || r.Tags["team"] != "x" || r.Tags["run"] != "" || r.InstanceSpec == "" {
				t.Errorf("a sum of the rest: %+v, want t3's, team x, no run, its size", r)
			}
		case r.Metadata.Tenant == "t3":
			own3++
		}
		if r.IsSum() && !strings.HasPrefix(r.Metadata.ID, r.Metadata.Tenant+"/~") {
			t.Errorf("sum %s: not TENANT/~...", r.Metadata.ID)
		}
	}
	// t3: the 24 groups with GPUs share a sum, 49 more of a run each, and
	// the rest of 21 in 2 (team x, each size).
	if own3 != MaxFoldSums || rest3 != 21 || kept != 4 {
		t.Errorf("t3: %d sums and the rest of %d groups, want %d and 21; %d records kept apart, want 4", own3, rest3, MaxFoldSums, kept)
	}
	b, err := e.svc.Bill(e.ctx, auth.Admin, billing.Query{From: start, To: start.Add(4 * time.Hour), By: "group"})
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Lines) != 4 || b.Lines[0].Key != billing.SummedKey || b.Lines[0].Groups != 374 {
		t.Errorf("by group: %+v, want %s of 374 groups and the 3 kept apart", b.Lines, billing.SummedKey)
	}

	// A record of the hour 12:00 written late (its group ended then, and
	// was removed now) stays apart for the detail period, then joins the
	// sum stored.
	late := e.svc.now().Add(-time.Minute)
	ops := e.shortRecord(t, nil, "t2", "eci-t2-late", map[string]string{"team": "c"}, start.Add(30*time.Minute), 1)
	if _, err := e.svc.st.Commit(e.ctx, nil, ops); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.records.Mutate(e.ctx, usageKey("t2", "eci-t2-late"), func(u *apiv1.UsageRecord) error {
		u.Metadata.CreatedAt = late
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	before = e.foldReport(t, start)
	if n := e.usagePass(t); n != 68 {
		t.Fatalf("%d usage records after a pass with a record just written, want 68", n)
	}
	e.clock.Add(DefaultUsageDetail)
	if n := e.usagePass(t); n != 67 {
		t.Fatalf("%d usage records after its detail period, want 67", n)
	}
	sameReport(t, "a record added to a stored sum", before, e.foldReport(t, start))
}

// Two servers folding from one read of the records sum each once.
func TestTwoFoldersSumOnce(t *testing.T) {
	e, start := foldEnv(t)
	before := e.foldReport(t, start)
	e.clock.Add(DefaultUsageDetail + time.Hour)
	recs, _, _, err := e.svc.records.List(e.ctx, store.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	other := New(e.svc.st, e.svc.opts)
	other.SetPriceBook(e.svc.PriceBook())
	e.svc.foldUsage(e.ctx, recs, splitGroups(recs), e.svc.now())
	other.foldUsage(e.ctx, recs, splitGroups(recs), e.svc.now()) // every transaction refused
	if n, _ := e.svc.records.Count(e.ctx, ""); n != 67 {
		t.Fatalf("%d usage records, want 67", n)
	}
	sameReport(t, "two folds", before, e.foldReport(t, start))
}

// A fold whose record or sum changed after it was read writes nothing.
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
	book, _ := billing.Parse([]byte(billing.DefaultBook))
	const id = "t1/~sum"
	empty := func() map[string]*stored {
		return map[string]*stored{id: {sum: &apiv1.UsageRecord{Metadata: apiv1.ObjectMeta{ID: id, Tenant: "t1"}, Start: at, End: at.Add(time.Hour)}}}
	}
	items := func(rs ...*apiv1.UsageRecord) [][]*piece {
		var out [][]*piece
		for _, r := range rs {
			out = append(out, []*piece{{r: r, from: r.Start, to: r.End, id: id}})
		}
		return out
	}
	// A member changed since it was read.
	stale := *members[1]
	members[1].Name = "changed"
	if err := e.svc.records.Update(e.ctx, members[1], nil); err != nil {
		t.Fatal(err)
	}
	sums := empty()
	if err := e.svc.foldBatch(e.ctx, book, sums, items(members[0], &stale)); !errdefs.IsConflict(err) {
		t.Fatalf("a fold over a changed record: %v, want a conflict", err)
	}
	if n, _ := e.svc.records.Count(e.ctx, ""); n != 3 || sums[id].stored || sums[id].sum.Groups != 0 {
		t.Fatalf("after a refused fold: %d records (want 3), sum %+v", n, sums[id])
	}
	// The sum written by another since it was read (as absent, then as it was).
	if err := e.svc.foldBatch(e.ctx, book, sums, items(members[0])); err != nil {
		t.Fatal(err)
	}
	old := *sums[id]
	if err := e.svc.foldBatch(e.ctx, book, empty(), items(members[1])); !errdefs.IsConflict(err) {
		t.Fatalf("a fold into a sum written since: %v, want a conflict", err)
	}
	if err := e.svc.foldBatch(e.ctx, book, sums, items(members[1])); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.foldBatch(e.ctx, book, map[string]*stored{id: &old}, items(members[2])); !errdefs.IsConflict(err) {
		t.Fatalf("a fold into a sum changed since: %v, want a conflict", err)
	}
	if got, _ := e.svc.records.Get(e.ctx, id); got == nil || got.Groups != 2 || got.RunningSeconds+got.PendingSeconds != 120 {
		t.Fatalf("the sum: %+v, want 2 groups of 60 s", got)
	}
}

// Once usage was summed with the built-in list prices, an operator's
// book may no longer change their past.
func TestFoldFixesThePastPrices(t *testing.T) {
	e := newEnv(t, false)
	if err := e.svc.ApplyPriceBook(e.ctx, []byte(billing.DefaultBook), false); err != nil {
		t.Fatal(err)
	}
	own := "currency: USD\nperiods:\n  - from: 2026-01-01\n    vcpu: 0.1\n    memory: 0.1\n"
	e.usagePass(t) // nothing to fold: the book stays open to the operator's
	if cur, err := e.svc.books.Get(e.ctx, "current"); err != nil || cur.Fixed {
		t.Fatalf("the stored book after a pass with nothing to fold: %+v, %v", cur, err)
	}
	at := e.clock.Now().Add(-72 * time.Hour)
	ops := e.shortRecord(t, nil, "t1", "eci-1", nil, at, 1)
	if _, err := e.svc.st.Commit(e.ctx, nil, ops); err != nil {
		t.Fatal(err)
	}
	if n := e.usagePass(t); n != 1 {
		t.Fatalf("%d records after the fold, want its sum", n)
	}
	err := e.svc.ApplyPriceBook(e.ctx, []byte(own), true)
	if !errdefs.IsInvalid(err) {
		t.Fatalf("a book that reprices summed usage: %v, want it refused", err)
	}
}

// A tenant's hour keeps at most MaxFoldSums sums of its own and as many
// of the rest, however many passes its records come in.
func TestRestSumsAreBounded(t *testing.T) {
	e := newEnv(t, false)
	book, err := billing.Parse([]byte(billing.DefaultBook))
	if err != nil {
		t.Fatal(err)
	}
	e.svc.SetPriceBook(book)
	t0 := e.clock.Now()
	hour := t0.Add(-72 * time.Hour).Truncate(time.Hour)
	// 150 records with a tag run of their own, the last of each ten ending
	// on the hour's end; the first 50 written then, the others ten an hour
	// over the next ten hours' passes.
	var ops []store.Op
	for i := 0; i < 150; i++ {
		at := hour.Add(time.Duration(i%60) * time.Minute)
		u := &apiv1.UsageRecord{
			Metadata: apiv1.ObjectMeta{ID: usageKey("t5", fmt.Sprintf("eci-%03d", i)), Tenant: "t5", CreatedAt: hour.Add(time.Hour)},
			Group:    fmt.Sprintf("eci-%03d", i), Tags: map[string]string{"run": fmt.Sprint(i)}, InstanceSpec: "1.0-2.0Gi",
			MilliCPU: 1000, MemoryMiB: 2048, Start: at, End: at.Add(time.Minute),
		}
		if i%10 == 9 {
			u.Start, u.End = hour.Add(59*time.Minute+30*time.Second), hour.Add(time.Hour)
		}
		if batch := (i - 50) / 10; i >= 50 {
			u.Metadata.CreatedAt = t0.Add(-DefaultUsageDetail + time.Duration(batch+1)*time.Hour - 30*time.Minute)
		}
		op, err := e.svc.records.PutOp(u)
		if err != nil {
			t.Fatal(err)
		}
		if ops = append(ops, op); len(ops) == 50 {
			if _, err := e.svc.st.Commit(e.ctx, nil, ops); err != nil {
				t.Fatal(err)
			}
			ops = nil
		}
	}
	report := func() map[string]string {
		out := map[string]string{}
		b, err := e.svc.Bill(e.ctx, auth.Admin, billing.Query{From: hour, To: hour.Add(2 * time.Hour), Granularity: "hour", By: "tenant"})
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range b.Lines {
			out[l.Key] = fmt.Sprintf("%d %d %d %s", l.Groups, l.RunningSeconds+l.PendingSeconds, l.MilliCPUSeconds, l.Amount)
		}
		return out
	}
	before := report()

	// Records left apart, plus 50 sums, then 10 of the rest a pass up to
	// 50, then one.
	want := []int64{150, 150, 150, 150, 150, 150, 141, 131, 121, 111, 101}
	for pass, w := range want {
		if n := e.usagePass(t); n != w {
			t.Fatalf("pass %d: %d records, want %d", pass, n, w)
		}
		e.clock.Add(time.Hour)
	}
	sameReport(t, "ten passes", before, report())
	if e.svc.pass.cursor != "" {
		t.Errorf("a pass that ended left the cursor at %q", e.svc.pass.cursor)
	}
}

// Usage records past the retention go by the hundred, a sum an hour after
// its hour's end (as the records across its end would), and a pass out of
// time lets the next minute's go on.
func TestRetentionRemovesByTheHundred(t *testing.T) {
	e := newEnv(t, false)
	old := e.clock.Now().Add(-DefaultUsageRetention - 2*time.Hour)
	var ops []store.Op
	for i := 0; i < 250; i++ {
		ops = e.shortRecord(t, ops, "t1", fmt.Sprintf("eci-%03d", i), nil, old, 1)
	}
	sum := &apiv1.UsageRecord{Metadata: apiv1.ObjectMeta{ID: usageKey("t1", "~sum"), Tenant: "t1"}, Groups: 1, Amount: "0",
		Start: old.Add(30 * time.Minute), End: old.Add(90 * time.Minute)} // its hour ended 30 min past the retention
	op, err := e.svc.records.PutOp(sum)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.st.Commit(e.ctx, nil, append(ops, op)); err != nil {
		t.Fatal(err)
	}
	e.svc.pass.budget = time.Nanosecond
	for _, want := range []int64{151, 51, 1} {
		if n := e.usagePass(t); n != want {
			t.Fatalf("%d usage records after a pass out of time, want %d", n, want)
		}
		if want > 1 && e.svc.pass.last.Load() != 0 {
			t.Fatal("a pass out of time did not let the next minute's go on")
		}
	}
	e.clock.Add(time.Hour)
	if n := e.usagePass(t); n != 0 {
		t.Fatalf("%d usage records an hour later, want 0", n)
	}
}

// A pass out of time after its first transaction lets the next minute's
// go on, and that one begins where it stopped: each tenant's turn comes.
func TestFoldGoesOnAfterItsCursor(t *testing.T) {
	e := newEnv(t, false)
	book, _ := billing.Parse([]byte(billing.DefaultBook))
	e.svc.SetPriceBook(book)
	at := e.clock.Now().Add(-72 * time.Hour).Truncate(time.Hour)
	var ops []store.Op
	for _, tenant := range []string{"ta", "tb", "tc"} {
		for i := 0; i < 150; i++ {
			ops = e.shortRecord(t, ops, tenant, fmt.Sprintf("eci-%s-%03d", tenant, i), nil, at.Add(time.Duration(i)*20*time.Second), 1)
		}
	}
	if _, err := e.svc.st.Commit(e.ctx, nil, ops); err != nil {
		t.Fatal(err)
	}
	left := func() string {
		recs, _, _, err := e.svc.records.List(e.ctx, store.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		n := map[string]int{}
		for _, r := range recs {
			if !r.IsSum() {
				n[r.Metadata.Tenant]++
			}
		}
		return fmt.Sprint(n["ta"], n["tb"], n["tc"])
	}
	e.svc.pass.budget = time.Nanosecond
	e.svc.pass.cursor = "tc/" // as a pass that stopped at tc's sum left it
	for _, want := range []string{"150 150 50", "150 150 0", "50 150 0", "0 150 0", "0 50 0", "0 0 0"} {
		e.usagePass(t)
		if got := left(); got != want {
			t.Fatalf("records left apart by tenant after a pass out of time: %s, want %s", got, want)
		}
		if want != "0 0 0" && e.svc.pass.last.Load() != 0 {
			t.Fatal("a pass out of time did not let the next minute's go on")
		}
	}
}
