package control

import (
	"context"
	"fmt"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/addrpool"
	"github.com/eci-dev/eci/internal/auth"
	"github.com/eci-dev/eci/internal/errdefs"
	"github.com/eci-dev/eci/internal/store"
)

// CreateVSwitch adds a subnet groups get their IPs from (admin only), and
// their IPv6 addresses with spec.ipv6Cidr (ipv6.go).
func (s *Service) CreateVSwitch(ctx context.Context, p auth.Principal, v *apiv1.VSwitch) (*apiv1.VSwitch, error) {
	if err := p.Require("create vSwitches", apiv1.TokenAdmin); err != nil {
		return nil, err
	}
	if err := apiv1.ValidateVSwitch(v); err != nil {
		return nil, fmt.Errorf("%w: %w", errdefs.ErrInvalidArgument, err)
	}
	pool, err := addrpool.NewPool(v.Spec.CIDR, v.Spec.Gateway)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errdefs.ErrInvalidArgument, apiv1.FieldErrors{{Field: "spec.cidr", Message: err.Error()}})
	}
	existing, _, _, err := s.vsws.List(ctx, storeOpts(0, 0, ""))
	if err != nil {
		return nil, err
	}
	for _, other := range existing {
		if other.Metadata.ID == v.Metadata.Name {
			return nil, fmt.Errorf("vSwitch %s exists (%s in %s): %w", other.Metadata.ID, other.Spec.CIDR, other.Spec.Zone, errdefs.ErrAlreadyExists)
		}
	}
	if t := v.Metadata.Tenant; t != "" {
		if err := s.checkTenant(ctx, t, "a tenant's name (eci token create --tenant makes one), or none for a vSwitch every tenant may use"); err != nil {
			return nil, err
		}
	}
	vpc, conds, ops, err := s.vpcOfNewVSwitch(ctx, v, pool.Prefix, existing)
	if err != nil {
		return nil, err
	}
	pool6, err := newVSwitchIPv6(v, pool, vpc.Metadata.ID, existing)
	if err != nil {
		return nil, err
	}
	if vpc.Metadata.ID == apiv1.DefaultVPC {
		if r, err := s.routeEntryOverlapping(ctx, pool.Prefix); err != nil {
			return nil, err
		} else if r != nil {
			return nil, fmt.Errorf("%w: %w", errdefs.ErrInvalidArgument, apiv1.FieldErrors{{Field: "spec.cidr",
				Message: fmt.Sprintf("%s overlaps route entry %s (%s) of the default VPC; allowed: a CIDR outside its route entries", pool.Prefix, r.Metadata.ID, r.Spec.Destination)}})
		}
	}
	obj := &apiv1.VSwitch{
		Metadata: apiv1.ObjectMeta{ID: v.Metadata.Name, Name: v.Metadata.Name, Tenant: v.Metadata.Tenant, Labels: v.Metadata.Labels, CreatedAt: s.now()},
		Spec:     apiv1.VSwitchSpec{Zone: v.Spec.Zone, CIDR: pool.Prefix.String(), Gateway: pool.Gateway.String(), VPCID: v.Spec.VPCID, NATGateway: v.Spec.NATGateway},
		Status:   apiv1.VSwitchStatus{Total: pool.Size(), VNI: vpc.Status.VNI},
	}
	if pool6 != nil {
		obj.Spec.IPv6CIDR, obj.Spec.IPv6Gateway = pool6.Prefix.String(), pool6.Gateway.String()
	}
	if obj.Spec.VPCID == apiv1.DefaultVPC {
		obj.Spec.VPCID = ""
	}
	if err := s.vsws.Create(ctx, obj, conds, ops...); err != nil {
		if errdefs.IsConflict(err) && len(conds) > 0 {
			return nil, fmt.Errorf("VPC %s changed meanwhile; try again: %w", vpc.Metadata.ID, err)
		}
		return nil, err
	}
	s.wake()
	return obj, nil
}

