package control

import (
	"fmt"
	"strings"
	"testing"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/auth"
	"github.com/eci-dev/eci/internal/poll"
)

// A pay-as-you-go group with no capacity takes it back from a spot
// instance past its protected hours: the spot one is told (SpotReleaseAt,
// a SpotToBeReleased Event naming no one), ends Expired after the notice,
// and the pay-as-you-go one is placed on its capacity. A protected spot
// instance is left alone, and a spot group takes nothing back.
func TestSpotInstancesYieldCapacity(t *testing.T) {
	e := newEnv(t, true, func(o *Options) { o.SpotNotice = 10 * time.Second })
	e.vswitch(t, "vsw-a", "zone-a", "198.19.128.0/24")
	e.host(t, "h1", "zone-a", 4000, 8192, 10)
	zero := 0
	spot := func(name string, hours *int) string {
		g := groupSpec(name, 2, 4)
		g.Spec.SpotStrategy, g.Spec.SpotDurationHours = apiv1.SpotAsPriceGo, hours
		return e.create(t, g)
	}
	open, protected := spot("open", &zero), spot("protected", nil)
	for _, id := range []string{open, protected} {
		e.waitState(t, id, apiv1.StatePending)
	}

	// A spot group takes nothing back.
	late := spot("late", &zero)
	e.waitMessage(t, late, "no host in zone-a has 2 vCPU / 4 GiB free")
	if g, _ := e.svc.GetGroup(e.ctx, auth.Admin, open); g.Status.SpotReleaseAt != nil {
		t.Fatal("a spot group released another")
	}
	if _, err := e.svc.DeleteGroup(e.ctx, auth.Admin, late, nil, true); err != nil {
		t.Fatal(err)
	}

	paid := e.create(t, groupSpec("paid", 2, 4))
	e.waitMessage(t, paid, "spot instances are") // released for it at ..., then being released
	g, _ := e.svc.GetGroup(e.ctx, auth.Admin, open)
	if g.Status.SpotReleaseAt == nil || !g.Status.SpotReleaseAt.Equal(e.clock.Now().Add(10*time.Second)) {
		t.Fatalf("the open spot instance's release: %v", g.Status.SpotReleaseAt)
	}
	evs, _ := e.svc.ListEvents(e.ctx, auth.Admin, open)
	if !hasEventSaying(evs, "SpotToBeReleased", "the spot instance is released at 2026-11-23T12:00:10Z: its capacity goes to a pay-as-you-go instance") {
		t.Errorf("no SpotToBeReleased event: %+v", evs)
	}
	if g, _ := e.svc.GetGroup(e.ctx, auth.Admin, protected); g.Status.SpotReleaseAt != nil {
		t.Error("a spot instance within its protected hour was released")
	}

	// Before the notice ends nothing moves; after it the spot one is
	// Expired and the paid one placed.
	if err := e.svc.MonitorOnce(e.ctx); err != nil {
		t.Fatal(err)
	}
	if g, _ := e.svc.GetGroup(e.ctx, auth.Admin, open); g.Status.State != apiv1.StatePending {
		t.Fatalf("ended before its notice: %s", g.Status.State)
	}
	e.clock.Add(11 * time.Second)
	if err := e.svc.MonitorOnce(e.ctx); err != nil {
		t.Fatal(err)
	}
	if g := e.waitState(t, open, apiv1.StateExpired); g.Status.Reason != "SpotReleased" || g.Status.FinishedAt == nil {
		t.Errorf("expired as %q, finished %v", g.Status.Reason, g.Status.FinishedAt)
	}
	e.waitState(t, paid, apiv1.StatePending)
	if g, _ := e.svc.GetGroup(e.ctx, auth.Admin, protected); g.Status.State != apiv1.StatePending {
		t.Errorf("the protected spot instance is %s", g.Status.State)
	}
}

// A group that could never run (its tenant's quota is spent) takes no
// spot instance's capacity; a release whose pay-as-you-go group went away
// before its notice ended is called off, and the spot instance runs on.
func TestSpotReleaseNeedsAWaitingGroup(t *testing.T) {
	e := newEnv(t, true, func(o *Options) { o.SpotNotice = 10 * time.Second })
	e.vswitch(t, "vsw-a", "zone-a", "198.19.128.0/24")
	e.host(t, "h1", "zone-a", 2000, 4096, 10)
	zero := 0
	sg := groupSpec("spot", 2, 4)
	sg.Spec.SpotStrategy, sg.Spec.SpotDurationHours = apiv1.SpotAsPriceGo, &zero
	spot := e.create(t, sg)
	e.waitState(t, spot, apiv1.StatePending)

	if _, err := e.svc.PutTenant(e.ctx, auth.Admin, &apiv1.Tenant{Metadata: apiv1.ObjectMeta{Name: "capped"}, Spec: apiv1.TenantSpec{Quota: apiv1.Quota{MilliCPU: 1000}}}); err != nil {
		t.Fatal(err)
	}
	capped := groupSpec("capped", 2, 4)
	capped.Metadata.Tenant = "capped"
	id := e.create(t, capped)
	e.waitMessage(t, id, "no host in zone-a has 2 vCPU / 4 GiB free")
	if g, _ := e.svc.GetGroup(e.ctx, auth.Admin, spot); g.Status.SpotReleaseAt != nil {
		t.Fatal("a group over its quota released a spot instance")
	}
	if _, err := e.svc.DeleteGroup(e.ctx, auth.Admin, id, nil, true); err != nil {
		t.Fatal(err)
	}

	paid := e.create(t, groupSpec("paid", 2, 4))
	e.waitMessage(t, paid, "spot instances are")
	if _, err := e.svc.DeleteGroup(e.ctx, auth.Admin, paid, nil, true); err != nil {
		t.Fatal(err)
	}
	e.clock.Add(11 * time.Second)
	if err := e.svc.MonitorOnce(e.ctx); err != nil {
		t.Fatal(err)
	}
	g, _ := e.svc.GetGroup(e.ctx, auth.Admin, spot)
	if g.Status.State != apiv1.StatePending || g.Status.SpotReleaseAt != nil {
		t.Fatalf("the spot instance: %s, release %v", g.Status.State, g.Status.SpotReleaseAt)
	}
	evs, _ := e.svc.ListEvents(e.ctx, auth.Admin, spot)
	if !hasEventSaying(evs, "SpotReleaseCancelled", "the spot instance is not released: no pay-as-you-go instance waits for its capacity any more") {
		t.Errorf("no SpotReleaseCancelled event: %+v", evs)
	}
}

func (e *env) create(t *testing.T, g *apiv1.ContainerGroup) string {
	t.Helper()
	out, _, err := e.svc.CreateGroup(e.ctx, auth.Admin, g)
	if err != nil {
		t.Fatal(err)
	}
	return out.Metadata.ID
}

// waitMessage polls until group id's status message says want.
func (e *env) waitMessage(t *testing.T, id, want string) {
	t.Helper()
	poll.Eventually(t, 10*time.Second, id+" says "+want, func() error {
		g, err := e.svc.GetGroup(e.ctx, auth.Admin, id)
		if err != nil {
			return err
		}
		if !strings.Contains(g.Status.Message, want) {
			return fmt.Errorf("%s: %q", g.Status.State, g.Status.Message)
		}
		return nil
	})
}

func hasEventSaying(evs []apiv1.Event, reason, msg string) bool {
	for _, ev := range evs {
		if ev.Reason == reason && ev.Message == msg {
			return true
		}
	}
	return false
}
