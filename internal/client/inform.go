package client

import (
	"context"
	"errors"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/errdefs"
)

// Handler receives what an informer sees.
type Handler[T any] struct {
	// Relist is called before a fresh list replays every object as ADDED
	// (at the start, and after the server said Gone), and Relisted once it
	// has been replayed: what was known before and not replayed is gone.
	Relist, Relisted func()
	// Synced is called once, after the first list has been replayed.
	Synced func()
	// Event is called for every ADDED, MODIFIED and DELETED object.
	Event func(WatchEvent[T])
	// Error is called when the watch breaks (it is then resumed).
	Error func(error)
}

// GroupHandler receives what InformGroups sees.
type GroupHandler = Handler[apiv1.ContainerGroup]

// InformGroups keeps watching the groups o selects until ctx ends: it resumes
// from the last resourceVersion it saw when the stream breaks, and lists again
// when that version is gone (compacted).
func (c *Client) InformGroups(ctx context.Context, o ListOptions, h GroupHandler) {
	inform(ctx, func(rv string) (<-chan GroupEvent, error) { return c.WatchGroups(ctx, o, rv) }, h)
}

// metaOf is a stored object's metadata.
type metaOf[T any] interface {
	*T
	Meta() *apiv1.ObjectMeta
}

// inform runs an informer over watchFrom (a watch from a resourceVersion,
// "" to list first) until ctx ends.
func inform[T any, PT metaOf[T]](ctx context.Context, watchFrom func(rv string) (<-chan WatchEvent[T], error), h Handler[T]) {
	rv, synced := "", false
	for ctx.Err() == nil {
		replaying := rv == ""
		if replaying && h.Relist != nil {
			h.Relist()
		}
		events, err := watchFrom(rv)
		if err != nil {
			if errors.Is(err, errdefs.ErrGone) {
				rv = ""
			}
			if h.Error != nil && ctx.Err() == nil {
				h.Error(err)
			}
			sleepCtx(ctx, time.Second)
			continue
		}
		for ev := range events {
			if ev.Err != nil {
				if errors.Is(ev.Err, errdefs.ErrGone) {
					rv = ""
				}
				if h.Error != nil && ctx.Err() == nil {
					h.Error(ev.Err)
				}
				break
			}
			// During a list's replay the objects carry their own (older)
			// versions: resuming from one would skip the rest of the list.
			// Only its closing bookmark says where the list stands; a
			// stream that breaks before it lists again.
			if v := PT(ev.Object).Meta().ResourceVersion; v != "" && (!replaying || ev.Type == apiv1.Bookmark) {
				rv = v
			}
			if ev.Type == apiv1.Bookmark {
				if replaying {
					replaying = false
					if h.Relisted != nil {
						h.Relisted()
					}
				}
				if !synced {
					synced = true
					if h.Synced != nil {
						h.Synced()
					}
				}
				continue
			}
			h.Event(ev)
		}
		if replaying && ctx.Err() == nil {
			// A list broken before its bookmark is listed again, not at
			// once: a server dropping streams is not asked for every list
			// in a loop.
			sleepCtx(ctx, time.Second)
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
