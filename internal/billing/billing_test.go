package billing

import (
	"context"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
)

const book = `currency: USD
periods:
  - from: 2026-01-01
    vcpu: 0.0000077
    memory: 0.00000096
    gpu: 0.0001
    storage: 0.00000002
    spotDiscount: 0.7
    zones:
      zone-b: {vcpu: 0.00001}
    instanceTypes:
      gpu-small: 0.0005
    gpuModels:
      nvidia-t4: 0.00005
  - from: 2026-12-01T00:00:00Z
    vcpu: 0.000008
    memory: 0.000001
`

func TestPriceBookErrorsNameTheLine(t *testing.T) {
	for _, tc := range []struct{ text, says string }{
		{"periods:\n  - from: 2026-01-01\n    vcpu: 0.1\n    memroy: 0.1\n", "line 4: field memroy not found"},
		{"periods:\n  - from: 2026-01-01\n    vcpu: -0.1\n    memory: 0.1\n", "line 3: -0.1 is negative"},
		{"periods:\n  - from: 2026-01-01\n    vcpu: 1e-6\n    memory: 0.1\n", "line 3: \"1e-6\" is not a decimal number"},
		{"periods:\n  - from: 2026-01-01\n    vcpu: 0x10\n    memory: 0.1\n", "line 3: \"0x10\" is not a decimal number"},
		{"periods:\n  - from: 2026-01-01\n    vcpu: 1_000\n    memory: 0.1\n", "line 3: \"1_000\" is not a decimal number"},
		{"periods:\n  - from: 2026-01-01\n    vcpu: 0.1\n", "line 2: periods[0]: vcpu and memory: both are needed"},
		{"periods:\n  - from: tomorrow\n    vcpu: 0.1\n    memory: 0.1\n", "line 2: periods[0]: from \"tomorrow\""},
		{"periods:\n  - from: 2026-01-01\n    vcpu: 0.1\n    memory: 0.1\n    spotDiscount: 1.5\n", "line 5: spotDiscount 1.50: allowed: 0 to 1"},
		{"periods:\n  - from: 2026-01-01\n    vcpu: 0.1\n    memory: 0.1\n  - from: 2026-01-01\n    vcpu: 0.2\n    memory: 0.1\n", "line 5: periods: a second period from 2026-01-01"},
		{"currency: USD\n", "periods: at least one is needed"},
		{"periods:\n  - from: 2026-01-01\n    vcpu: 0.1\n    memory: 0.1\n    gpuModels:\n      NVIDIA-T4: 0.1\n", "gpuModels: \"NVIDIA-T4\": allowed"},
	} {
		_, err := Parse([]byte(tc.text))
		if err == nil || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("Parse(%q) = %v, want an error saying %q", tc.text, err, tc.says)
		}
	}
	b, err := Parse([]byte(book))
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Periods) != 2 || b.Periods[1].Line != 15 || b.Periods[0].VCPU.FloatString(7) != "0.0000077" {
		t.Fatalf("book %+v", b)
	}
}

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func rat(s string) *big.Rat {
	r, _ := new(big.Rat).SetString(s)
	return r
}

