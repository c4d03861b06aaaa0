package scheduler

import (
	"errors"
	"strings"
	"testing"

	"github.com/eci-dev/eci/internal/sizes"
)

func size(cpu, mem float64) sizes.Size {
	return sizes.Size{MilliCPU: int64(cpu * 1000), MemoryMiB: int64(mem * 1024)}
}

func res(cpu, mem float64, pods int) Resources {
	return Resources{MilliCPU: int64(cpu * 1000), MemoryMiB: int64(mem * 1024), Pods: pods}
}

func snapshot() Snapshot {
	return Snapshot{
		Hosts: []Host{
			{Name: "a1", Zone: "zone-a", Allocatable: res(8, 32, 100), Allocated: res(6, 8, 3), Schedulable: true},
			{Name: "a2", Zone: "zone-a", Allocatable: res(8, 32, 100), Allocated: res(2, 8, 1), Schedulable: true},
			{Name: "b1", Zone: "zone-b", Allocatable: res(16, 64, 100), Schedulable: true},
			{Name: "b2", Zone: "zone-b", Allocatable: res(64, 256, 100), Schedulable: false},
		},
		VSwitches: []VSwitch{
			{ID: "vsw-a", Zone: "zone-a", FreeIPs: 10},
			{ID: "vsw-b", Zone: "zone-b", FreeIPs: 10},
		},
	}
}

func TestPlace(t *testing.T) {
	cases := []struct {
		name   string
		snap   func(*Snapshot)
		req    Request
		policy Policy
		want   Decision
		errHas []string
	}{
		{name: "spread picks the emptiest host of the first vSwitch",
			req: Request{Sizes: []sizes.Size{size(2, 4)}, VSwitchIDs: []string{"vsw-a"}, Ordered: true}, policy: Spread,
			want: Decision{Host: "a2", Zone: "zone-a", VSwitch: "vsw-a", Size: size(2, 4)}},
		{name: "binpack picks the fullest host that fits",
			req: Request{Sizes: []sizes.Size{size(2, 4)}, VSwitchIDs: []string{"vsw-a"}, Ordered: true}, policy: Binpack,
			want: Decision{Host: "a1", Zone: "zone-a", VSwitch: "vsw-a", Size: size(2, 4)}},
		{name: "ordered vSwitches: the second zone when the first has no room",
			req: Request{Sizes: []sizes.Size{size(8, 16)}, VSwitchIDs: []string{"vsw-a", "vsw-b"}, Ordered: true}, policy: Spread,
			want: Decision{Host: "b1", Zone: "zone-b", VSwitch: "vsw-b", Size: size(8, 16)}},
		{name: "fallback size when the first fits nowhere",
			req: Request{Sizes: []sizes.Size{size(32, 64), size(4, 8)}, VSwitchIDs: []string{"vsw-a"}, Ordered: true}, policy: Spread,
			want: Decision{Host: "a2", Zone: "zone-a", VSwitch: "vsw-a", Size: size(4, 8)}},
		{name: "vSwitch without free IP is skipped",
			snap: func(s *Snapshot) { s.VSwitches[0].FreeIPs = 0 },
			req:  Request{Sizes: []sizes.Size{size(1, 2)}, VSwitchIDs: []string{"vsw-a", "vsw-b"}, Ordered: true}, policy: Spread,
			want: Decision{Host: "b1", Zone: "zone-b", VSwitch: "vsw-b", Size: size(1, 2)}},
		{name: "pods capacity counts",
			snap: func(s *Snapshot) { s.Hosts[1].Allocatable.Pods = 1 },
			req:  Request{Sizes: []sizes.Size{size(1, 2)}, VSwitchIDs: []string{"vsw-a"}, Ordered: true}, policy: Spread,
			want: Decision{Host: "a1", Zone: "zone-a", VSwitch: "vsw-a", Size: size(1, 2)}},
		{name: "no capacity names the zone and what was missing",
			req: Request{Sizes: []sizes.Size{size(8, 16)}, VSwitchIDs: []string{"vsw-a"}, Ordered: true}, policy: Spread,
			errHas: []string{"no host in zone-a has 8 vCPU / 16 GiB free", "most free: 6 vCPU / 24 GiB"}},
		{name: "the group limit of a host counts and is named",
			snap: func(s *Snapshot) { s.Hosts[2].Allocatable.Pods = 0 },
			req:  Request{Sizes: []sizes.Size{size(1, 2)}, VSwitchIDs: []string{"vsw-b"}, Ordered: true}, policy: Spread,
			errHas: []string{"every host in zone-b with room for 1 vCPU / 2 GiB runs as many groups as it may"}},
		{name: "unschedulable hosts do not count",
			snap: func(s *Snapshot) { s.Hosts[2].Schedulable = false },
			req:  Request{Sizes: []sizes.Size{size(1, 2)}, VSwitchIDs: []string{"vsw-b"}, Ordered: true}, policy: Spread,
			errHas: []string{"no ready, schedulable host in zone-b"}},
		{name: "unknown vSwitch",
			req: Request{Sizes: []sizes.Size{size(1, 2)}, VSwitchIDs: []string{"vsw-x"}, Ordered: true}, policy: Spread,
			errHas: []string{"vSwitch vsw-x does not exist"}},
		{name: "GPU",
			req: Request{Sizes: []sizes.Size{size(1, 2)}, GPU: 1, VSwitchIDs: []string{"vsw-b"}, Ordered: true}, policy: Spread,
			errHas: []string{"1 GPU free"}},
		{name: "a runtime handler: only a host offering it",
			snap: func(s *Snapshot) { s.Hosts[0].RuntimeHandlers = []string{"runc", "kata"} },
			req:  Request{Sizes: []sizes.Size{size(1, 2)}, RuntimeHandler: "kata", VSwitchIDs: []string{"vsw-a"}, Ordered: true}, policy: Spread,
			want: Decision{Host: "a1", Zone: "zone-a", VSwitch: "vsw-a", Size: size(1, 2)}},
		{name: "a runtime handler no host offers is named",
			req: Request{Sizes: []sizes.Size{size(1, 2)}, RuntimeHandler: "kata", VSwitchIDs: []string{"vsw-a"}, Ordered: true}, policy: Spread,
			errHas: []string{`no ready host in zone-a offers runtime handler "kata"`}},
		{name: "no vSwitch at all",
			snap: func(s *Snapshot) { s.VSwitches = nil },
			req:  Request{Sizes: []sizes.Size{size(1, 2)}}, policy: Spread,
			errHas: []string{"no vSwitch is configured"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			snap := snapshot()
			if c.snap != nil {
				c.snap(&snap)
			}
			got, err := Place(snap, c.req, c.policy)
			if len(c.errHas) > 0 {
				var nc *NoCapacityError
				if !errors.As(err, &nc) {
					t.Fatalf("want NoCapacityError, got %v (%+v)", err, got)
				}
				for _, s := range c.errHas {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not say %q", err, s)
					}
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, c.want)
			}
		})
	}
}

