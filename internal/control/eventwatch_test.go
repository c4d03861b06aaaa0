package control

import (
	"context"
	"testing"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/errdefs"
)

// A tenant's watch of events lists and streams those of its own groups
// (with their container); a series' next occurrence is MODIFIED with its
// count; hosts may not watch; an agent's event names only a container of
// a group.
func TestWatchEvents(t *testing.T) {
	e := newEnv(t, false)
	acme, other := tenantPrincipal("acme"), tenantPrincipal("other")
	mine, _, err := e.svc.CreateGroup(e.ctx, acme, groupSpec("mine", 1, 2))
	if err != nil {
		t.Fatal(err)
	}
	theirs, _, err := e.svc.CreateGroup(e.ctx, other, groupSpec("theirs", 1, 2))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.WatchEvents(e.ctx, hostPrincipal("h1"), ""); !errdefs.IsPermissionDenied(err) {
		t.Fatalf("a host's watch: want PermissionDenied, got %v", err)
	}
	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	w, err := e.svc.WatchEvents(ctx, acme, "")
	if err != nil {
		t.Fatal(err)
	}
	created := false
	for _, ev := range w.Initial {
		if ev.Object.ID != mine.Metadata.ID {
			t.Fatalf("acme's initial list has %+v", ev)
		}
		created = created || ev.Reason == "Created"
	}
	if !created {
		t.Fatalf("acme's initial list lacks its group's Created: %+v", w.Initial)
	}
	e.svc.recordContainerEvent(e.ctx, "ContainerGroup", theirs.Metadata.ID, "other", "app", apiv1.EventNormal, "Pulled", "theirs", "agent/h1")
	for range 2 {
		e.svc.recordContainerEvent(e.ctx, "ContainerGroup", mine.Metadata.ID, "acme", "app", apiv1.EventNormal, "Started", "Started container app", "agent/h1")
	}
	for i, want := range []struct {
		typ   apiv1.WatchEventType
		count int
	}{{apiv1.Added, 1}, {apiv1.Modified, 2}} {
		select {
		case ev := <-w.Events:
			if ev.Err != nil || ev.Type != want.typ || ev.Object.Object.ID != mine.Metadata.ID || ev.Object.Container != "app" || ev.Object.Count != want.count {
				t.Fatalf("event %d: %+v (%+v), want %s of mine's Started, count %d", i, ev, ev.Object, want.typ, want.count)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no event %d", i)
		}
	}
	bad := &apiv1.Event{Object: apiv1.ObjectReference{Kind: "Host", ID: "h1"}, Type: apiv1.EventNormal, Reason: "X", Container: "app"}
	if _, err := e.svc.AddEvent(e.ctx, hostPrincipal("h1"), bad); !errdefs.IsInvalid(err) {
		t.Fatalf("a host's event naming a container: want InvalidArgument, got %v", err)
	}
}