func TestCostAtThePricesOfEachSecond(t *testing.T) {
	b, err := Parse([]byte(book))
	if err != nil {
		t.Fatal(err)
	}
	running := at("2026-11-30T23:00:10Z")
	// 2 vCPU, 4 GiB, pending 10 s then running, across the price change at
	// midnight: 3600 s at the old prices, 3600 at the new.
	u := apiv1.UsageRecord{MilliCPU: 2000, MemoryMiB: 4096, Zone: "zone-a",
		Start: at("2026-11-30T23:00:00Z"), RunningAt: &running, End: at("2026-12-01T01:00:00Z")}
	old := rat("3600").Mul(rat("3600"), rat("0.0000154").Add(rat("0.0000154"), rat("0.00000384")))
	nw := rat("3600").Mul(rat("3600"), rat("0.000016").Add(rat("0.000016"), rat("0.000004")))
	want := new(big.Rat).Add(old, nw)
	if got := b.Cost(&u, u.Start, u.End); got.Cmp(want) != 0 {
		t.Fatalf("cost %s, want %s", got.FloatString(10), want.FloatString(10))
	}
	// Before the book's first period: nothing.
	early := apiv1.UsageRecord{MilliCPU: 1000, MemoryMiB: 1024, Start: at("2025-06-01T00:00:00Z"), End: at("2025-06-01T01:00:00Z")}
	if got := b.Cost(&early, early.Start, early.End); got.Sign() != 0 {
		t.Errorf("usage before the first period cost %s", got.FloatString(10))
	}
	// A zone's rate, spot, an instance type, extra storage.
	z := apiv1.UsageRecord{MilliCPU: 1000, MemoryMiB: 1024, Zone: "zone-b", Spot: true, ExtraStorageGiB: 10,
		Start: at("2026-06-01T00:00:00Z"), End: at("2026-06-01T00:01:40Z")}
	// (0.00001 + 0.00000096) x 0.3 + 10 x 0.00000002, 100 s.
	want = rat("100").Mul(rat("100"), rat("0.000003288").Add(rat("0.000003288"), rat("0.0000002")))
	if got := b.Cost(&z, z.Start, z.End); got.Cmp(want) != 0 {
		t.Errorf("zone-b spot with storage: %s, want %s", got.FloatString(12), want.FloatString(12))
	}
	typ := apiv1.UsageRecord{InstanceType: "gpu-small", MilliCPU: 4000, MemoryMiB: 16384, GPU: 1,
		Start: at("2026-06-01T00:00:00Z"), End: at("2026-06-01T00:00:10Z")}
	if got := b.Cost(&typ, typ.Start, typ.End); got.Cmp(rat("0.005")) != 0 {
		t.Errorf("instance type: %s, want 0.005 (its own price a second)", got.FloatString(10))
	}
	// GPUs at their model's price, or at the period's gpu price.
	gpus := apiv1.UsageRecord{MilliCPU: 1000, MemoryMiB: 1024, GPU: 2, GPUModel: "nvidia-t4", Start: at("2026-06-01T00:00:00Z"), End: at("2026-06-01T00:00:10Z")}
	// 10 s x (0.0000077 + 0.00000096 + 2 x 0.00005)
	if got := b.Cost(&gpus, gpus.Start, gpus.End); got.Cmp(rat("0.0010866")) != 0 {
		t.Errorf("2 nvidia-t4 GPUs: %s, want 0.0010866", got.FloatString(10))
	}
	gpus.GPUModel = "other"
	// 10 s x (0.0000077 + 0.00000096 + 2 x 0.0001)
	if got := b.Cost(&gpus, gpus.Start, gpus.End); got.Cmp(rat("0.0020866")) != 0 {
		t.Errorf("2 GPUs of a model the book does not name: %s, want 0.0020866", got.FloatString(10))
	}
}