// Random vSwitch order spreads groups over zones, and is the same for the
// same seed (so a decision can be reproduced).
func TestRandomVSwitchOrderSpreads(t *testing.T) {
	snap := snapshot()
	snap.Hosts[1].Allocated = Resources{}
	zones := map[string]int{}
	for seed := uint64(0); seed < 200; seed++ {
		d, err := Place(snap, Request{Sizes: []sizes.Size{size(1, 2)}, Seed: seed}, Spread)
		if err != nil {
			t.Fatal(err)
		}
		again, _ := Place(snap, Request{Sizes: []sizes.Size{size(1, 2)}, Seed: seed}, Spread)
		if again != d {
			t.Fatalf("seed %d gave %+v then %+v", seed, d, again)
		}
		zones[d.Zone]++
	}
	if zones["zone-a"] < 60 || zones["zone-b"] < 60 {
		t.Fatalf("200 random placements went %v: not spread", zones)
	}
}

// A host holding more of a group's images (by size) comes first, before a
// warm sandbox and the policy; a host that can't fit the group does not.
func TestImageLocality(t *testing.T) {
	snap := snapshot()
	snap.Hosts[0].Images = map[string]Image{"reg/app:v1": {Size: 100 << 20}, "reg/base:v1": {Size: 10 << 20}} // a1: the most of them
	snap.Hosts[1].Images = map[string]Image{"reg/base:v1": {Size: 10 << 20}}
	snap.Hosts[1].Warm = map[string]int{"vsw-a": 1}
	req := Request{Sizes: []sizes.Size{size(1, 2)}, VSwitchIDs: []string{"vsw-a"}, Warm: true, Images: []string{"reg/app:v1", "reg/base:v1"}}
	if d, err := Place(snap, req, Spread); err != nil || d.Host != "a1" {
		t.Fatalf("placed on %s (%v); want a1, which holds the most of the images", d.Host, err)
	}
	req.Sizes = []sizes.Size{size(4, 8)} // a1 has 2 vCPU free
	if d, err := Place(snap, req, Spread); err != nil || d.Host != "a2" {
		t.Fatalf("placed on %s (%v); want a2, the only one that fits", d.Host, err)
	}
	req.Sizes, req.Images = []sizes.Size{size(1, 2)}, []string{"reg/other:v1"}
	if d, err := Place(snap, req, Spread); err != nil || d.Host != "a2" {
		t.Fatalf("placed on %s (%v); want a2 (warm, then spread) when no host holds the images", d.Host, err)
	}
	// Another tenant's private copy counts for nothing.
	snap.Hosts[0].Images["reg/app:v1"] = Image{Size: 100 << 20, PrivateTo: []string{"acme"}}
	req.Images, req.Tenant = []string{"reg/app:v1", "reg/base:v1"}, "umbrella"
	if d, err := Place(snap, req, Spread); err != nil || d.Host != "a2" {
		t.Fatalf("placed on %s (%v); want a2: a1's copy is acme's", d.Host, err)
	}
	req.Tenant = "acme"
	if d, err := Place(snap, req, Spread); err != nil || d.Host != "a1" {
		t.Fatalf("placed on %s (%v); want a1, holding acme's copy", d.Host, err)
	}
}
