package agent

import (
	"maps"
	"slices"
	"strconv"
	"sync"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/client"
)

// groupView is the server's groups on this host as the agent knows them:
// what the watch delivered, corrected by a fresh list after a fence
// (refresh). It answers whether a group is gone only when that knowledge is
// complete: the first list was replayed and no relist is under way.
type groupView struct {
	mu        sync.Mutex
	groups    map[string]*apiv1.ContainerGroup
	synced    bool            // the first list was replayed
	relisting bool            // a fresh list is being replayed
	seen      map[string]bool // groups replayed so far
	floor     string          // the version of refresh's list: older events add no group
}

func newGroupView() *groupView { return &groupView{groups: map[string]*apiv1.ContainerGroup{}} }

// get is group id and whether the view is complete, read together: a group
// missing from a complete view is gone. (Read apart, a reconcile could see
// "unknown" before the list replayed the group and "complete" after, and
// remove a running group's sandbox.)
func (v *groupView) get(id string) (g *apiv1.ContainerGroup, complete bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.groups[id], v.synced && !v.relisting
}

// all lists the groups of the view.
func (v *groupView) all() []*apiv1.ContainerGroup {
	v.mu.Lock()
	defer v.mu.Unlock()
	return slices.Collect(maps.Values(v.groups))
}

// complete lists the groups of the view and whether it holds every group
// of the server's (the first list was replayed; during a relist it holds
// what it had and what was replayed, nothing dropped), read together.
func (v *groupView) complete() ([]*apiv1.ContainerGroup, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return slices.Collect(maps.Values(v.groups)), v.synced
}

// ids lists the ids of the view's groups.
func (v *groupView) ids() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return slices.Collect(maps.Keys(v.groups))
}

// relist begins the replay of a fresh list: until relisted, a group not seen
// yet is not gone.
func (v *groupView) relist() {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.relisting, v.seen = true, map[string]bool{}
}

// relisted ends the replay: the groups not replayed are gone, and returned.
func (v *groupView) relisted() (gone []string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for id := range v.groups {
		if !v.seen[id] {
			delete(v.groups, id)
			gone = append(gone, id)
		}
	}
	v.relisting, v.seen = false, nil
	return gone
}

// markSynced says the first list was replayed.
func (v *groupView) markSynced() {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.synced = true
}

// apply takes one event of the watch.
func (v *groupView) apply(ev client.GroupEvent) {
	id := ev.Object.Metadata.ID
	v.mu.Lock()
	defer v.mu.Unlock()
	cur := v.groups[id]
	switch {
	case ev.Type == apiv1.Deleted:
		delete(v.groups, id)
	case cur == nil && v.floor != "" && !olderVersion(v.floor, ev.Object.Metadata.ResourceVersion):
		// Not newer than the list refresh read, which did not have it: a
		// group gone since.
	case cur != nil && olderVersion(ev.Object.Metadata.ResourceVersion, cur.Metadata.ResourceVersion):
		// An event older than the view (refresh read ahead): the group is
		// there all the same.
		v.see(id)
	default:
		v.groups[id] = ev.Object
		v.see(id)
	}
}

// see records a replayed group during a relist (v.mu held).
func (v *groupView) see(id string) {
	if v.relisting {
		v.seen[id] = true
	}
}

// refresh replaces the view with a fresh list of the server's (at version
// rv): newer versions replace older ones, groups the server no longer
// places here are dropped, and no event older than the list brings one
// back.
func (v *groupView) refresh(items []apiv1.ContainerGroup, rv string) {
	fresh := map[string]*apiv1.ContainerGroup{}
	for i := range items {
		fresh[items[i].Metadata.ID] = &items[i]
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.floor = rv
	for id := range fresh {
		v.see(id)
	}
	for id, cur := range v.groups {
		g, ok := fresh[id]
		switch {
		case !ok:
			delete(v.groups, id)
		case !olderVersion(g.Metadata.ResourceVersion, cur.Metadata.ResourceVersion):
			v.groups[id] = g
		}
	}
	for id, g := range fresh {
		if _, ok := v.groups[id]; !ok {
			v.groups[id] = g
		}
	}
}

// olderVersion tells whether resource version a is before b.
func olderVersion(a, b string) bool {
	x, err1 := strconv.ParseInt(a, 10, 64)
	y, err2 := strconv.ParseInt(b, 10, 64)
	return err1 == nil && err2 == nil && x < y
}