func TestBillLinesAddUpToTheTotal(t *testing.T) {
	b, err := Parse([]byte(book))
	if err != nil {
		t.Fatal(err)
	}
	var recs []apiv1.UsageRecord
	start := at("2026-06-01T00:00:00Z")
	for i := 0; i < 50; i++ {
		team := []string{"a", "b", "c"}[i%3]
		recs = append(recs, apiv1.UsageRecord{
			Metadata: apiv1.ObjectMeta{ID: string(rune('A'+i%26)) + string(rune('a'+i/26)), Tenant: "t" + team},
			Tags:     map[string]string{"team": team}, MilliCPU: int64(250 * (1 + i%8)), MemoryMiB: int64(512 * (1 + i%4)),
			Start: start.Add(time.Duration(i*397) * time.Second), End: start.Add(time.Duration(i*397+3000+i*61) * time.Second),
		})
	}
	q := Query{From: start, To: start.Add(48 * time.Hour), Granularity: "hour", By: "tag:team"}
	if err := q.Validate(); err != nil {
		t.Fatal(err)
	}
	bill, err := b.Bill(context.Background(), recs, q)
	if err != nil {
		t.Fatal(err)
	}
	sum, exact := new(big.Rat), new(big.Rat)
	var secs int64
	for _, l := range bill.Lines {
		sum.Add(sum, rat(l.Amount))
		secs += l.PendingSeconds + l.RunningSeconds
	}
	for i := range recs {
		exact.Add(exact, b.Cost(&recs[i], q.From, q.To))
		secs -= recs[i].End.Unix() - recs[i].Start.Unix()
	}
	if bill.Total != sum.FloatString(2) || bill.Total != exact.FloatString(2) || secs != 0 {
		t.Fatalf("total %s; lines add to %s, records to %s; seconds off by %d", bill.Total, sum.FloatString(10), exact.FloatString(10), secs)
	}
	// Filtered by a tag: only team a's.
	q.Tags, q.By, q.Granularity = map[string]string{"team": "a"}, "tenant", ""
	if bill, err = b.Bill(context.Background(), recs, q); err != nil {
		t.Fatal(err)
	}
	if len(bill.Lines) != 1 || bill.Lines[0].Key != "ta" || bill.Lines[0].Groups != 17 {
		t.Fatalf("team a by tenant: %+v", bill.Lines)
	}
	for _, bad := range []struct {
		q    Query
		says string
	}{
		{Query{From: start, To: start, By: "group"}, "to "},
		{Query{From: start, To: start.Add(time.Hour), By: "colour"}, "by \"colour\": allowed"},
		{Query{From: start, To: start.Add(time.Hour), By: "group", Granularity: "week"}, "granularity \"week\""},
		{Query{From: start, To: start.AddDate(2, 0, 0), By: "group", Granularity: "hour"}, "at most 10000"},
	} {
		if err := bad.q.Validate(); err == nil || !strings.Contains(err.Error(), bad.says) {
			t.Errorf("%+v: %v, want %q", bad.q, err, bad.says)
		}
	}
}

func TestBillBounds(t *testing.T) {
	b, err := Parse([]byte(book))
	if err != nil {
		t.Fatal(err)
	}
	start := at("2026-06-01T00:00:00Z")
	var recs []apiv1.UsageRecord
	for i := 0; i < 20; i++ {
		recs = append(recs, apiv1.UsageRecord{Metadata: apiv1.ObjectMeta{ID: fmt.Sprintf("g%d", i), Tenant: "t"}, MilliCPU: 1000, MemoryMiB: 1024,
			Start: start, End: start.Add(400 * 24 * time.Hour)})
	}
	// 20 groups x 9,600 hours: over the line cap, refused, naming what to change.
	q := Query{From: start, To: start.Add(9600 * time.Hour), Granularity: "hour", By: "group"}
	if err := q.Validate(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Bill(context.Background(), recs, q); !IsTooLarge(err) || !strings.Contains(err.Error(), "coarser granularity") {
		t.Fatalf("a bill of 192,000 lines: %v", err)
	}
	// By day it is 8,000 lines; a record visits only its periods: a short
	// one in a long bill makes one line.
	q.Granularity = "day"
	short := []apiv1.UsageRecord{{Metadata: apiv1.ObjectMeta{ID: "short", Tenant: "t"}, MilliCPU: 1000, MemoryMiB: 1024,
		Start: start.Add(100 * time.Hour), End: start.Add(101 * time.Hour)}}
	bill, err := b.Bill(context.Background(), short, q)
	if err != nil || len(bill.Lines) != 1 || !bill.Lines[0].Period.Equal(start.Add(96*time.Hour)) || bill.Lines[0].RunningSeconds+bill.Lines[0].PendingSeconds != 3600 {
		t.Fatalf("a short record in a long bill: %+v (%v)", bill, err)
	}
	// A cancelled request stops the rating.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := b.Bill(ctx, recs, q); err == nil {
		t.Fatal("a cancelled bill was rated")
	}
	// Two tenants' virtual nodes of one name are two lines.
	vn := []apiv1.UsageRecord{
		{Metadata: apiv1.ObjectMeta{ID: "a", Tenant: "t1"}, VirtualNode: "eci-vnode", MilliCPU: 1000, MemoryMiB: 1024, Start: start, End: start.Add(time.Hour)},
		{Metadata: apiv1.ObjectMeta{ID: "b", Tenant: "t2"}, VirtualNode: "eci-vnode", MilliCPU: 1000, MemoryMiB: 1024, Start: start, End: start.Add(time.Hour)},
	}
	q = Query{From: start, To: start.Add(time.Hour), By: "vnode"}
	if bill, err = b.Bill(context.Background(), vn, q); err != nil || len(bill.Lines) != 2 || bill.Lines[0].Key != "t1/eci-vnode" {
		t.Fatalf("by vnode: %+v (%v)", bill, err)
	}
}

