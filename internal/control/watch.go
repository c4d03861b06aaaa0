package control

import (
	"context"
	"strconv"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/auth"
	"github.com/eci-dev/eci/internal/store"
)

// GroupWatch is a list and watch of the groups a principal may see that match
// a filter, each as the principal may read it (Redact).
type GroupWatch struct {
	// Initial are the groups that matched when a watch without a
	// resourceVersion started (to send as ADDED); none with one.
	Initial []*apiv1.ContainerGroup
	// Revision is where Events start: the initial list's revision, or the
	// resourceVersion given.
	Revision int64
	// Events are the changes after Revision, and bookmarks. The channel
	// closes when the watch's context ends or after an event with Err.
	Events <-chan GroupEvent
}

// GroupEvent is one change of a watched group (ADDED, MODIFIED, DELETED), or
// a BOOKMARK carrying only the revision reached.
type GroupEvent struct {
	Type  apiv1.WatchEventType
	Group *apiv1.ContainerGroup
	// Revision reached (the change's, or the bookmark's).
	Revision int64
	// Err, when set, is the last event: ErrGone when the history was
	// compacted (list again).
	Err error
}

// WatchGroups lists (resourceVersion "") the groups p may see that match f and
// watches their changes after the list, or watches the changes after
// resourceVersion: ErrGone when that history was compacted (list again),
// ErrInvalidArgument when it is not a version. Nothing is streamed when it
// returns an error.
func (s *Service) WatchGroups(ctx context.Context, p auth.Principal, f GroupFilter, resourceVersion string) (*GroupWatch, error) {
	rev, err := store.ParseRevision(resourceVersion)
	if err != nil {
		return nil, err
	}
	w := &GroupWatch{}
	if rev == 0 {
		cont := ""
		for {
			page, err := s.ListGroups(ctx, p, f, 500, cont)
			if err != nil {
				return nil, err
			}
			for i := range page.Items {
				w.Initial = append(w.Initial, Redact(p, &page.Items[i]))
			}
			if rev == 0 {
				rev, _ = strconv.ParseInt(page.ResourceVersion, 10, 64)
			}
			if page.Continue == "" {
				break
			}
			cont = page.Continue
		}
	} else if err := s.st.CheckRevision(ctx, rev); err != nil {
		return nil, err
	}
	w.Revision = rev
	w.Events = s.groupEvents(ctx, p, f, rev)
	return w, nil
}

// groupEvents are the store's group changes after rev that p may see and f
// matches, redacted for p, with every bookmark and the final error.
func (s *Service) groupEvents(ctx context.Context, p auth.Principal, f GroupFilter, rev int64) <-chan GroupEvent {
	in := s.groups.Watch(ctx, rev)
	out := make(chan GroupEvent, 16)
	go func() {
		defer close(out)
		for ev := range in {
			var e GroupEvent
			switch {
			case ev.Err != nil:
				e = GroupEvent{Err: ev.Err}
			case ev.Type == apiv1.Bookmark:
				e = GroupEvent{Type: apiv1.Bookmark, Revision: ev.Revision}
			case p.CanSeeGroup(ev.Object.Metadata.Tenant, ev.Object.Status.Host) && f.Match(ev.Object):
				e = GroupEvent{Type: ev.Type, Group: Redact(p, ev.Object), Revision: ev.Revision}
			default:
				continue
			}
			select {
			case out <- e:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}
