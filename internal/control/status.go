package control

import (
	"context"
	"fmt"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/auth"
	"github.com/eci-dev/eci/internal/errdefs"
)

// ReportStatus stores an agent's view of a group placed on its host. A
// terminal state releases the group's capacity and IP. A group being deleted
// stays Terminating whatever the agent says until it finalizes.
func (s *Service) ReportStatus(ctx context.Context, p auth.Principal, id string, r apiv1.StatusReport) (*apiv1.ContainerGroup, error) {
	if err := p.Require("report status", apiv1.TokenAdmin, apiv1.TokenHost); err != nil {
		return nil, err
	}
	ev, ok := reportEvent(r.State)
	if !ok {
		return nil, fmt.Errorf("state: %q is not allowed; allowed: Pending, Running, Restarting, Succeeded, Failed: %w", r.State, errdefs.ErrInvalidArgument)
	}
	if _, err := s.GetGroup(ctx, p, id); err != nil {
		return nil, err
	}
	var stale error
	g, err := s.transition(ctx, id, func(g *apiv1.ContainerGroup) bool {
		if g.Status.State.Terminal() { // (the state machine takes nothing from an ended group)
			stale = fmt.Errorf("group %s already ended (%s): %w", id, g.Status.State, errdefs.ErrConflict)
			return false
		}
		if p.Kind == apiv1.TokenHost && g.Status.Host != p.Host {
			stale = fmt.Errorf("group %s is no longer placed on %s: %w", id, p.Host, errdefs.ErrNotFound)
			return false
		}
		g.Status.InitContainers, g.Status.Containers, g.Status.Conditions = r.InitContainers, r.Containers, r.Conditions
		g.Status.EphemeralContainers = r.EphemeralContainers
		// A group being deleted takes only its end: it stays Terminating
		// (with its containers' states) whatever else the agent says.
		if err := applyEvent(&g.Status, ev, r.Reason, r.Message, s.now()); err != nil && g.Status.State != apiv1.StateTerminating {
			stale = fmt.Errorf("group %s: %w", id, err)
			return false
		}
		return true
	})
	if stale != nil {
		return nil, stale
	}
	return g, err
}

// Finalize completes a graceful delete once the agent has stopped everything.
func (s *Service) Finalize(ctx context.Context, p auth.Principal, id string) error {
	if err := p.Require("finalize groups", apiv1.TokenAdmin, apiv1.TokenHost); err != nil {
		return err
	}
	for attempt := 0; attempt < 20; attempt++ {
		g, err := s.GetGroup(ctx, p, id)
		if err != nil {
			return err
		}
		if g.Metadata.DeletionRequestedAt == nil {
			return fmt.Errorf("group %s is not being deleted: %w", id, errdefs.ErrConflict)
		}
		err = s.removeGroup(ctx, g, true) // the agent stopped everything
		if errdefs.IsConflict(err) {
			continue
		}
		return err
	}
	return fmt.Errorf("finalize %s: too many concurrent changes: %w", id, errdefs.ErrConflict)
}
