package control

import (
	"fmt"
	"testing"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/auth"
	"github.com/eci-dev/eci/internal/store"
)

// Ended groups stay an hour; then the newest 100 per tenant stay; ScheduleFailed
// ones stay a day. Live groups are never touched.
func TestRetentionOfEndedGroups(t *testing.T) {
	e := newEnv(t, false)
	e.vswitch(t, "vsw-a", "zone-a", "198.19.128.0/20")
	e.host(t, "h1", "zone-a", 1000000, 1<<24, 1000)
	place := func(g *apiv1.ContainerGroup) {
		t.Helper()
		st, err := e.svc.loadPlacementState(e.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.svc.placeOne(e.ctx, st, g, nil); err != nil {
			t.Fatal(err)
		}
	}
	var ended []string
	for i := 0; i < 105; i++ {
		g, _, err := e.svc.CreateGroup(e.ctx, auth.Admin, groupSpec(fmt.Sprintf("g%d", i), 1, 2))
		if err != nil {
			t.Fatal(err)
		}
		place(g)
		e.clock.Add(time.Second)
		if _, err := e.svc.ReportStatus(e.ctx, hostPrincipal("h1"), g.Metadata.ID, apiv1.StatusReport{State: apiv1.StateSucceeded}); err != nil {
			t.Fatal(err)
		}
		ended = append(ended, g.Metadata.ID)
	}
	failed := groupSpec("nofit", 1, 2)
	failed.Spec.GPU = 1 // no host has one
	failed.Spec.FailStrategy = apiv1.FailFast
	fg, _, _ := e.svc.CreateGroup(e.ctx, auth.Admin, failed)
	place(fg)
	liveG, _, _ := e.svc.CreateGroup(e.ctx, auth.Admin, groupSpec("live", 1, 2))

	count := func() int {
		items, _, _, err := e.svc.groups.List(e.ctx, store.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return len(items)
	}
	e.clock.Add(30 * time.Minute)
	if err := e.svc.CollectGarbage(e.ctx); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 107 {
		t.Fatalf("%d groups after 30 minutes, want all 107 (within the hour)", n)
	}
	e.clock.Add(time.Hour)
	if err := e.svc.CollectGarbage(e.ctx); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 102 {
		t.Fatalf("%d groups after 90 minutes, want 100 ended + ScheduleFailed + live", n)
	}
	for _, id := range ended[:5] {
		if _, err := e.svc.groups.Get(e.ctx, id); err == nil {
			t.Fatalf("oldest ended group %s kept", id)
		}
	}
	if _, err := e.svc.groups.Get(e.ctx, liveG.Metadata.ID); err != nil {
		t.Fatalf("live group removed: %v", err)
	}
	e.clock.Add(23 * time.Hour)
	if err := e.svc.CollectGarbage(e.ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.groups.Get(e.ctx, fg.Metadata.ID); err == nil {
		t.Fatal("ScheduleFailed group kept past a day")
	}
	evs, _ := e.svc.ListEvents(e.ctx, auth.Admin, ended[0])
	if len(evs) != 0 {
		t.Fatalf("%d events of a removed group kept", len(evs))
	}
}
