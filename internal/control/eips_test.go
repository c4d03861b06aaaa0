package control

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/auth"
	"github.com/eci-dev/eci/internal/errdefs"
	"github.com/eci-dev/eci/internal/poll"
)

// Without a range no EIP is given, and a group asking for one is refused
// naming the field.
func TestEIPsOff(t *testing.T) {
	e := newEnv(t, false)
	if _, err := e.svc.AllocateEIP(e.ctx, tenantPrincipal("a"), &apiv1.EIP{}); !errdefs.IsInvalid(err) || !strings.Contains(err.Error(), "--eip-range") {
		t.Fatalf("allocate without a range: %v", err)
	}
	g := groupSpec("web", 1, 2)
	g.Spec.WithEIP = true
	if _, _, err := e.svc.CreateGroup(e.ctx, tenantPrincipal("a"), g); !errdefs.IsInvalid(err) || !strings.Contains(err.Error(), "spec.withEip") {
		t.Fatalf("a group with an EIP without a range: %v", err)
	}
}

// A tenant's EIP: the range's lowest free address, seen by its tenant
// alone, bound to the group that names it while it is placed (release
// refused meanwhile), free again when the group ends; another tenant
// can't name it. A group's own EIP comes with its placement and goes with
// it; when the range is spent, a group that asks for one waits, saying
// why.
func TestEIPs(t *testing.T) {
	e := newEnv(t, true, func(o *Options) { o.EIPRange = netip.MustParsePrefix("198.18.200.0/30") }) // .1 and .2
	e.vswitch(t, "vsw-a", "zone-a", "198.19.128.0/24")
	e.host(t, "h1", "zone-a", 16000, 65536, 100)
	a, b := tenantPrincipal("a"), tenantPrincipal("b")

	eip, err := e.svc.AllocateEIP(e.ctx, a, &apiv1.EIP{Metadata: apiv1.ObjectMeta{Name: "web"}})
	if err != nil || eip.Status.Address != "198.18.200.1" || eip.Metadata.ID != "eip-c612c801" || eip.Metadata.Tenant != "a" {
		t.Fatalf("allocate: %+v, %v", eip, err)
	}
	if _, err := e.svc.GetEIP(e.ctx, b, eip.Metadata.ID); !errdefs.IsNotFound(err) {
		t.Fatalf("another tenant read the EIP: %v", err)
	}
	if list, err := e.svc.ListEIPs(e.ctx, b); err != nil || len(list) != 0 {
		t.Fatalf("another tenant's list: %v, %v", list, err)
	}
	stranger := groupSpec("stranger", 1, 2)
	stranger.Spec.EIPID = eip.Metadata.ID
	if _, _, err := e.svc.CreateGroup(e.ctx, b, stranger); !errdefs.IsInvalid(err) || !strings.Contains(err.Error(), "spec.eipId") {
		t.Fatalf("another tenant named the EIP: %v", err)
	}

	g := groupSpec("web", 1, 2)
	g.Spec.EIPID = eip.Metadata.ID
	g, _, err = e.svc.CreateGroup(e.ctx, a, g)
	if err != nil {
		t.Fatal(err)
	}
	placed := e.waitState(t, g.Metadata.ID, apiv1.StatePending)
	if placed.Status.EIPAddress != "198.18.200.1" || placed.Status.EIPID != eip.Metadata.ID {
		t.Fatalf("placed with EIP %q (%s)", placed.Status.EIPAddress, placed.Status.EIPID)
	}
	if err := e.svc.ReleaseEIP(e.ctx, a, eip.Metadata.ID); !errdefs.IsConflict(err) {
		t.Fatalf("released a bound EIP: %v", err)
	}

	own := groupSpec("own", 1, 2)
	own.Spec.WithEIP = true
	own, _, err = e.svc.CreateGroup(e.ctx, a, own)
	if err != nil {
		t.Fatal(err)
	}
	ownPlaced := e.waitState(t, own.Metadata.ID, apiv1.StatePending)
	if ownPlaced.Status.EIPAddress != "198.18.200.2" {
		t.Fatalf("a group's own EIP: %q", ownPlaced.Status.EIPAddress)
	}
	third := groupSpec("third", 1, 2)
	third.Spec.WithEIP = true
	third, _, err = e.svc.CreateGroup(e.ctx, a, third)
	if err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, 10*time.Second, "the third waits for an EIP", e.scheduling(t, third.Metadata.ID, "every EIP of 198.18.200.0/30 is taken"))

	// The groups end (their host confirms): web's EIP is free again, own's
	// is gone and given to the third.
	for _, id := range []string{g.Metadata.ID, own.Metadata.ID} {
		if _, err := e.svc.ReportStatus(e.ctx, hostPrincipal("h1"), id, apiv1.StatusReport{State: apiv1.StateSucceeded, Reason: "Completed"}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := e.svc.GetEIP(e.ctx, a, eip.Metadata.ID)
	if err != nil || got.Status.GroupID != "" {
		t.Fatalf("web's EIP after it ended: %+v, %v", got, err)
	}
	// (The third may be placed already, with a new EIP of the same
	// address, and so the same id: then it is the third's.)
	if left, err := e.svc.GetEIP(e.ctx, auth.Admin, ownPlaced.Status.EIPID); !errdefs.IsNotFound(err) && (err != nil || left.Status.GroupID != third.Metadata.ID) {
		t.Fatalf("own's EIP outlived it: %+v, %v", left, err)
	}
	if p := e.waitState(t, third.Metadata.ID, apiv1.StatePending); p.Status.EIPAddress != "198.18.200.2" {
		t.Fatalf("the third's EIP: %q", p.Status.EIPAddress)
	}
	if err := e.svc.ReleaseEIP(e.ctx, a, eip.Metadata.ID); err != nil {
		t.Fatalf("release: %v", err)
	}
	if list, err := e.svc.ListEIPs(e.ctx, a); err != nil || len(list) != 1 || list[0].Status.Address != "198.18.200.2" {
		t.Fatalf("after the release: %+v, %v", list, err)
	}
}

// No host registers a tunnel IP in the EIP range, no EIP is a host's own
// address (one registered before the range), and a tenant allocates at
// most MaxEIPsPerTenant.
func TestEIPsBounded(t *testing.T) {
	e := newEnv(t, false, func(o *Options) { o.EIPRange = netip.MustParsePrefix("198.18.200.0/26") })
	r := apiv1.Resources{MilliCPU: 1000, MemoryMiB: 1024, Pods: 1}
	h := &apiv1.Host{Metadata: apiv1.ObjectMeta{Name: "h1"}, Spec: apiv1.HostSpec{Zone: "zone-a", Capacity: r, Allocatable: r, TunnelIP: "198.18.200.1"}}
	if _, err := e.svc.RegisterHost(e.ctx, hostPrincipal("h1"), h); !errdefs.IsInvalid(err) || !strings.Contains(err.Error(), "spec.tunnelIP") {
		t.Fatalf("a host whose tunnel IP is in the EIP range: %v", err)
	}
	// One registered before the range was: its address is never given.
	h.Metadata.ID = "h1"
	if err := e.svc.hosts.Create(e.ctx, h, nil); err != nil {
		t.Fatal(err)
	}
	a := tenantPrincipal("a")
	for i := range MaxEIPsPerTenant {
		eip, err := e.svc.AllocateEIP(e.ctx, a, &apiv1.EIP{})
		if err != nil {
			t.Fatalf("EIP %d: %v", i, err)
		}
		if i == 0 && eip.Status.Address != "198.18.200.2" {
			t.Fatalf("the first EIP is %s, not the one after the host's address", eip.Status.Address)
		}
	}
	if _, err := e.svc.AllocateEIP(e.ctx, a, &apiv1.EIP{}); !errdefs.IsPermissionDenied(err) || !strings.Contains(err.Error(), "release one") {
		t.Fatalf("EIP %d: %v", MaxEIPsPerTenant+1, err)
	}
	if _, err := e.svc.AllocateEIP(e.ctx, tenantPrincipal("b"), &apiv1.EIP{}); err != nil {
		t.Fatalf("another tenant: %v", err)
	}
}

// An EIP released while a group of its tenant names it, then given (with
// its id) to another tenant, is not bound to the first tenant's group when
// it is placed.
func TestEIPNotBoundAcrossTenants(t *testing.T) {
	e := newEnv(t, true, func(o *Options) { o.EIPRange = netip.MustParsePrefix("198.18.200.0/30") })
	e.vswitch(t, "vsw-a", "zone-a", "198.19.128.0/24")
	a, b := tenantPrincipal("a"), tenantPrincipal("b")
	eip, err := e.svc.AllocateEIP(e.ctx, a, &apiv1.EIP{})
	if err != nil {
		t.Fatal(err)
	}
	g := groupSpec("web", 1, 2)
	g.Spec.EIPID = eip.Metadata.ID
	g, _, err = e.svc.CreateGroup(e.ctx, a, g) // no host yet: it waits
	if err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, 10*time.Second, "the group waits for a host", e.scheduling(t, g.Metadata.ID, "no capacity"))
	if err := e.svc.ReleaseEIP(e.ctx, a, eip.Metadata.ID); err != nil {
		t.Fatal(err)
	}
	theirs, err := e.svc.AllocateEIP(e.ctx, b, &apiv1.EIP{})
	if err != nil || theirs.Metadata.ID != eip.Metadata.ID {
		t.Fatalf("b's EIP %+v (%v): want the same address again", theirs, err)
	}
	e.host(t, "h1", "zone-a", 16000, 65536, 100)
	e.svc.wake()
	poll.Eventually(t, 10*time.Second, "a's group does not get b's EIP", e.scheduling(t, g.Metadata.ID, "was released"))
	if got, err := e.svc.GetEIP(e.ctx, b, theirs.Metadata.ID); err != nil || got.Status.GroupID != "" {
		t.Fatalf("b's EIP: %+v, %v", got, err)
	}
}

