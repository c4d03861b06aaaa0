package vservice

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"sigs.k8s.io/knftables"

	apiv1 "github.com/eci-dev/eci/api/v1"
)

// The cost of the rules, as issue #15 asks: 1,000 virtual IPs with 5,000
// backends on one host, in the host's table (the layout chosen: one ruleset
// per host, the instance's address picks its table) against the same table
// in every instance's network namespace (the other layout). Reported:
//   - full-sync-ms: the first sync (the agent's start);
//   - update-p50-ms / update-p99-ms: a sync after one backend of one
//     virtual IP changed (a readiness flip), from the call to the kernel
//     having it (new connections follow from then on);
//   - nft-cpu-ms/update: the CPU of the nft processes per update (children's
//     rusage), next to the agent's own in ns/op;
//   - kernel-KiB: what the ruleset holds of the kernel's memory (Slab and
//     percpu of /proc/meminfo, before and after; the machine's other work
//     makes it approximate);
//   - per-netns-KiB and per-netns-update-ms: the same table alone in one
//     instance namespace, the cost the other layout pays per instance.
//
// BENCH=Rules make bench, or
// go test -run '^$' -bench BenchmarkRules -count 3 ./internal/vservice
func BenchmarkRules(b *testing.B) {
	needRoot(b)
	ctx := context.Background()
	const services, perService = 1000, 5
	table := benchTable(services, perService, 20)

	host := newNetns(b, "vsb-host")
	var nft knftables.Interface
	if err := inNetns(host, func() (err error) { nft, err = knftables.New(knftables.IPv4Family, TableName); return err }); err != nil {
		b.Fatal(err)
	}
	p := New(nft)
	before := kernelMemory(b)
	start := time.Now()
	if err := syncIn(ctx, host, p, []Table{table}); err != nil {
		b.Fatal(err)
	}
	full := time.Since(start)
	held := kernelMemory(b) - before

	var lat []time.Duration
	cpu0 := childCPU()
	b.ResetTimer()
	// At least 50 updates, so that make bench's -benchtime 1x gives a p99.
	updates := max(b.N, 50)
	for i := range updates {
		// One backend of one virtual IP moves (a pod replaced).
		vs := table.Services[i%services]
		vs.Spec.Ports[0].Backends[0].IP = fmt.Sprintf("198.19.%d.%d", 100+i%100, 1+i%250)
		t0 := time.Now()
		if err := syncIn(ctx, host, p, []Table{table}); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	cpu := childCPU() - cpu0

	// The other layout: the same table in an instance's own namespace.
	inst := newNetns(b, "vsb-inst")
	var nft2 knftables.Interface
	if err := inNetns(inst, func() (err error) { nft2, err = knftables.New(knftables.IPv4Family, TableName); return err }); err != nil {
		b.Fatal(err)
	}
	before = kernelMemory(b)
	t0 := time.Now()
	if err := syncIn(ctx, inst, New(nft2), []Table{table}); err != nil {
		b.Fatal(err)
	}
	perNetnsFull := time.Since(t0)
	perNetns := kernelMemory(b) - before

	slices.Sort(lat)
	b.ReportMetric(float64(full.Milliseconds()), "full-sync-ms")
	b.ReportMetric(ms(lat[len(lat)/2]), "update-p50-ms")
	b.ReportMetric(ms(lat[len(lat)*99/100]), "update-p99-ms")
	b.ReportMetric(ms(cpu)/float64(updates), "nft-cpu-ms/update")
	b.ReportMetric(float64(held)/1024, "kernel-KiB")
	b.ReportMetric(float64(perNetns)/1024, "per-netns-KiB")
	b.ReportMetric(float64(perNetnsFull.Milliseconds()), "per-netns-sync-ms")
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// benchTable is a table of n virtual IPs with per backends each, reached by
// clients instances.
func benchTable(n, per, clients int) Table {
	t := Table{Key: "a/bench"}
	for i := range clients {
		t.Clients = append(t.Clients, Client{Addr: netip.AddrFrom4([4]byte{198, 18, 70, byte(2 + i)})})
	}
	for i := range n {
		port := apiv1.VirtualPort{Name: "http", Protocol: apiv1.ProtocolTCP, Port: 80}
		for j := range per {
			port.Backends = append(port.Backends, apiv1.Backend{IP: fmt.Sprintf("198.18.%d.%d", 80+j, 1+i%250), Port: int32(8000 + i/250)})
		}
		t.Services = append(t.Services, &apiv1.VirtualService{Spec: apiv1.VirtualServiceSpec{
			Table: "bench", IP: fmt.Sprintf("198.19.%d.%d", i/250, 1+i%250), Ports: []apiv1.VirtualPort{port}}})
	}
	return t
}

// kernelMemory is Slab + Percpu of /proc/meminfo, in bytes.
func kernelMemory(b *testing.B) int64 {
	b.Helper()
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		b.Fatal(err)
	}
	var total int64
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && (f[0] == "Slab:" || f[0] == "Percpu:") {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			total += kb << 10
		}
	}
	return total
}

// childCPU is the user and system CPU of the finished children (nft).
func childCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
