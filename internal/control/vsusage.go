package control

import (
	"context"
	"fmt"
	"strconv"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/errdefs"
	"github.com/eci-dev/eci/internal/store"
)

// A tenant's virtual IPs are bounded together, not only one by one: their
// number (apiv1.MaxVirtualServices) and their backends
// (apiv1.MaxTenantBackends), counted in one record per tenant written in
// the same transaction as every virtual IP, so that concurrent writes can't
// pass the bounds.

// vsUsage counts a tenant's virtual IPs and their backends; its id is the
// tenant.
type vsUsage struct {
	Metadata apiv1.ObjectMeta `json:"metadata"`
	Services int              `json:"services"`
	Backends int              `json:"backends"`
}

func (u *vsUsage) Meta() *apiv1.ObjectMeta { return &u.Metadata }

func backendsOf(v *apiv1.VirtualService) int {
	if v == nil {
		return 0
	}
	n := 0
	for _, p := range v.Spec.Ports {
		n += len(p.Backends)
	}
	return n
}

// writeVirtualService replaces the virtual IP key of tenant with obj (nil:
// deletes it), its usage counted; ErrNotFound when a delete finds nothing.
// It retries when another write of the tenant's came between.
func (s *Service) writeVirtualService(ctx context.Context, tenant, key string, obj *apiv1.VirtualService) (int64, error) {
	for attempt := 0; ; attempt++ {
		rev, err := s.tryWriteVirtualService(ctx, tenant, key, obj)
		if err == nil || !errdefs.IsConflict(err) || attempt >= 20 {
			return rev, err
		}
	}
}

func (s *Service) tryWriteVirtualService(ctx context.Context, tenant, key string, obj *apiv1.VirtualService) (int64, error) {
	old, err := s.vsvcs.Get(ctx, key)
	if err != nil && !errdefs.IsNotFound(err) {
		return 0, fmt.Errorf("read virtual service %s: %w", key, err)
	}
	if old == nil && obj == nil {
		return 0, err // not found
	}
	usage, err := s.vsusage.Get(ctx, tenant)
	var conds []store.Cond
	switch {
	case errdefs.IsNotFound(err):
		// The tenant's first write since the record exists: it starts
		// from what the tenant holds (virtual IPs written before it).
		if usage, err = s.countVirtualServices(ctx, tenant); err != nil {
			return 0, err
		}
		conds = append(conds, s.vsusage.Absent(tenant))
	case err != nil:
		return 0, fmt.Errorf("read the virtual services' usage of tenant %s: %w", tenant, err)
	default:
		c, err := s.vsusage.Unchanged(usage)
		if err != nil {
			return 0, err
		}
		conds = append(conds, c)
	}
	if old == nil {
		conds = append(conds, s.vsvcs.Absent(key))
	} else {
		c, err := s.vsvcs.Unchanged(old)
		if err != nil {
			return 0, err
		}
		conds = append(conds, c)
	}
	more := backendsOf(obj) - backendsOf(old)
	usage.Backends = max(0, usage.Backends+more)
	switch {
	case old == nil:
		usage.Services++
	case obj == nil:
		usage.Services = max(0, usage.Services-1)
	}
	if obj != nil {
		// Only what adds is refused: a tenant over a bound may still shrink.
		if old == nil && usage.Services > apiv1.MaxVirtualServices || more > 0 && usage.Backends > apiv1.MaxTenantBackends {
			return 0, fmt.Errorf("tenant %s would have %d virtual IPs with %d backends; allowed: at most %d and %d: %w",
				tenant, usage.Services, usage.Backends, apiv1.MaxVirtualServices, apiv1.MaxTenantBackends, errdefs.ErrPermissionDenied)
		}
		if old != nil {
			obj.Metadata.CreatedAt = old.Metadata.CreatedAt
		}
	}
	usagePut, err := s.vsusage.PutOp(usage)
	if err != nil {
		return 0, err
	}
	ops := []store.Op{usagePut}
	if obj == nil {
		ops = append(ops, s.vsvcs.DeleteOp(key))
	} else {
		put, err := s.vsvcs.PutOp(obj)
		if err != nil {
			return 0, err
		}
		ops = append(ops, put)
	}
	rev, err := s.st.Commit(ctx, conds, ops)
	if err != nil {
		return 0, fmt.Errorf("virtual service %s: %w", key, err)
	}
	if obj != nil {
		obj.Metadata.ResourceVersion = strconv.FormatInt(rev, 10)
	}
	return rev, nil
}

// countVirtualServices is what tenant's stored virtual IPs hold.
func (s *Service) countVirtualServices(ctx context.Context, tenant string) (*vsUsage, error) {
	u := &vsUsage{Metadata: apiv1.ObjectMeta{ID: tenant, Name: tenant}}
	items, _, _, err := s.vsvcs.List(ctx, store.ListOptions{Prefix: tenant + "/"})
	if err != nil {
		return nil, fmt.Errorf("count the virtual services of tenant %s: %w", tenant, err)
	}
	for _, v := range items {
		u.Services++
		u.Backends += backendsOf(v)
	}
	return u, nil
}
