package control

import (
	"fmt"
	"testing"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/errdefs"
	"github.com/eci-dev/eci/internal/poll"
)

// A StatefulSet pod's fixed IP: the key's group gets its address again
// after the first ended, which no other group gets meanwhile; once the
// retention is over the address is free. A group whose host did not
// confirm its end holds the address for the quarantine first.
func TestFixedIP(t *testing.T) {
	e := newEnv(t, true)
	e.vswitch(t, "vsw-a", "zone-a", "198.19.128.0/29") // .2 to .6
	e.host(t, "h1", "zone-a", 16000, 65536, 100)
	a := tenantPrincipal("a")
	keyed := func(name string, hours int) *apiv1.ContainerGroup {
		g := groupSpec(name, 1, 2)
		g.Spec.FixedIPKey, g.Spec.FixedIPRetainHours = "cluster-a/default/web-0", hours
		return g
	}
	place := func(g *apiv1.ContainerGroup) *apiv1.ContainerGroup {
		t.Helper()
		g, _, err := e.svc.CreateGroup(e.ctx, a, g)
		if err != nil {
			t.Fatal(err)
		}
		return e.waitState(t, g.Metadata.ID, apiv1.StatePending)
	}
	end := func(g *apiv1.ContainerGroup) {
		t.Helper()
		if _, err := e.svc.ReportStatus(e.ctx, hostPrincipal("h1"), g.Metadata.ID, apiv1.StatusReport{State: apiv1.StateSucceeded, Reason: "Completed"}); err != nil {
			t.Fatal(err)
		}
	}

	first := place(keyed("web-0", 2))
	ip := first.Status.IP
	end(first)
	others := map[string]bool{}
	for _, name := range []string{"x", "y"} {
		g := place(groupSpec(name, 1, 2))
		if g.Status.IP == ip {
			t.Fatalf("group %s got %s, kept for web-0", name, ip)
		}
		others[g.Status.IP] = true
	}
	again := place(keyed("web-0-again", 2))
	if again.Status.IP != ip {
		t.Fatalf("the key's next group got %s, not its fixed IP %s", again.Status.IP, ip)
	}

	// Its host is lost: the address is held for the quarantine, then the
	// key's group gets it.
	if _, err := e.svc.transitionWith(e.ctx, again.Metadata.ID, time.Minute, func(g *apiv1.ContainerGroup) bool {
		return applyEvent(&g.Status, evHostLost, "HostLost", "lost", e.svc.now()) == nil
	}); err != nil {
		t.Fatal(err)
	}
	third, _, err := e.svc.CreateGroup(e.ctx, a, keyed("web-0-third", 2))
	if err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, 10*time.Second, "the key's group waits for its held IP", e.scheduling(t, third.Metadata.ID, "fixed IP "+ip+" is held until"))
	e.clock.Add(2 * time.Minute)
	e.svc.wake()
	if p := e.waitState(t, third.Metadata.ID, apiv1.StatePending); p.Status.IP != ip {
		t.Fatalf("after the quarantine the key's group got %s, not %s", p.Status.IP, ip)
	}
	end(e.waitState(t, third.Metadata.ID, apiv1.StatePending))

	// The retention (2 hours) ends: the address is free for anyone.
	e.clock.Add(3 * time.Hour)
	if err := e.svc.releaseQuarantined(e.ctx, e.svc.now()); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, name := range []string{"p", "q", "r"} {
		got[place(groupSpec(name, 1, 2)).Status.IP] = true
	}
	if !got[ip] {
		t.Fatalf("after the retention %s was not given again: %v", ip, got)
	}
}

// A tenant keeps at most MaxKeptFixedIPs addresses for its ended groups:
// past them an ended group's address is freed.
func TestFixedIPsBoundedPerTenant(t *testing.T) {
	e := newEnv(t, true)
	e.vswitch(t, "vsw-a", "zone-a", "198.19.128.0/24")
	e.host(t, "h1", "zone-a", 16000, 65536, 100)
	for i := range MaxKeptFixedIPs {
		rec := &ipRecord{Metadata: apiv1.ObjectMeta{ID: ipID("vsw-a", fmt.Sprintf("198.19.128.%d", 100+i))}, VSwitch: "vsw-a",
			IP: fmt.Sprintf("198.19.128.%d", 100+i), Fixed: fmt.Sprintf("a/key-%d", i)}
		until := e.svc.now().Add(time.Hour)
		rec.ReleaseAfter = &until
		if err := e.svc.ips.Create(e.ctx, rec, nil); err != nil {
			t.Fatal(err)
		}
	}
	g := groupSpec("web-0", 1, 2)
	g.Spec.FixedIPKey = "cluster-a/default/web-0"
	g, _, err := e.svc.CreateGroup(e.ctx, tenantPrincipal("a"), g)
	if err != nil {
		t.Fatal(err)
	}
	placed := e.waitState(t, g.Metadata.ID, apiv1.StatePending)
	if _, err := e.svc.ReportStatus(e.ctx, hostPrincipal("h1"), g.Metadata.ID, apiv1.StatusReport{State: apiv1.StateSucceeded}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.ips.Get(e.ctx, ipID("vsw-a", placed.Status.IP)); !errdefs.IsNotFound(err) {
		t.Fatalf("the %dth kept address was kept: %v", MaxKeptFixedIPs+1, err)
	}
}
