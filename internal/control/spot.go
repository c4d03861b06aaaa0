package control

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/log"
	"github.com/eci-dev/eci/internal/scheduler"
	"github.com/eci-dev/eci/internal/sizes"
)

// Spot instances (docs/spec.md section 5): a group with a spotStrategy is
// preemptible. When a pay-as-you-go group finds no capacity, and taking
// back spot instances of one host past their protected hours
// (spotDurationHours) would make room, those are told: their
// SpotReleaseAt is set a notice period ahead (Options.SpotNotice, about 3
// minutes) with a Warning Event SpotToBeReleased, and the monitor ends
// them Expired then (expireSpots); the pay-as-you-go group waits, saying
// so, and is placed once their capacity is free. The host taking the
// fewest is chosen, the newest of them first (the least work lost). A spot
// group never takes another's capacity. Nothing here names another
// tenant's group or a host.
//
// eci has no spot market: there is no price a SpotWithPriceLimit's limit
// could be under (billing, issue #19, brings prices), so it is taken back
// only for capacity, as SpotAsPriceGo.

// DefaultSpotNotice is how long before it ends a spot instance is told.
const DefaultSpotNotice = 3 * time.Minute

// preemptFor releases spot instances for g, a pay-as-you-go group req
// found no capacity for; it returns what g's status adds ("" when no spot
// instance can make room).
func (s *Service) preemptFor(ctx context.Context, st *placementState, g *apiv1.ContainerGroup, req scheduler.Request) string {
	if g.Spec.Spot() || !st.couldTake(g, req, s.now()) {
		return ""
	}
	spots, err := st.spotGroups(ctx, s)
	if err != nil {
		log.G(ctx).Warn("spot instances: list groups", "err", err)
		return ""
	}
	zones := map[string]bool{} // of its vSwitches with a free address
	for _, id := range req.VSwitchIDs {
		if v := st.vsws[id]; v != nil && st.alloc[id] != nil && st.alloc[id].Free() > 0 {
			zones[v.Spec.Zone] = true
		}
	}
	now := s.now()
	var best []*apiv1.ContainerGroup
	bestHost := ""
	for _, name := range slices.Sorted(maps.Keys(st.hosts)) {
		h := st.hosts[name]
		if len(spots[name]) == 0 || !zones[h.Spec.Zone] || !h.Status.Ready || h.Spec.Unschedulable || h.Spec.Draining ||
			(req.RuntimeHandler != "" && !slices.Contains(h.Spec.RuntimeHandlers, req.RuntimeHandler)) {
			continue
		}
		free := h.Spec.Allocatable
		if u := st.usage[name]; u != nil {
			free = free.Sub(u.Used)
		}
		var candidates []*apiv1.ContainerGroup
		releasing := false
		for _, sg := range spots[name] {
			switch {
			case sg.Status.SpotReleaseAt != nil:
				free, releasing = free.Add(sg.Held()), true
			case sg.Status.PendingAt != nil && !now.Before(sg.Status.PendingAt.Add(sg.Spec.SpotProtection())):
				candidates = append(candidates, sg)
			}
		}
		if releasing && fitsAny(free, req) {
			return "; " + spotWait + " being released for it"
		}
		if len(candidates) == 0 {
			continue
		}
		sort.Slice(candidates, func(i, j int) bool { return candidates[i].Status.PendingAt.After(*candidates[j].Status.PendingAt) })
		var take []*apiv1.ContainerGroup
		for _, sg := range candidates {
			if fitsAny(free, req) {
				break
			}
			take, free = append(take, sg), free.Add(sg.Held())
		}
		if len(take) > 0 && fitsAny(free, req) && (best == nil || len(take) < len(best)) {
			best, bestHost = take, name
		}
	}
	if best == nil {
		return ""
	}
	at := now.Add(s.opts.SpotNotice)
	for _, sg := range best {
		s.noticeSpot(ctx, sg, at)
	}
	log.G(ctx).Info("spot instances released for a pay-as-you-go group", "group", g.Metadata.ID, "host", bestHost, "spot", len(best), "at", at)
	return "; " + spotWait + " released for it at " + at.UTC().Format(time.RFC3339)
}

// spotWait begins what a group waiting for spot instances' capacity says:
// the monitor reads it (waitingPaid).
const spotWait = "spot instances are"

