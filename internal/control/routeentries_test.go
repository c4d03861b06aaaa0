package control

import (
	"strings"
	"testing"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/auth"
	"github.com/eci-dev/eci/internal/errdefs"
)

// The default VPC's route table: the admin adds entries, hosts read them,
// tenants neither; a destination over a vSwitch of the default VPC, or a
// vSwitch over a destination, is refused naming the field.
func TestRouteEntries(t *testing.T) {
	e := newEnv(t, false)
	e.vswitch(t, "vsw-a", "zone-a", "198.19.128.0/24")
	r := apiv1.Resources{MilliCPU: 1000, MemoryMiB: 1024, Pods: 1}
	if _, err := e.svc.RegisterHost(e.ctx, hostPrincipal("h1"), &apiv1.Host{Metadata: apiv1.ObjectMeta{Name: "h1"},
		Spec: apiv1.HostSpec{Zone: "zone-a", Capacity: r, Allocatable: r, TunnelIP: "198.18.192.11"}}); err != nil {
		t.Fatal(err)
	}
	entry := func(name, dst, hop string) *apiv1.RouteEntry {
		return &apiv1.RouteEntry{Metadata: apiv1.ObjectMeta{Name: name}, Spec: apiv1.RouteEntrySpec{Destination: dst, NextHop: hop}}
	}
	if _, err := e.svc.AddRouteEntry(e.ctx, tenantPrincipal("a"), entry("node-1", "198.18.10.0/24", "198.18.192.5")); !errdefs.IsPermissionDenied(err) {
		t.Fatalf("a tenant added a route entry: %v", err)
	}
	if _, err := e.svc.AddRouteEntry(e.ctx, auth.Admin, entry("over", "198.19.0.0/16", "198.18.192.5")); !errdefs.IsInvalid(err) || !strings.Contains(err.Error(), "vsw-a") {
		t.Fatalf("an entry over a vSwitch: %v", err)
	}
	if _, err := e.svc.AddRouteEntry(e.ctx, auth.Admin, entry("all", "0.0.0.0/0", "198.18.192.5")); !errdefs.IsInvalid(err) || !strings.Contains(err.Error(), "spec.destination") {
		t.Fatalf("a default route: %v", err)
	}
	if _, err := e.svc.AddRouteEntry(e.ctx, auth.Admin, entry("node-1", "198.18.10.7/24", "198.18.192.5")); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.CreateVSwitch(e.ctx, auth.Admin, &apiv1.VSwitch{Metadata: apiv1.ObjectMeta{Name: "vsw-b"}, Spec: apiv1.VSwitchSpec{Zone: "zone-a", CIDR: "198.18.10.0/25"}}); !errdefs.IsInvalid(err) || !strings.Contains(err.Error(), "node-1") {
		t.Fatalf("a vSwitch over an entry: %v", err)
	}
	if _, err := e.svc.AddRouteEntry(e.ctx, auth.Admin, entry("node-1", "198.18.10.0/24", "198.18.192.5")); !errdefs.IsAlreadyExists(err) {
		t.Errorf("the same entry again: %v", err)
	}
	for _, c := range []struct{ dst, why string }{
		{"198.18.10.128/25", "route entry node-1"},
		{"169.254.169.0/24", "169.254.0.0/16"},
		{"198.18.192.0/24", "host h1's address"},
	} {
		if _, err := e.svc.AddRouteEntry(e.ctx, auth.Admin, entry("clash", c.dst, "198.18.192.5")); !errdefs.IsInvalid(err) || !strings.Contains(err.Error(), c.why) {
			t.Errorf("an entry over %s: %v", c.why, err)
		}
	}
	list, err := e.svc.ListRouteEntries(e.ctx, hostPrincipal("h1"))
	if err != nil || len(list) != 1 || list[0].Spec.Destination != "198.18.10.0/24" {
		t.Fatalf("a host's list: %+v, %v", list, err)
	}
	if _, err := e.svc.ListRouteEntries(e.ctx, tenantPrincipal("a")); !errdefs.IsPermissionDenied(err) {
		t.Fatalf("a tenant listed the route table: %v", err)
	}
	if err := e.svc.DeleteRouteEntry(e.ctx, auth.Admin, "node-1"); err != nil {
		t.Fatal(err)
	}
}
