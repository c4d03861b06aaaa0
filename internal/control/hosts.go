package control

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/auth"
	"github.com/eci-dev/eci/internal/errdefs"
)

func (s *Service) canSeeHost(p auth.Principal, name string) error {
	if p.IsAdmin() || (p.Kind == apiv1.TokenHost && p.Host == name) {
		return nil
	}
	return fmt.Errorf("%s may not read host %s: %w", p, name, errdefs.ErrPermissionDenied)
}

// RegisterHost records (or refreshes) a host as its agent describes it. What
// operators set (unschedulable, draining) is kept.
func (s *Service) RegisterHost(ctx context.Context, p auth.Principal, h *apiv1.Host) (*apiv1.Host, error) {
	if err := s.canSeeHost(p, h.Metadata.Name); err != nil {
		return nil, err
	}
	if err := apiv1.ValidateHost(h); err != nil {
		return nil, fmt.Errorf("%w: %w", errdefs.ErrInvalidArgument, err)
	}
	if err := s.checkTunnelIP(ctx, h); err != nil {
		return nil, err
	}
	now := s.now()
	name := h.Metadata.Name
	for attempt := 0; attempt < 20; attempt++ {
		cur, err := s.hosts.Get(ctx, name)
		switch {
		case errdefs.IsNotFound(err):
			obj := &apiv1.Host{
				Metadata: apiv1.ObjectMeta{ID: name, Name: name, Labels: h.Metadata.Labels, CreatedAt: now},
				Spec:     h.Spec,
				Status:   apiv1.HostStatus{Ready: true, LastHeartbeat: now},
			}
			err = s.hosts.Create(ctx, obj, nil)
			if err == nil {
				s.recordEvent(ctx, "Host", name, "", apiv1.EventNormal, "Registered", fmt.Sprintf("host %s in %s registered", name, h.Spec.Zone), "server")
				s.wake()
				return s.withUsage(ctx, obj)
			}
		case err == nil:
			spec := h.Spec
			spec.Unschedulable, spec.Draining, spec.WarmPoolTarget = cur.Spec.Unschedulable, cur.Spec.Draining, cur.Spec.WarmPoolTarget
			cur.Spec, cur.Metadata.Labels = spec, h.Metadata.Labels
			wasReady := cur.Status.Ready
			cur.Status.Ready, cur.Status.LastHeartbeat = true, now
			err = s.hosts.Update(ctx, cur, nil)
			if err == nil {
				if !wasReady {
					s.recordEvent(ctx, "Host", name, "", apiv1.EventNormal, "HostReady", "agent registered again", "server")
				}
				s.wake()
				return s.withUsage(ctx, cur)
			}
		}
		if !errdefs.IsConflict(err) && !errdefs.IsAlreadyExists(err) {
			return nil, err
		}
	}
	return nil, fmt.Errorf("register host %s: too many concurrent changes: %w", name, errdefs.ErrConflict)
}

// Heartbeat renews a host's lease.
func (s *Service) Heartbeat(ctx context.Context, p auth.Principal, name string) (*apiv1.Host, error) {
	if err := s.canSeeHost(p, name); err != nil {
		return nil, err
	}
	wasReady := true
	h, err := s.hosts.Mutate(ctx, name, func(h *apiv1.Host) error {
		wasReady = h.Status.Ready
		h.Status.Ready, h.Status.LastHeartbeat = true, s.now()
		return nil
	})
	if err != nil {
		return nil, err
	}
	if !wasReady {
		s.recordEvent(ctx, "Host", name, "", apiv1.EventNormal, "HostReady", "heartbeats resumed", "server")
		s.wake()
	}
	h.Status.LeaseSeconds = int(s.opts.HostLeaseTTL / time.Second)
	return h, nil
}

// GetHost reads a host with what its groups hold.
func (s *Service) GetHost(ctx context.Context, p auth.Principal, name string) (*apiv1.Host, error) {
	if err := s.canSeeHost(p, name); err != nil {
		return nil, err
	}
	h, err := s.hosts.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	return s.withUsage(ctx, h)
}

// ListHosts lists every host (admin only).
func (s *Service) ListHosts(ctx context.Context, p auth.Principal) ([]apiv1.Host, error) {
	if err := p.Require("list hosts", apiv1.TokenAdmin, apiv1.TokenHost); err != nil {
		return nil, err
	}
	hosts, _, _, err := s.hosts.List(ctx, storeOpts(0, 0, ""))
	if err != nil {
		return nil, err
	}
	if p.Kind == apiv1.TokenHost {
		return tunnels(hosts), nil
	}
	usage, err := s.usageByHost(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]apiv1.Host, 0, len(hosts))
	for _, h := range hosts {
		if u, ok := usage[h.Metadata.Name]; ok {
			h.Status.Allocated, h.Status.Groups = u, u.Pods
		}
		h.Spec.StreamToken = ""
		out = append(out, *h)
	}
	return out, nil
}

