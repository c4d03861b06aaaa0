package control

import (
	"context"
	"strconv"
	"testing"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/auth"
	"github.com/eci-dev/eci/internal/errdefs"
)

// A tenant's watch lists and then streams only its own groups that match
// its filter, redacted, from the list's revision; a resourceVersion that is
// not a version is refused before anything is streamed.
func TestWatchGroups(t *testing.T) {
	e := newEnv(t, false)
	acme, other := tenantPrincipal("acme"), tenantPrincipal("other")
	create := func(p auth.Principal, name, tier string) *apiv1.ContainerGroup {
		t.Helper()
		spec := groupSpec(name, 1, 2)
		spec.Metadata.Labels = map[string]string{"tier": tier}
		spec.Spec.ImageRegistryCredentials = []apiv1.RegistryCredential{{Server: "registry.example.com", Username: "u", Password: "secret"}}
		g, _, err := e.svc.CreateGroup(e.ctx, p, spec)
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	first := create(acme, "first", "web")
	create(acme, "db", "db")
	create(other, "theirs", "web")

	if _, err := e.svc.WatchGroups(e.ctx, acme, GroupFilter{}, "not-a-version"); !errdefs.IsInvalid(err) {
		t.Fatalf("a resourceVersion that is not one: want InvalidArgument, got %v", err)
	}
	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	f := GroupFilter{Selector: []Requirement{{Key: "tier", Value: "web", Op: "="}}}
	w, err := e.svc.WatchGroups(ctx, acme, f, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(w.Initial) != 1 || w.Initial[0].Metadata.ID != first.Metadata.ID {
		t.Fatalf("initial list %v, want only %s", w.Initial, first.Metadata.ID)
	}
	if pw := w.Initial[0].Spec.ImageRegistryCredentials[0].Password; pw != "" {
		t.Fatalf("the initial list shows a registry password %q", pw)
	}
	create(other, "theirs-2", "web")
	create(acme, "db-2", "db")
	second := create(acme, "second", "web")
	select {
	case ev := <-w.Events:
		if ev.Err != nil || ev.Type != apiv1.Added || ev.Object.Metadata.ID != second.Metadata.ID {
			t.Fatalf("first event %+v, want ADDED %s (the other tenant's and the unmatched groups are not seen)", ev, second.Metadata.ID)
		}
		if ev.Object.Spec.ImageRegistryCredentials[0].Password != "" || ev.Revision <= w.Revision {
			t.Fatalf("event %+v: a registry password, or a revision not after the list's %d", ev, w.Revision)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no event after a matching create")
	}

	// From a resourceVersion: no list, the changes after it.
	w2, err := e.svc.WatchGroups(ctx, acme, f, strconv.FormatInt(w.Revision, 10))
	if err != nil || len(w2.Initial) != 0 || w2.Revision != w.Revision {
		t.Fatalf("watch from %d: %v, %d initial, revision %d", w.Revision, err, len(w2.Initial), w2.Revision)
	}
	select {
	case ev := <-w2.Events:
		if ev.Type != apiv1.Added || ev.Object.Metadata.ID != second.Metadata.ID {
			t.Fatalf("resumed watch's first event %+v, want ADDED %s", ev, second.Metadata.ID)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no event on the resumed watch")
	}
	cancel()
	for range w.Events { // closes when the context ends
	}
}
