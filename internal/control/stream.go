package control

import (
	"context"
	"fmt"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/auth"
	"github.com/eci-dev/eci/internal/errdefs"
)

// StreamTarget is where the logs, exec, attach, port-forward and stats of a
// group are served: the agent of its host.
type StreamTarget struct {
	Group *apiv1.ContainerGroup
	// Address (ip:port), CA (PEM) and Token of the host's stream server.
	Address, CA, Token string
}

// StreamTarget finds the agent that serves group id's streams, for a
// principal that may see the group. A group that was never placed, or whose
// host has no stream server, has nothing to serve: Unavailable says why.
func (s *Service) StreamTarget(ctx context.Context, p auth.Principal, id string) (*StreamTarget, error) {
	g, err := s.GetGroup(ctx, p, id)
	if err != nil {
		return nil, err
	}
	if g.Status.Host == "" {
		return nil, fmt.Errorf("group %s is %s and runs on no host yet: %w", id, g.Status.State, errdefs.ErrUnavailable)
	}
	h, err := s.hosts.Get(ctx, g.Status.Host)
	if err != nil {
		return nil, fmt.Errorf("host %s of group %s: %w", g.Status.Host, id, err)
	}
	if h.Spec.Address == "" {
		return nil, fmt.Errorf("host %s registered no stream server address: %w", h.Metadata.Name, errdefs.ErrUnavailable)
	}
	if !h.Status.Ready {
		return nil, fmt.Errorf("the agent of host %s is not ready (last heartbeat %s): %w", h.Metadata.Name, h.Status.LastHeartbeat.Format("15:04:05"), errdefs.ErrUnavailable)
	}
	return &StreamTarget{Group: g, Address: h.Spec.Address, CA: h.Spec.StreamCA, Token: h.Spec.StreamToken}, nil
}
