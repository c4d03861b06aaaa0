package control

import (
	"context"
	"sort"
	"strings"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/log"
)

// Retention of ended groups and of events (docs/spec.md section 5): a terminated
// group's record stays at least RetainEnded (1 h); past that only the newest
// KeepEnded (100) per tenant stay. ScheduleFailed records stay RetainFailed
// (24 h). Events of objects that are gone go after RetainEnded too.
const (
	RetainEnded  = time.Hour
	KeepEnded    = 100
	RetainFailed = 24 * time.Hour
)

// CollectGarbage removes ended groups and old events past their retention.
func (s *Service) CollectGarbage(ctx context.Context) error {
	now := s.now()
	groups, _, _, err := s.groups.List(ctx, storeOpts(0, 0, ""))
	if err != nil {
		return err
	}
	live := map[string]bool{}
	ended := map[string][]*apiv1.ContainerGroup{}
	for _, g := range groups {
		live[g.Metadata.ID] = true
		if !g.Status.State.Terminal() || g.Status.Allocated {
			continue
		}
		ended[g.Metadata.Tenant] = append(ended[g.Metadata.Tenant], g)
	}
	removed := 0
	for _, list := range ended {
		sort.Slice(list, func(i, j int) bool { return finished(list[i]).After(finished(list[j])) })
		rank := 0
		for _, g := range list {
			age := now.Sub(finished(g))
			var keep bool
			if g.Status.State == apiv1.StateScheduleFailed {
				keep = age < RetainFailed
			} else {
				keep = age < RetainEnded || rank < KeepEnded
				rank++
			}
			if keep {
				continue
			}
			if err := s.removeRecord(ctx, g); err != nil {
				log.G(ctx).Warn("remove an ended group", "group", g.Metadata.ID, "err", err)
				continue
			}
			delete(live, g.Metadata.ID)
			removed++
		}
	}
	events, _, _, err := s.events.List(ctx, storeOpts(0, 0, ""))
	if err != nil {
		return err
	}
	for _, ev := range events {
		if ev.Object.Kind == "ContainerGroup" && !live[ev.Object.ID] && now.Sub(ev.LastTime) > RetainEnded {
			if err := s.events.Delete(ctx, ev); err != nil {
				log.G(ctx).Warn("remove an old event", "event", ev.Metadata.ID, "err", err)
			}
		}
		if (ev.Object.Kind == "Host" && !strings.HasPrefix(ev.Reason, "Registered") || ev.Object.Kind == "Tenant") && now.Sub(ev.LastTime) > RetainFailed {
			_ = s.events.Delete(ctx, ev)
		}
	}
	if removed > 0 {
		log.G(ctx).Info("removed ended groups past their retention", "count", removed)
	}
	s.startUsagePass(ctx) // metering.go: in a goroutine of its own
	s.collectSessions(ctx)
	if err := s.closeSilentVNodes(ctx, now); err != nil {
		log.G(ctx).Warn("close the intervals of silent virtual nodes", "err", err)
	}
	return nil
}

func finished(g *apiv1.ContainerGroup) time.Time {
	if g.Status.FinishedAt != nil {
		return *g.Status.FinishedAt
	}
	return g.Metadata.CreatedAt
}
