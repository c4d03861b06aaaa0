package control

import (
	"fmt"
	"strings"
	"testing"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/auth"
	"github.com/eci-dev/eci/internal/store"
)

// A batch whose condition fails (here: another writer changed the host's
// usage after the pass read it) writes nothing; its groups are placed one
// by one, and the usage counts each once.
func TestConflictingBatchPlacedOneByOne(t *testing.T) {
	e := newEnv(t, false)
	e.vswitch(t, "vsw-a", "zone-a", "198.19.128.0/24")
	e.host(t, "h1", "zone-a", 16000, 65536, 50)
	var waiting []*apiv1.ContainerGroup
	for i := range 3 {
		g, _, err := e.svc.CreateGroup(e.ctx, auth.Admin, groupSpec(fmt.Sprintf("g%d", i), 1, 2))
		if err != nil {
			t.Fatal(err)
		}
		waiting = append(waiting, g)
	}
	// One placed first, so that the host has a usage record to change.
	if err := e.svc.place(e.ctx, waiting[:1]); err != nil {
		t.Fatal(err)
	}
	st, err := e.svc.loadPlacementState(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	b := newPlaceBatch()
	for _, g := range waiting[1:] {
		if g, err = e.svc.groups.Get(e.ctx, g.Metadata.ID); err != nil {
			t.Fatal(err)
		}
		if err := e.svc.placeOne(e.ctx, st, g, b); err != nil {
			t.Fatal(err)
		}
	}
	if len(b.groups) != 2 {
		t.Fatalf("the batch holds %d placements, want 2", len(b.groups))
	}
	// Another writer: the host's usage record changes (same value).
	if _, err := e.svc.usage.Mutate(e.ctx, "h1", func(*usageRecord) error { return nil }); err != nil {
		t.Fatal(err)
	}
	before := e.svc.batchFallbacks.Load()
	if _, err := e.svc.flushBatch(e.ctx, st, b); err != nil {
		t.Fatal(err)
	}
	if e.svc.batchFallbacks.Load() != before+1 {
		t.Fatal("the batch was committed: its condition on the host's usage did not hold")
	}
	for _, g := range waiting {
		e.waitState(t, g.Metadata.ID, apiv1.StatePending)
	}
	if u := e.usageOf(t, "h1"); u.Pods != 3 || u.MilliCPU != 3000 {
		t.Errorf("host usage %+v, want 3 groups of 1 vCPU", u)
	}
	if n := e.ipCount(t); n != 3 {
		t.Errorf("%d IP records, want 3", n)
	}
}

// Large groups (up to 1 MiB each) never make a batch the store refuses:
// a batch is bounded in bytes, and a placement too large to join one is
// committed alone. Three groups of 600 KiB and a small one are all placed
// in one pass (etcd's request limit is 1.5 MiB).
func TestLargeGroupsArePlaced(t *testing.T) {
	e := newEnv(t, false)
	e.vswitch(t, "vsw-a", "zone-a", "198.19.128.0/24")
	e.host(t, "h1", "zone-a", 16000, 65536, 50)
	var ids []string
	for i := range 4 {
		g := groupSpec(fmt.Sprintf("g%d", i), 1, 2)
		if i < 3 {
			g.Spec.Containers[0].Env = []apiv1.EnvVar{{Name: "BIG", Value: strings.Repeat("x", 600<<10)}}
		}
		out, _, err := e.svc.CreateGroup(e.ctx, auth.Admin, g)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, out.Metadata.ID)
	}
	if err := e.svc.placeAll(e.ctx); err != nil {
		t.Fatal(err)
	}
	groups, _, _, err := e.svc.groups.List(e.ctx, store.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range groups {
		if g.Status.State != apiv1.StatePending {
			t.Errorf("group %s: %s %q after one pass, want Pending", g.Metadata.Name, g.Status.State, g.Status.Message)
		}
	}
	if len(groups) != len(ids) {
		t.Fatalf("%d groups, want %d", len(groups), len(ids))
	}
	if n := e.svc.batchFallbacks.Load(); n != 0 {
		t.Errorf("%d batches were not committed (too large for the store), want none", n)
	}
}