// A sum of short groups' usage (apiv1.UsageRecord.Groups) bills what its
// records did, all of it in the bill's period that holds its start.
func TestSumCostsWhatItsRecordsDid(t *testing.T) {
	b, err := Parse([]byte(book))
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 30, 23, 0, 0, 0, time.UTC)
	var members []apiv1.UsageRecord
	amount := new(big.Rat)
	sum := apiv1.UsageRecord{Metadata: apiv1.ObjectMeta{ID: "~x", Tenant: "t"}, Zone: "zone-b", MilliCPU: 500, MemoryMiB: 1024, GPU: 1,
		Start: at, End: at.Add(time.Hour)}
	for i := 0; i < 7; i++ {
		start := at.Add(time.Duration(i) * 7 * time.Minute)
		run := start.Add(9 * time.Second)
		members = append(members, apiv1.UsageRecord{Metadata: apiv1.ObjectMeta{ID: fmt.Sprint(i), Tenant: "t"}, Group: fmt.Sprint(i),
			Zone: "zone-b", MilliCPU: 500, MemoryMiB: 1024, GPU: 1, Start: start, RunningAt: &run, End: start.Add(5 * time.Minute)})
		p, r := members[i].Seconds(start, start.Add(time.Hour))
		cpu, mem, gpu, _ := members[i].ResourceSeconds(p + r)
		sum.Groups++
		sum.PendingSeconds += p
		sum.RunningSeconds += r
		sum.MilliCPUSeconds += cpu
		sum.MemoryMiBSeconds += mem
		sum.GPUSeconds += gpu
		amount.Add(amount, b.Cost(&members[i], start, start.Add(time.Hour)))
	}
	sum.Amount = amount.RatString()
	q := Query{From: at.Add(-time.Hour), To: at.Add(2 * time.Hour), Granularity: "hour", By: "tenant"}
	one, err := b.Bill(context.Background(), members, q)
	if err != nil {
		t.Fatal(err)
	}
	summed, err := b.Bill(context.Background(), []apiv1.UsageRecord{sum}, q)
	if err != nil {
		t.Fatal(err)
	}
	if len(one.Lines) != 1 || len(summed.Lines) != 1 || fmt.Sprintf("%v %+v", *one.Lines[0].Period, one.Lines[0]) != fmt.Sprintf("%v %+v", *summed.Lines[0].Period, summed.Lines[0]) {
		t.Fatalf("by tenant: the records bill %+v, their sum %+v", one.Lines, summed.Lines)
	}
	q.By = "group"
	if summed, err = b.Bill(context.Background(), []apiv1.UsageRecord{sum}, q); err != nil {
		t.Fatal(err)
	}
	l := summed.Lines
	if one.Total != summed.Total || one.Total == "0.00" || len(l) != 1 || l[0].Key != SummedKey || l[0].Groups != 7 ||
		l[0].PendingSeconds != 63 || l[0].GPUSeconds != 7*300 || !l[0].Period.Equal(at) {
		t.Fatalf("the records bill %s, their sum %s: %+v", one.Total, summed.Total, summed.Lines)
	}
	// A bill from within its hour does not count it (its start is before).
	later, err := b.Bill(context.Background(), []apiv1.UsageRecord{sum}, Query{From: at.Add(time.Minute), To: at.Add(2 * time.Hour), By: "tenant"})
	if err != nil || len(later.Lines) != 0 {
		t.Fatalf("a bill from within the sum's hour: %+v, %v", later, err)
	}
}
