package control

import (
	"fmt"
	"strings"
	"testing"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/billing"
	"github.com/eci-dev/eci/internal/errdefs"
	"github.com/eci-dev/eci/internal/store"
)

// A virtual node is billed as one 2 vCPU / 8 GiB instance while its
// heartbeats come, each Ready interval once.
func TestVirtualNodeCharge(t *testing.T) {
	e := newEnv(t, false)
	acme := tenantPrincipal("acme")
	start := e.clock.Now()
	beat := func(name string) {
		t.Helper()
		if err := e.svc.VirtualNodeHeartbeat(e.ctx, acme, name, apiv1.VirtualNodeHeartbeat{Tags: map[string]string{"team": "infra"}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.svc.VirtualNodeHeartbeat(e.ctx, hostPrincipal("h1"), "vk", apiv1.VirtualNodeHeartbeat{}); !errdefs.IsPermissionDenied(err) {
		t.Fatalf("a host's heartbeat: %v", err)
	}
	if err := e.svc.VirtualNodeHeartbeat(e.ctx, acme, "Bad/Name", apiv1.VirtualNodeHeartbeat{}); !errdefs.IsInvalid(err) || !strings.Contains(err.Error(), "metadata.name") {
		t.Fatalf("a bad name: %v", err)
	}
	// Ready 0-120 s (heartbeats every 30 s), silent 300 s, Ready again 60 s.
	for i := 0; i < 5; i++ {
		beat("eci-vnode")
		e.clock.Add(30 * time.Second)
	}
	e.clock.Add(270 * time.Second) // the last beat was at 120 s; now 420 s
	beat("eci-vnode")              // closes 0-120, opens 420
	e.clock.Add(30 * time.Second)
	beat("eci-vnode")
	e.clock.Add(30 * time.Second)
	beat("eci-vnode") // 420-480

	seconds := func(svc *Service) (int64, int) {
		t.Helper()
		recs, err := svc.Usage(e.ctx, acme, start, start.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		var total int64
		for _, u := range recs {
			if u.VirtualNode != "eci-vnode" || u.MilliCPU != 2000 || u.MemoryMiB != 8192 || u.Tags["team"] != "infra" {
				t.Fatalf("a virtual node's usage %+v", u)
			}
			p, r := u.Seconds(start, start.Add(time.Hour))
			total += p + r
		}
		return total, len(recs)
	}
	if secs, n := seconds(e.svc); secs != 120+60 || n != 2 {
		t.Fatalf("%d s in %d intervals, want 180 s in 2 (0-120, 420-480)", secs, n)
	}
	// Silent past the grace: the monitor closes the open interval, once.
	e.clock.Add(5 * time.Minute)
	if err := e.svc.CollectGarbage(e.ctx); err != nil {
		t.Fatal(err)
	}
	if n, _ := e.svc.vnodes.Count(e.ctx, ""); n != 0 {
		t.Fatalf("%d open intervals of a silent node", n)
	}
	if secs, n := seconds(New(e.svc.st, e.svc.opts)); secs != 180 || n != 2 {
		t.Fatalf("after the close, on another service: %d s in %d intervals", secs, n)
	}
	recs, _, _, err := e.svc.records.List(e.ctx, store.ListOptions{Prefix: "acme/vnode/"})
	if err != nil || len(recs) != 2 {
		t.Fatalf("usage records of the node %+v (%v)", recs, err)
	}
	// Rated at 2 vCPU and 8 GiB, keyed by tenant and node.
	book, _ := billing.Parse([]byte(billing.DefaultBook))
	e.svc.SetPriceBook(book)
	bill, err := e.svc.Bill(e.ctx, acme, billing.Query{From: start, To: start.Add(time.Hour), By: "vnode"})
	// 180 s x (2 x 0.0000077 + 8 x 0.00000096) = 0.0041544
	if err != nil || len(bill.Lines) != 1 || bill.Lines[0].Key != "acme/eci-vnode" || bill.Lines[0].Amount != "0.0041544000" {
		t.Fatalf("bill by vnode %+v (%v)", bill, err)
	}
	// Another tenant sees none of it.
	other, err := e.svc.Usage(e.ctx, tenantPrincipal("other"), start, start.Add(time.Hour))
	if err != nil || len(other) != 0 {
		t.Fatalf("another tenant sees %+v (%v)", other, err)
	}
	// At most MaxVirtualNodes Ready at once; a node of under a second
	// leaves no usage record.
	for i := 0; i < MaxVirtualNodes; i++ {
		beat(fmt.Sprintf("n%d", i))
	}
	err = e.svc.VirtualNodeHeartbeat(e.ctx, acme, "one-too-many", apiv1.VirtualNodeHeartbeat{})
	if !errdefs.IsPermissionDenied(err) || !strings.Contains(err.Error(), "the most it may (100)") {
		t.Fatalf("node %d: %v", MaxVirtualNodes+1, err)
	}
	e.clock.Add(5 * time.Minute)
	if err := e.svc.CollectGarbage(e.ctx); err != nil {
		t.Fatal(err)
	}
	if n, _ := e.svc.records.Count(e.ctx, "acme/vnode/"); n != 2 {
		t.Fatalf("%d usage records after %d nodes of no second, want the 2 of eci-vnode", n, MaxVirtualNodes)
	}
}
