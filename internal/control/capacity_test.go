package control

import (
	"testing"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/auth"
	"github.com/eci-dev/eci/internal/errdefs"
)

// The pool's capacity: schedulable hosts only, free after every tenant's
// groups, the largest free on one host; a tenant's own use and quota.
func TestCapacity(t *testing.T) {
	e := newEnv(t, true)
	e.vswitch(t, "vsw-a", "zone-a", "198.19.128.0/24")
	e.host(t, "h1", "zone-a", 8000, 16384, 100)
	e.host(t, "h2", "zone-a", 4000, 8192, 100)
	e.host(t, "h3", "zone-a", 16000, 32768, 100)
	yes := true
	if _, err := e.svc.UpdateHost(e.ctx, auth.Admin, "h3", apiv1.HostUpdate{Unschedulable: &yes}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.PutTenant(e.ctx, auth.Admin, &apiv1.Tenant{Metadata: apiv1.ObjectMeta{Name: "acme"}, Spec: apiv1.TenantSpec{Quota: apiv1.Quota{MilliCPU: 6000}}}); err != nil {
		t.Fatal(err)
	}
	a, _, _ := e.svc.CreateGroup(e.ctx, tenantPrincipal("acme"), groupSpec("a", 2, 4))
	b, _, _ := e.svc.CreateGroup(e.ctx, tenantPrincipal("bolt"), groupSpec("b", 4, 8))
	e.waitState(t, a.Metadata.ID, apiv1.StatePending)
	e.waitState(t, b.Metadata.ID, apiv1.StatePending)

	c, err := e.svc.Capacity(e.ctx, tenantPrincipal("acme"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Pool.MilliCPU != 12000 || c.Pool.MemoryMiB != 24576 || c.Pool.Pods != 200 {
		t.Errorf("pool %+v; want h1 and h2 (h3 is cordoned)", c.Pool)
	}
	if c.Free.MilliCPU != 6000 || c.Free.MemoryMiB != 12288 || c.Free.Pods != 198 {
		t.Errorf("free %+v; want 12 - 2 - 4 vCPU", c.Free)
	}
	if c.Used.MilliCPU != 2000 || c.Used.Pods != 1 || c.Quota.MilliCPU != 6000 {
		t.Errorf("acme's used %+v quota %+v", c.Used, c.Quota)
	}
	if c.LargestFree.MilliCPU > 6000 || c.LargestFree.MilliCPU < 2000 {
		t.Errorf("largest free %+v", c.LargestFree)
	}
	admin, err := e.svc.Capacity(e.ctx, auth.Admin)
	if err != nil || admin.Used.MilliCPU != 6000 {
		t.Fatalf("admin: %+v, %v; want every group's 6 vCPU", admin, err)
	}
	if _, err := e.svc.Capacity(e.ctx, hostPrincipal("h1")); !errdefs.IsPermissionDenied(err) {
		t.Fatalf("a host read the capacity: %v", err)
	}
}