// checkTunnelIP refuses a tunnel IP another host has: the others' tunnels
// would send its instances' traffic to both (and a host token could draw
// another host's).
func (s *Service) checkTunnelIP(ctx context.Context, h *apiv1.Host) error {
	if h.Spec.TunnelIP == "" {
		return nil
	}
	known, err := s.hosts.Get(ctx, h.Metadata.Name)
	if err != nil && !errdefs.IsNotFound(err) {
		return err
	}
	again := err == nil && known.Spec.TunnelIP == h.Spec.TunnelIP // a host that registered before the range holds it
	if a, err := netip.ParseAddr(h.Spec.TunnelIP); err == nil && !again && s.opts.EIPRange.IsValid() && s.opts.EIPRange.Contains(a) {
		return fmt.Errorf("%w: %w", errdefs.ErrInvalidArgument, apiv1.FieldErrors{{Field: "spec.tunnelIP",
			Message: fmt.Sprintf("%s is inside the EIP range %s, whose addresses instances are reached at; allowed: an address outside it", h.Spec.TunnelIP, s.opts.EIPRange)}})
	}
	hosts, _, _, err := s.hosts.List(ctx, storeOpts(0, 0, ""))
	if err != nil {
		return err
	}
	for _, o := range hosts {
		if o.Metadata.Name != h.Metadata.Name && o.Spec.TunnelIP == h.Spec.TunnelIP {
			return fmt.Errorf("%w: %w", errdefs.ErrInvalidArgument, apiv1.FieldErrors{{Field: "spec.tunnelIP",
				Message: fmt.Sprintf("%s is host %s's tunnel IP; allowed: an address no other host has", h.Spec.TunnelIP, o.Metadata.Name)}})
		}
	}
	return nil
}

// tunnels is what a host reads of the others: where its tunnels reach
// them (name, zone, tunnel IP, readiness), nothing of their capacity,
// groups or stream servers.
func tunnels(hosts []*apiv1.Host) []apiv1.Host {
	out := make([]apiv1.Host, 0, len(hosts))
	for _, h := range hosts {
		out = append(out, apiv1.Host{
			Metadata: apiv1.ObjectMeta{ID: h.Metadata.ID, Name: h.Metadata.Name, ResourceVersion: h.Metadata.ResourceVersion},
			Spec:     apiv1.HostSpec{Zone: h.Spec.Zone, TunnelIP: h.Spec.TunnelIP},
			Status:   apiv1.HostStatus{Ready: h.Status.Ready},
		})
	}
	return out
}

// UpdateHost cordons, uncordons or drains a host, or sets its warm pool's
// size (admin only).
func (s *Service) UpdateHost(ctx context.Context, p auth.Principal, name string, u apiv1.HostUpdate) (*apiv1.Host, error) {
	if err := p.Require("change hosts", apiv1.TokenAdmin); err != nil {
		return nil, err
	}
	if u.WarmPoolTarget != nil {
		if err := apiv1.ValidateWarmPoolTarget(*u.WarmPoolTarget); err != nil {
			return nil, fmt.Errorf("%w: %w", errdefs.ErrInvalidArgument, err)
		}
	}
	h, err := s.hosts.Mutate(ctx, name, func(h *apiv1.Host) error {
		if u.Unschedulable != nil {
			h.Spec.Unschedulable = *u.Unschedulable
		}
		if u.Draining != nil {
			h.Spec.Draining = *u.Draining
		}
		if t := u.WarmPoolTarget; t != nil {
			h.Spec.WarmPoolTarget = nil
			if *t >= 0 {
				n := *t
				h.Spec.WarmPoolTarget = &n
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.wake()
	return s.withUsage(ctx, h)
}

func (s *Service) withUsage(ctx context.Context, h *apiv1.Host) (*apiv1.Host, error) {
	u, err := s.usage.Get(ctx, h.Metadata.Name)
	if err != nil && !errdefs.IsNotFound(err) {
		return nil, err
	}
	if err == nil {
		h.Status.Allocated, h.Status.Groups = u.Used, u.Used.Pods
	}
	h.Spec.StreamToken = ""
	h.Status.LeaseSeconds = int(s.opts.HostLeaseTTL / time.Second)
	return h, nil
}

func (s *Service) usageByHost(ctx context.Context) (map[string]apiv1.Resources, error) {
	items, _, _, err := s.usage.List(ctx, storeOpts(0, 0, ""))
	if err != nil {
		return nil, err
	}
	out := make(map[string]apiv1.Resources, len(items))
	for _, u := range items {
		out[u.Metadata.ID] = u.Used
	}
	return out, nil
}
