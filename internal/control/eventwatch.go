package control

import (
	"context"
	"fmt"
	"strconv"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/auth"
)

// WatchEvents lists (resourceVersion "") and watches the events p may see:
// the admin every one, a tenant those of its groups (by the tenant the
// event was recorded with). A series' new occurrence is a MODIFIED event
// (its count and lastTime); an event capped away is DELETED.
func (s *Service) WatchEvents(ctx context.Context, p auth.Principal, resourceVersion string) (*Watch[apiv1.Event], error) {
	if err := p.Require("watch events", apiv1.TokenAdmin, apiv1.TokenTenant); err != nil {
		return nil, err
	}
	visible := func(ev *apiv1.Event) bool {
		return p.IsAdmin() || ev.Object.Kind == "ContainerGroup" && ev.Metadata.Tenant == p.Tenant
	}
	w, err := startWatch(ctx, s.st, resourceVersion, func() (*apiv1.List[apiv1.Event], error) {
		items, rev, _, err := s.events.List(ctx, storeOpts(0, 0, ""))
		if err != nil {
			return nil, fmt.Errorf("list events: %w", err)
		}
		out := &apiv1.List[apiv1.Event]{Items: []apiv1.Event{}, ResourceVersion: strconv.FormatInt(rev, 10)}
		for _, ev := range items {
			if visible(ev) {
				out.Items = append(out.Items, *ev)
			}
		}
		return out, nil
	})
	if err != nil {
		return nil, err
	}
	w.Events = watchAs(ctx, s.events.Watch(ctx, w.Revision), func(ev *apiv1.Event) *apiv1.Event {
		if !visible(ev) {
			return nil
		}
		return ev
	})
	return w, nil
}
