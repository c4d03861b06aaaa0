package control

import (
	"slices"
	"strings"
	"testing"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/auth"
	"github.com/eci-dev/eci/internal/errdefs"
)

// A host's warm pool: the server reserves its addresses (given to no
// other group), a placement prefers a host with a ready sandbox and gives
// the group its address, the pool is refilled on another, and an
// operator's size replaces the agent's.
func TestWarmPoolAddresses(t *testing.T) {
	e := newEnv(t, true)
	e.vswitch(t, "vsw-a", "zone-a", "198.18.7.0/24")
	e.host(t, "big", "zone-a", 64000, 131072, 100) // no pool, most free: spread would pick it
	pooled := &apiv1.Host{Metadata: apiv1.ObjectMeta{Name: "pooled"}, Spec: apiv1.HostSpec{Zone: "zone-a",
		Capacity: apiv1.Resources{MilliCPU: 8000, MemoryMiB: 16384, Pods: 100}, Allocatable: apiv1.Resources{MilliCPU: 8000, MemoryMiB: 16384, Pods: 100},
		WarmPool: &apiv1.WarmPoolSpec{Size: 3}}}
	if _, err := e.svc.RegisterHost(e.ctx, hostPrincipal("pooled"), pooled); err != nil {
		t.Fatal(err)
	}
	sync := func(ready ...apiv1.WarmAddress) []apiv1.WarmAddress {
		t.Helper()
		out, err := e.svc.SyncWarmPool(e.ctx, hostPrincipal("pooled"), "pooled", apiv1.WarmPoolSync{Ready: ready})
		if err != nil {
			t.Fatal(err)
		}
		return out.Reserved
	}
	reserved := sync()
	if len(reserved) != 3 || !slices.Equal(sync(), reserved) {
		t.Fatalf("reserved %v, then %v: want the same 3", reserved, sync())
	}
	if _, err := e.svc.SyncWarmPool(e.ctx, hostPrincipal("big"), "pooled", apiv1.WarmPoolSync{}); !errdefs.IsPermissionDenied(err) {
		t.Fatalf("another host's token synced the pool: %v", err)
	}

	// No sandbox is ready yet: a group goes where the policy says, on an
	// address the pool does not hold.
	first := e.create(t, groupSpec("first", 1, 2))
	g := e.waitState(t, first, apiv1.StatePending)
	if g.Status.Host != "big" || slices.ContainsFunc(reserved, func(a apiv1.WarmAddress) bool { return a.IP == g.Status.IP }) {
		t.Fatalf("with no ready sandbox the group went to %s at %s (reserved %v)", g.Status.Host, g.Status.IP, reserved)
	}

	// Two are ready: the next group takes one, on the host that has it.
	sync(reserved[0], reserved[1])
	second := e.create(t, groupSpec("second", 1, 2))
	g = e.waitState(t, second, apiv1.StatePending)
	if g.Status.Host != "pooled" || (g.Status.IP != reserved[0].IP && g.Status.IP != reserved[1].IP) {
		t.Fatalf("the group went to %s at %s; ready were %v", g.Status.Host, g.Status.IP, reserved[:2])
	}
	refilled := sync()
	if len(refilled) != 3 || slices.ContainsFunc(refilled, func(a apiv1.WarmAddress) bool { return a.IP == g.Status.IP }) {
		t.Fatalf("after the group took %s the pool holds %v: want 3 others", g.Status.IP, refilled)
	}

	// A group that needs its own sandbox takes none.
	own := groupSpec("own", 1, 2)
	own.Spec.ShareProcessNamespace = true
	other := slices.DeleteFunc(slices.Clone(refilled), func(a apiv1.WarmAddress) bool { return a.IP == g.Status.IP })
	sync(other...)
	ownID := e.create(t, own)
	if og := e.waitState(t, ownID, apiv1.StatePending); slices.ContainsFunc(refilled, func(a apiv1.WarmAddress) bool { return a.IP == og.Status.IP }) {
		t.Fatalf("a group with shareProcessNamespace took the pool's address %s", og.Status.IP)
	}

	// A group may not ask for a reserved address: it would take a host's
	// sandbox away (a tenant could empty every pool).
	asks := groupSpec("asks", 1, 2)
	asks.Spec.PrivateIPAddress = other[0].IP
	if _, _, err := e.svc.CreateGroup(e.ctx, auth.Admin, asks); !errdefs.IsConflict(err) || !strings.Contains(err.Error(), "warm pool") {
		t.Fatalf("a group asking for the pool's address %s: %v", other[0].IP, err)
	}
	if got := sync(); !slices.Contains(got, other[0]) {
		t.Fatalf("the pool let %s go: %v", other[0].IP, got)
	}

	// The operator's size replaces the agent's; bad ones are refused.
	if _, err := e.svc.UpdateHost(e.ctx, auth.Admin, "pooled", apiv1.HostUpdate{WarmPoolTarget: ptr(apiv1.MaxWarmPoolSize + 1)}); !errdefs.IsInvalid(err) || !strings.Contains(err.Error(), "warmPoolTarget") {
		t.Fatalf("a pool of %d: %v", apiv1.MaxWarmPoolSize+1, err)
	}
	if _, err := e.svc.UpdateHost(e.ctx, auth.Admin, "pooled", apiv1.HostUpdate{WarmPoolTarget: ptr(1)}); err != nil {
		t.Fatal(err)
	}
	if got := sync(); len(got) != 1 {
		t.Fatalf("with the operator's size 1 the pool holds %v", got)
	}
	if _, err := e.svc.RegisterHost(e.ctx, hostPrincipal("pooled"), pooled); err != nil {
		t.Fatal(err)
	}
	if got := sync(); len(got) != 1 {
		t.Fatalf("the agent registered again; the pool holds %v, want the operator's 1", got)
	}
}

func ptr[T any](v T) *T { return &v }
