package control

import (
	"context"
	"fmt"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/sizes"
)

// ownerName names the group that holds an address to a group of tenant: by
// id when it is the same tenant's, never another tenant's id.
func (s *Service) ownerName(ctx context.Context, owner, tenant string) string {
	if isWarmOwner(owner) {
		return "a host's warm pool (eci hosts warm-pool HOST 0 lets its addresses go)"
	}
	if g, err := s.groups.Get(ctx, owner); err == nil && g.Metadata.Tenant == tenant {
		return "group " + owner
	}
	return "a group of another tenant"
}

// unschedulable records why g waits, or fails it when its strategy or its
// pending deadline says so.
func (s *Service) unschedulable(ctx context.Context, g *apiv1.ContainerGroup, why string) error {
	maxPending := g.Spec.MaxPendingMinutes
	if maxPending == 0 {
		maxPending = DefaultMaxPendingMinutes
	}
	if g.Spec.FailStrategy == apiv1.FailFast || s.now().Sub(g.Metadata.CreatedAt) > time.Duration(maxPending)*time.Minute {
		return s.scheduleFailed(ctx, g, "NoCapacity", why)
	}
	if g.Status.Reason == "Unschedulable" && g.Status.Message == why {
		return nil
	}
	first := g.Status.Reason != "Unschedulable"
	_, err := s.transition(ctx, g.Metadata.ID, func(cur *apiv1.ContainerGroup) bool {
		if applyEvent(&cur.Status, evUnschedulable, "Unschedulable", why, s.now()) != nil {
			return false // no longer Scheduling
		}
		cur.Status.SchedulingAttempts++
		return true
	})
	if err == nil && first {
		s.recordEvent(ctx, "ContainerGroup", g.Metadata.ID, g.Metadata.Tenant, apiv1.EventWarning, "FailedScheduling", why+" (will retry)", "server")
	}
	return err
}

// scheduleFailed ends g in ScheduleFailed.
func (s *Service) scheduleFailed(ctx context.Context, g *apiv1.ContainerGroup, reason, why string) error {
	_, err := s.transition(ctx, g.Metadata.ID, func(cur *apiv1.ContainerGroup) bool {
		if applyEvent(&cur.Status, evScheduleFailed, reason, why, s.now()) != nil {
			return false // no longer Scheduling
		}
		cur.Status.SchedulingAttempts++
		return true
	})
	if err == nil {
		s.recordEvent(ctx, "ContainerGroup", g.Metadata.ID, g.Metadata.Tenant, apiv1.EventWarning, "ScheduleFailed", why, "server")
	}
	return err
}

// overQuota says how placing g at size would exceed its tenant's quota, or "".
func (st *placementState) overQuota(g *apiv1.ContainerGroup, size sizes.Size) string {
	t, ok := st.tenants[g.Metadata.Tenant]
	if !ok {
		return ""
	}
	q := t.Spec.Quota
	var used apiv1.Resources
	if u, ok := st.tusage[g.Metadata.Tenant]; ok {
		used = u.Used
	}
	name := g.Metadata.Tenant
	switch {
	case q.MilliCPU > 0 && used.MilliCPU+size.MilliCPU > q.MilliCPU:
		return fmt.Sprintf("quota of tenant %s exceeded: %g of %g vCPU in use, %s asked", name, float64(used.MilliCPU)/1000, float64(q.MilliCPU)/1000, size)
	case q.MemoryMiB > 0 && used.MemoryMiB+size.MemoryMiB > q.MemoryMiB:
		return fmt.Sprintf("quota of tenant %s exceeded: %g of %g GiB in use, %s asked", name, float64(used.MemoryMiB)/1024, float64(q.MemoryMiB)/1024, size)
	case q.GPU > 0 && used.GPU+g.Spec.GPU > q.GPU:
		return fmt.Sprintf("quota of tenant %s exceeded: %d of %d GPUs in use", name, used.GPU, q.GPU)
	case q.Groups > 0 && used.Pods+1 > q.Groups:
		return fmt.Sprintf("quota of tenant %s exceeded: %d of %d groups running", name, used.Pods, q.Groups)
	}
	return ""
}
