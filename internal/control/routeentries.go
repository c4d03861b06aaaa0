package control

import (
	"context"
	"fmt"
	"net/netip"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/auth"
	"github.com/eci-dev/eci/internal/errdefs"
)

// AddRouteEntry adds an entry to the default VPC's route table (admin
// only): its destination may hold no vSwitch of the default VPC (their
// instances are routed by the hosts).
func (s *Service) AddRouteEntry(ctx context.Context, p auth.Principal, r *apiv1.RouteEntry) (*apiv1.RouteEntry, error) {
	if err := p.Require("add route entries", apiv1.TokenAdmin); err != nil {
		return nil, err
	}
	if err := apiv1.ValidateRouteEntry(r); err != nil {
		return nil, fmt.Errorf("%w: %w", errdefs.ErrInvalidArgument, err)
	}
	dst := netip.MustParsePrefix(r.Spec.Destination).Masked()
	vsws, _, _, err := s.vsws.List(ctx, storeOpts(0, 0, ""))
	if err != nil {
		return nil, err
	}
	for _, v := range vsws {
		if vpcID(v) != apiv1.DefaultVPC {
			continue
		}
		if p, err := netip.ParsePrefix(v.Spec.CIDR); err == nil && p.Overlaps(dst) {
			return nil, fmt.Errorf("%w: %w", errdefs.ErrInvalidArgument, apiv1.FieldErrors{{Field: "spec.destination",
				Message: fmt.Sprintf("%s overlaps vSwitch %s (%s) of the default VPC; allowed: a network outside its vSwitches", dst, v.Metadata.ID, v.Spec.CIDR)}})
		}
	}
	if _, err := s.routes.Get(ctx, r.Metadata.Name); err == nil {
		return nil, fmt.Errorf("route entry %s exists: %w", r.Metadata.Name, errdefs.ErrAlreadyExists)
	} else if !errdefs.IsNotFound(err) {
		return nil, err
	}
	if why, err := s.routeEntryClash(ctx, dst); err != nil {
		return nil, err
	} else if why != "" {
		return nil, fmt.Errorf("%w: %w", errdefs.ErrInvalidArgument, apiv1.FieldErrors{{Field: "spec.destination",
			Message: fmt.Sprintf("%s overlaps %s; allowed: a network of no host, EIP or other route entry", dst, why)}})
	}
	obj := &apiv1.RouteEntry{
		Metadata: apiv1.ObjectMeta{ID: r.Metadata.Name, Name: r.Metadata.Name, CreatedAt: s.now()},
		Spec:     apiv1.RouteEntrySpec{Destination: dst.String(), NextHop: r.Spec.NextHop},
	}
	if err := s.routes.Create(ctx, obj, nil); err != nil {
		return nil, err
	}
	return obj, nil
}

// ListRouteEntries lists the default VPC's route table (the admin and the
// hosts).
func (s *Service) ListRouteEntries(ctx context.Context, p auth.Principal) ([]apiv1.RouteEntry, error) {
	if err := p.Require("list route entries", apiv1.TokenAdmin, apiv1.TokenHost); err != nil {
		return nil, err
	}
	items, _, _, err := s.routes.List(ctx, storeOpts(0, 0, ""))
	if err != nil {
		return nil, err
	}
	out := make([]apiv1.RouteEntry, 0, len(items))
	for _, r := range items {
		out = append(out, *r)
	}
	return out, nil
}

// DeleteRouteEntry removes a route entry (admin only).
func (s *Service) DeleteRouteEntry(ctx context.Context, p auth.Principal, id string) error {
	if err := p.Require("delete route entries", apiv1.TokenAdmin); err != nil {
		return err
	}
	r, err := s.routes.Get(ctx, id)
	if err != nil {
		return err
	}
	return s.routes.Delete(ctx, r)
}

// routeEntryOverlapping is the default VPC's route entry that overlaps
// prefix, nil when none does.
func (s *Service) routeEntryOverlapping(ctx context.Context, prefix netip.Prefix) (*apiv1.RouteEntry, error) {
	items, _, _, err := s.routes.List(ctx, storeOpts(0, 0, ""))
	if err != nil {
		return nil, err
	}
	for _, r := range items {
		if d, err := netip.ParsePrefix(r.Spec.Destination); err == nil && d.Overlaps(prefix) {
			return r, nil
		}
	}
	return nil, nil
}

// routeEntryClash names what a new entry's destination dst would take
// from the hosts: their own addresses, the EIP range, link-local,
// loopback or multicast addresses, or another entry's ("" when none).
func (s *Service) routeEntryClash(ctx context.Context, dst netip.Prefix) (string, error) {
	for _, special := range []string{"127.0.0.0/8", "169.254.0.0/16", "224.0.0.0/3"} {
		if netip.MustParsePrefix(special).Overlaps(dst) {
			return special, nil
		}
	}
	if r := s.opts.EIPRange; r.IsValid() && r.Overlaps(dst) {
		return "the EIP range " + r.String(), nil
	}
	hosts, _, _, err := s.hosts.List(ctx, storeOpts(0, 0, ""))
	if err != nil {
		return "", err
	}
	for _, h := range hosts {
		if a, err := netip.ParseAddr(h.Spec.TunnelIP); err == nil && dst.Contains(a) {
			return "host " + h.Metadata.Name + "'s address " + a.String(), nil
		}
	}
	if r, err := s.routeEntryOverlapping(ctx, dst); err != nil || r != nil {
		if r != nil {
			return "route entry " + r.Metadata.ID + " (" + r.Spec.Destination + ")", nil
		}
		return "", err
	}
	return "", nil
}