// A vSwitch is scoped to a tenant (metadata.tenant): only that tenant's
// groups get addresses from it and only that tenant (with the admin and the
// hosts) sees it; a vSwitch without a tenant is shared by all. Another
// tenant's vSwitch is NotFound, never "not yours".

// usableBy tells whether tenant's groups may use v.
func usableBy(v *apiv1.VSwitch, tenant string) bool {
	return v.Metadata.Tenant == "" || v.Metadata.Tenant == tenant
}

// visibleTo tells whether p may read v.
func visibleTo(v *apiv1.VSwitch, p auth.Principal) bool {
	return p.Kind != apiv1.TokenTenant || usableBy(v, p.Tenant)
}

// GetVSwitch reads a vSwitch p may see, with its address counts.
func (s *Service) GetVSwitch(ctx context.Context, p auth.Principal, id string) (*apiv1.VSwitch, error) {
	v, err := s.vsws.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if !visibleTo(v, p) {
		return nil, fmt.Errorf("vswitches %q: %w", id, errdefs.ErrNotFound)
	}
	return v, s.countIPs(ctx, v)
}

// ListVSwitches lists the vSwitches p may see with their address counts.
func (s *Service) ListVSwitches(ctx context.Context, p auth.Principal) ([]apiv1.VSwitch, error) {
	items, _, _, err := s.vsws.List(ctx, storeOpts(0, 0, ""))
	if err != nil {
		return nil, err
	}
	out := make([]apiv1.VSwitch, 0, len(items))
	for _, v := range items {
		if !visibleTo(v, p) {
			continue
		}
		if err := s.countIPs(ctx, v); err != nil {
			return nil, err
		}
		out = append(out, *v)
	}
	return out, nil
}

func (s *Service) countIPs(ctx context.Context, v *apiv1.VSwitch) error {
	pool, err := addrpool.NewPool(v.Spec.CIDR, v.Spec.Gateway)
	if err != nil {
		return err
	}
	n, err := s.ips.Count(ctx, v.Metadata.ID+"_")
	if err != nil {
		return fmt.Errorf("count addresses of %s: %w", v.Metadata.ID, err)
	}
	v.Status.Total, v.Status.Allocated = pool.Size(), int(n)
	return nil
}

// DeleteVSwitch removes a vSwitch no group has an address of (admin only).
func (s *Service) DeleteVSwitch(ctx context.Context, p auth.Principal, id string) error {
	if err := p.Require("delete vSwitches", apiv1.TokenAdmin); err != nil {
		return err
	}
	v, err := s.GetVSwitch(ctx, p, id)
	if err != nil {
		return err
	}
	if v.Status.Allocated > 0 {
		return fmt.Errorf("vSwitch %s still has %d addresses in use: %w", id, v.Status.Allocated, errdefs.ErrConflict)
	}
	if v.Spec.VPCID == "" {
		return s.vsws.Delete(ctx, v)
	}
	for attempt := 0; attempt < 20; attempt++ {
		vpc, err := s.vpcs.Get(ctx, v.Spec.VPCID)
		if errdefs.IsNotFound(err) {
			return s.vsws.Delete(ctx, v)
		}
		if err != nil {
			return err
		}
		cond, err := s.vpcs.Unchanged(vpc)
		if err != nil {
			return err
		}
		vpc.Status.VSwitches = max(0, vpc.Status.VSwitches-1)
		op, err := s.vpcs.PutOp(vpc)
		if err != nil {
			return err
		}
		if _, err := s.st.Commit(ctx, []store.Cond{cond, s.vsws.Present(v.Metadata.ID)}, []store.Op{op, s.vsws.DeleteOp(v.Metadata.ID)}); !errdefs.IsConflict(err) {
			return err
		}
	}
	return fmt.Errorf("delete vSwitch %s: too many concurrent changes: %w", id, errdefs.ErrConflict)
}