func TestCheckEIPRange(t *testing.T) {
	for r, want := range map[string]string{
		"198.18.192.128/25": "",
		"0.0.0.0/0":         "its size",
		"198.18.192.0/31":   "its size",
		"169.254.0.0/24":    "169.254.0.0/16",
		"198.18.192.0/24":   "the server's address",
	} {
		err := CheckEIPRange(netip.MustParsePrefix(r), "198.18.192.1:8443")
		if want == "" && err != nil || want != "" && (err == nil || !strings.Contains(err.Error(), want)) {
			t.Errorf("%s: %v, want %q", r, err, want)
		}
	}
}

// A group whose host is lost keeps its EIP for the quarantine (its host
// may still answer for it): no other group gets the address until then.
func TestEIPQuarantined(t *testing.T) {
	e := newEnv(t, true, func(o *Options) { o.EIPRange = netip.MustParsePrefix("198.18.200.0/30") })
	e.vswitch(t, "vsw-a", "zone-a", "198.19.128.0/24")
	e.host(t, "h1", "zone-a", 16000, 65536, 100)
	a := tenantPrincipal("a")
	own := func(name string) *apiv1.ContainerGroup {
		g := groupSpec(name, 1, 2)
		g.Spec.WithEIP = true
		g, _, err := e.svc.CreateGroup(e.ctx, a, g)
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	first := e.waitState(t, own("first").Metadata.ID, apiv1.StatePending)
	second := e.waitState(t, own("second").Metadata.ID, apiv1.StatePending)
	if _, err := e.svc.transitionWith(e.ctx, first.Metadata.ID, time.Minute, func(g *apiv1.ContainerGroup) bool {
		return applyEvent(&g.Status, evHostLost, "HostLost", "lost", e.svc.now()) == nil
	}); err != nil {
		t.Fatal(err)
	}
	third := own("third")
	poll.Eventually(t, 10*time.Second, "the third waits: the lost group's EIP is quarantined", e.scheduling(t, third.Metadata.ID, "every EIP"))
	e.clock.Add(2 * time.Minute)
	e.svc.wake()
	if p := e.waitState(t, third.Metadata.ID, apiv1.StatePending); p.Status.EIPAddress != first.Status.EIPAddress || p.Status.EIPAddress == second.Status.EIPAddress {
		t.Fatalf("after the quarantine the third got %q; the first had %q", p.Status.EIPAddress, first.Status.EIPAddress)
	}
}