// couldTake tells whether g could be placed on capacity a spot instance
// gives back: its tenant's quota leaves room for one of its sizes (a
// group that could never run takes nothing from anyone).
func (st *placementState) couldTake(g *apiv1.ContainerGroup, req scheduler.Request, now time.Time) bool {
	if g.Spec.FailStrategy == apiv1.FailFast || pendingOverdue(g, now) {
		return false // it fails now rather than wait
	}
	for _, size := range req.Sizes {
		if st.overQuota(g, size) == "" {
			return true
		}
	}
	return false
}

// waitingPaid tells whether a pay-as-you-go group still waits for spot
// instances' capacity among groups (its status says so: spotWait): else a
// spot instance's release is called off.
func waitingPaid(groups []*apiv1.ContainerGroup) bool {
	for _, g := range groups {
		if !g.Spec.Spot() && g.Status.State == apiv1.StateScheduling && g.Metadata.DeletionRequestedAt == nil &&
			strings.Contains(g.Status.Message, spotWait) {
			return true
		}
	}
	return false
}

// keepSpot calls off spot group g's release: the group it was for is
// gone or placed (the monitor).
func (s *Service) keepSpot(ctx context.Context, g *apiv1.ContainerGroup) {
	changed := false
	_, err := s.transition(ctx, g.Metadata.ID, func(cur *apiv1.ContainerGroup) bool {
		if cur.Status.SpotReleaseAt == nil || cur.Status.State.Terminal() {
			return false
		}
		cur.Status.SpotReleaseAt, changed = nil, true
		return true
	})
	if err != nil || !changed {
		if err != nil {
			log.G(ctx).Warn("spot instance: call off its release", "group", g.Metadata.ID, "err", err)
		}
		return
	}
	s.recordEvent(ctx, "ContainerGroup", g.Metadata.ID, g.Metadata.Tenant, apiv1.EventNormal, "SpotReleaseCancelled",
		"the spot instance is not released: no pay-as-you-go instance waits for its capacity any more", "server")
}

// noticeSpot tells spot group sg it ends at at (and marks the pass's copy).
func (s *Service) noticeSpot(ctx context.Context, sg *apiv1.ContainerGroup, at time.Time) {
	_, err := s.transition(ctx, sg.Metadata.ID, func(cur *apiv1.ContainerGroup) bool {
		if cur.Status.State.Terminal() || cur.Status.SpotReleaseAt != nil || !cur.Spec.Spot() {
			return false
		}
		cur.Status.SpotReleaseAt = &at
		return true
	})
	if err != nil {
		log.G(ctx).Warn("spot instance: set its release", "group", sg.Metadata.ID, "err", err)
		return
	}
	sg.Status.SpotReleaseAt = &at
	s.recordEvent(ctx, "ContainerGroup", sg.Metadata.ID, sg.Metadata.Tenant, apiv1.EventWarning, "SpotToBeReleased",
		fmt.Sprintf("the spot instance is released at %s: its capacity goes to a pay-as-you-go instance", at.UTC().Format(time.RFC3339)), "server")
}

// expireSpot ends a spot group whose release time came (the monitor),
// unless no pay-as-you-go group waits any more (paid): then its release
// is called off.
func (s *Service) expireSpot(ctx context.Context, g *apiv1.ContainerGroup, now time.Time, paid bool) bool {
	at := g.Status.SpotReleaseAt
	if at == nil || now.Before(*at) || g.Status.State.Terminal() || g.Metadata.DeletionRequestedAt != nil {
		return false
	}
	if !paid {
		s.keepSpot(ctx, g)
		return true
	}
	s.failGroup(ctx, g, evSpotReleased, "the spot instance's capacity was taken back for a pay-as-you-go instance")
	return true
}

// spotGroups are the live spot groups by host, read once per placement
// pass.
func (st *placementState) spotGroups(ctx context.Context, s *Service) (map[string][]*apiv1.ContainerGroup, error) {
	if st.spot != nil {
		return st.spot, nil
	}
	groups, _, _, err := s.groups.List(ctx, storeOpts(0, 0, ""))
	if err != nil {
		return nil, err
	}
	st.spot = map[string][]*apiv1.ContainerGroup{}
	for _, g := range groups {
		if g.Spec.Spot() && g.Status.Allocated && !g.Status.State.Terminal() && g.Metadata.DeletionRequestedAt == nil {
			st.spot[g.Status.Host] = append(st.spot[g.Status.Host], g)
		}
	}
	return st.spot, nil
}

// fitsAny: one of req's sizes, with its GPUs and one more group, fits free.
func fitsAny(free apiv1.Resources, req scheduler.Request) bool {
	return slices.ContainsFunc(req.Sizes, func(size sizes.Size) bool { return resources(free).Fits(size, req.GPU) })
}
