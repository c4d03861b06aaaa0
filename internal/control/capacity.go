package control

import (
	"context"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/auth"
	"github.com/eci-dev/eci/internal/errdefs"
)

// Capacity sums what the schedulable hosts can hold and have free, with
// what the caller's tenant holds and may hold. A tenant learns the pool's
// totals and never a host's name; free minus its own use still moves with
// the other tenants' groups (docs/security.md).
func (s *Service) Capacity(ctx context.Context, p auth.Principal) (*apiv1.Capacity, error) {
	if err := p.Require("read the pool's capacity", apiv1.TokenAdmin, apiv1.TokenTenant); err != nil {
		return nil, err
	}
	hosts, _, _, err := s.hosts.List(ctx, storeOpts(0, 0, ""))
	if err != nil {
		return nil, err
	}
	usage, err := s.usageByHost(ctx)
	if err != nil {
		return nil, err
	}
	var out apiv1.Capacity
	for _, h := range hosts {
		if !h.Status.Ready || h.Spec.Unschedulable || h.Spec.Draining {
			continue
		}
		alloc, used := h.Spec.Allocatable, usage[h.Metadata.Name]
		free := apiv1.Resources{MilliCPU: max(alloc.MilliCPU-used.MilliCPU, 0), MemoryMiB: max(alloc.MemoryMiB-used.MemoryMiB, 0),
			GPU: max(alloc.GPU-used.GPU, 0), Pods: max(alloc.Pods-used.Pods, 0)}
		out.Pool = out.Pool.Add(alloc)
		out.Free = out.Free.Add(free)
		out.LargestFree = apiv1.Resources{MilliCPU: max(out.LargestFree.MilliCPU, free.MilliCPU), MemoryMiB: max(out.LargestFree.MemoryMiB, free.MemoryMiB),
			GPU: max(out.LargestFree.GPU, free.GPU), Pods: max(out.LargestFree.Pods, free.Pods)}
	}
	if p.IsAdmin() {
		for _, u := range usage {
			out.Used = out.Used.Add(u)
		}
		return &out, nil
	}
	if u, err := s.tusage.Get(ctx, p.Tenant); err == nil {
		out.Used = u.Used
	} else if !errdefs.IsNotFound(err) {
		return nil, err
	}
	if t, err := s.tenants.Get(ctx, p.Tenant); err == nil {
		out.Quota = t.Spec.Quota
	} else if !errdefs.IsNotFound(err) {
		return nil, err
	}
	return &out, nil
}
