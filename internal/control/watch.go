package control

import (
	"context"
	"strconv"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/auth"
	"github.com/eci-dev/eci/internal/store"
)

// Watch is a list and watch of the objects a principal may see that match a
// filter, each as the principal may read it (for groups: Redact).
type Watch[T any] struct {
	// Initial are the objects that matched when a watch without a
	// resourceVersion started (to send as ADDED); none with one.
	Initial []*T
	// Revision is where Events start: the initial list's revision, or the
	// resourceVersion given.
	Revision int64
	// Events are the changes after Revision, and bookmarks. The channel
	// closes when the watch's context ends or after an event with Err.
	Events <-chan Event[T]
}

// Event is one change of a watched object (ADDED, MODIFIED, DELETED), or a
// BOOKMARK carrying only the revision reached.
type Event[T any] struct {
	Type   apiv1.WatchEventType
	Object *T
	// Revision reached (the change's, or the bookmark's).
	Revision int64
	// Err, when set, is the last event: ErrGone when the history was
	// compacted (list again).
	Err error
}

// GroupWatch is a watch of groups; GroupEvent one of its events.
type (
	GroupWatch = Watch[apiv1.ContainerGroup]
	GroupEvent = Event[apiv1.ContainerGroup]
)

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
	return watchAs(ctx, s.groups.Watch(ctx, rev), func(g *apiv1.ContainerGroup) *apiv1.ContainerGroup {
		if !p.CanSeeGroup(g.Metadata.Tenant, g.Status.Host) || !f.Match(g) {
			return nil
		}
		return Redact(p, g)
	})
}

// startWatch begins a watch of a list: with resourceVersion "", the list
// (its items as Initial, its revision to watch from); else a check that
// the history after resourceVersion is still there (ErrGone when it was
// compacted).
func startWatch[T any](ctx context.Context, st *store.Store, resourceVersion string, list func() (*apiv1.List[T], error)) (*Watch[T], error) {
	rev, err := store.ParseRevision(resourceVersion)
	if err != nil {
		return nil, err
	}
	w := &Watch[T]{}
	if rev == 0 {
		l, err := list()
		if err != nil {
			return nil, err
		}
		for i := range l.Items {
			w.Initial = append(w.Initial, &l.Items[i])
		}
		rev, _ = strconv.ParseInt(l.ResourceVersion, 10, 64)
	} else if err := st.CheckRevision(ctx, rev); err != nil {
		return nil, err
	}
	w.Revision = rev
	return w, nil
}

// watchAs turns a store watch into a principal's: show gives what of an
// object it may see (nil: nothing); bookmarks and the final error pass.
func watchAs[T any, PT store.Object[T]](ctx context.Context, in <-chan store.Event[T, PT], show func(PT) *T) <-chan Event[T] {
	out := make(chan Event[T], 16)
	go func() {
		defer close(out)
		for ev := range in {
			var e Event[T]
			switch {
			case ev.Err != nil:
				e = Event[T]{Err: ev.Err}
			case ev.Type == apiv1.Bookmark:
				e = Event[T]{Type: apiv1.Bookmark, Revision: ev.Revision}
			default:
				obj := show(ev.Object)
				if obj == nil {
					continue
				}
				e = Event[T]{Type: ev.Type, Object: obj, Revision: ev.Revision}
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
