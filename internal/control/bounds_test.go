package control

import (
	"fmt"
	"strings"
	"testing"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/auth"
	"github.com/eci-dev/eci/internal/errdefs"
)

// A tenant's quota of groups counts every group not ended, placed or not:
// groups that can never be placed still count. The bound on stored groups
// counts every state. Both refuse the create with a message naming them,
// and room comes back as groups end or go.
func TestWhatATenantCanStore(t *testing.T) {
	e := newEnv(t, false) // no placer: nothing is ever placed
	if _, err := e.svc.PutTenant(e.ctx, auth.Admin, &apiv1.Tenant{Metadata: apiv1.ObjectMeta{Name: "acme"}, Spec: apiv1.TenantSpec{Quota: apiv1.Quota{Groups: 3}}}); err != nil {
		t.Fatal(err)
	}
	acme := tenantPrincipal("acme")
	var ids []string
	for i := range 3 {
		g, _, err := e.svc.CreateGroup(e.ctx, acme, groupSpec(fmt.Sprintf("g%d", i), 1, 2))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, g.Metadata.ID)
	}
	_, _, err := e.svc.CreateGroup(e.ctx, acme, groupSpec("over", 1, 2))
	if !errdefs.IsPermissionDenied(err) || !strings.Contains(err.Error(), "quota of tenant acme exceeded: 3 of 3 groups not ended") {
		t.Fatalf("a 4th Scheduling group: %v", err)
	}
	if _, _, err := e.svc.CreateGroup(e.ctx, tenantPrincipal("bolt"), groupSpec("theirs", 1, 2)); err != nil {
		t.Fatalf("another tenant is not bound by acme's quota: %v", err)
	}
	// An ended group leaves the quota (it stays stored, inside its retention).
	if _, err := e.svc.transition(e.ctx, ids[0], func(g *apiv1.ContainerGroup) bool {
		g.Status.State, g.Status.Reason = apiv1.StateScheduleFailed, "NoCapacity"
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.svc.CreateGroup(e.ctx, acme, groupSpec("fits", 1, 2)); err != nil {
		t.Fatalf("after a group ended: %v", err)
	}
	// A deleted one too.
	if _, err := e.svc.DeleteGroup(e.ctx, acme, ids[1], nil, false); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.svc.CreateGroup(e.ctx, acme, groupSpec("fits-again", 1, 2)); err != nil {
		t.Fatalf("after a group was deleted: %v", err)
	}

	// The bound on stored groups, every state.
	e.svc.opts.MaxStoredGroups = 5 // acme stores 4 (one ended), bolt 1
	if _, _, err := e.svc.CreateGroup(e.ctx, tenantPrincipal("bolt"), groupSpec("b2", 1, 2)); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.PutTenant(e.ctx, auth.Admin, &apiv1.Tenant{Metadata: apiv1.ObjectMeta{Name: "acme"}}); err != nil { // no quota now
		t.Fatal(err)
	}
	if _, _, err := e.svc.CreateGroup(e.ctx, acme, groupSpec("fifth", 1, 2)); err != nil {
		t.Fatal(err)
	}
	_, _, err = e.svc.CreateGroup(e.ctx, acme, groupSpec("sixth", 1, 2))
	if !errdefs.IsPermissionDenied(err) || !strings.Contains(err.Error(), "stores 5 groups, the most the service keeps per tenant (5, every state)") {
		t.Fatalf("past the bound on stored groups: %v", err)
	}
	// The ended group, removed by retention, gives its room back.
	e.clock.Add(RetainFailed + time.Minute)
	if err := e.svc.CollectGarbage(e.ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.svc.CreateGroup(e.ctx, acme, groupSpec("sixth", 1, 2)); err != nil {
		t.Fatalf("after retention removed the ended group: %v", err)
	}
}

// A client token's index goes with its group: once the group is deleted, the
// same token makes a new group.
func TestClientTokenGoesWithItsGroup(t *testing.T) {
	e := newEnv(t, false)
	spec := groupSpec("web", 1, 2)
	spec.Spec.ClientToken = "cluster-a/pod-uid-1"
	a, _, err := e.svc.CreateGroup(e.ctx, tenantPrincipal("acme"), spec)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.DeleteGroup(e.ctx, tenantPrincipal("acme"), a.Metadata.ID, nil, false); err != nil {
		t.Fatal(err)
	}
	if n, err := e.svc.idxs.Count(e.ctx, ""); err != nil || n != 0 {
		t.Fatalf("%d client-token index keys left after the group went (%v)", n, err)
	}
	b, created, err := e.svc.CreateGroup(e.ctx, tenantPrincipal("acme"), spec)
	if err != nil || !created || b.Metadata.ID == a.Metadata.ID {
		t.Fatalf("the token after its group went: %v created=%v", err, created)
	}
	if n, err := e.svc.members.Count(e.ctx, ""); err != nil || n != 2 {
		t.Fatalf("index keys of one live group: %d (%v), want stored and live", n, err)
	}
}

// Events of one object with the same reason and message are one series
// (count, first and last time); an object keeps at most MaxEventsPerObject.
func TestEventsAggregatedAndCapped(t *testing.T) {
	e := newEnv(t, false)
	g, _, err := e.svc.CreateGroup(e.ctx, tenantPrincipal("acme"), groupSpec("web", 1, 2))
	if err != nil {
		t.Fatal(err)
	}
	id := g.Metadata.ID
	first := e.clock.Now()
	for range 5 {
		e.clock.Add(time.Second)
		e.svc.recordEvent(e.ctx, "ContainerGroup", id, "acme", apiv1.EventWarning, "BackOff", "restarting container app (exit code 1)", "agent/h1")
	}
	evs, err := e.svc.ListEvents(e.ctx, auth.Admin, id)
	if err != nil {
		t.Fatal(err)
	}
	var backoff *apiv1.Event
	for i := range evs {
		if evs[i].Reason == "BackOff" {
			if backoff != nil {
				t.Fatalf("two BackOff events: %+v", evs)
			}
			backoff = &evs[i]
		}
	}
	if backoff == nil || backoff.Count != 5 || !backoff.FirstTime.Equal(first.Add(time.Second)) || !backoff.LastTime.Equal(first.Add(5*time.Second)) {
		t.Fatalf("the series: %+v", backoff)
	}
	for i := range MaxEventsPerObject + 50 {
		e.clock.Add(time.Second)
		e.svc.recordEvent(e.ctx, "ContainerGroup", id, "acme", apiv1.EventNormal, "Pulling", fmt.Sprintf("pulling image %d", i), "agent/h1")
	}
	evs, err = e.svc.ListEvents(e.ctx, auth.Admin, id)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != MaxEventsPerObject || evs[len(evs)-1].Message != fmt.Sprintf("pulling image %d", MaxEventsPerObject+49) {
		t.Fatalf("%d events kept (last %q), want the newest %d", len(evs), evs[len(evs)-1].Message, MaxEventsPerObject)
	}
}
