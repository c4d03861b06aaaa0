package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/errdefs"
)

// Event is one change of a watched collection. A Bookmark carries only the
// revision reached (in Revision) so a client can resume from it. Err, when
// set, is the last event: ErrGone when the revision was compacted.
type Event[T any, PT Object[T]] struct {
	Type     apiv1.WatchEventType
	Object   PT
	Revision int64
	Err      error
}

// Watch streams the collection's changes made after revision rev (0: after
// now). The channel closes when ctx ends or after an event with Err.
func (c *Collection[T, PT]) Watch(ctx context.Context, rev int64) <-chan Event[T, PT] {
	out := make(chan Event[T, PT], 128)
	opts := []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithPrevKV(), clientv3.WithProgressNotify()}
	if rev > 0 {
		opts = append(opts, clientv3.WithRev(rev+1))
	}
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	wch := c.s.Client.Watch(wctx, c.prefix(), opts...)
	go func() {
		defer close(out)
		defer cancel()
		send := func(e Event[T, PT]) bool {
			select {
			case out <- e:
				return true
			case <-ctx.Done():
				return false
			}
		}
		for resp := range wch {
			if resp.CompactRevision != 0 {
				send(Event[T, PT]{Err: fmt.Errorf("watch %s from revision %d: history compacted up to %d; list again: %w",
					c.kind, rev, resp.CompactRevision, errdefs.ErrGone)})
				return
			}
			if err := resp.Err(); err != nil {
				if errors.Is(err, rpctypes.ErrCompacted) {
					err = fmt.Errorf("%w: %w", errdefs.ErrGone, err)
				}
				send(Event[T, PT]{Err: fmt.Errorf("watch %s: %w", c.kind, err)})
				return
			}
			if resp.IsProgressNotify() {
				if !send(Event[T, PT]{Type: apiv1.Bookmark, Revision: resp.Header.Revision}) {
					return
				}
				continue
			}
			for _, ev := range resp.Events {
				e, err := c.event(ev)
				if err != nil {
					send(Event[T, PT]{Err: err})
					return
				}
				if !send(e) {
					return
				}
			}
		}
		if ctx.Err() == nil {
			send(Event[T, PT]{Err: fmt.Errorf("watch %s: the etcd watch ended: %w", c.kind, errdefs.ErrUnavailable)})
		}
	}()
	return out
}

func (c *Collection[T, PT]) event(ev *clientv3.Event) (Event[T, PT], error) {
	rev := ev.Kv.ModRevision
	switch {
	case ev.Type == mvccpb.DELETE:
		if ev.PrevKv == nil {
			return Event[T, PT]{}, fmt.Errorf("watch %s: delete of %s without its last value", c.kind, ev.Kv.Key)
		}
		obj, err := c.decode(ev.PrevKv.Key, ev.PrevKv.Value, rev)
		return Event[T, PT]{Type: apiv1.Deleted, Object: obj, Revision: rev}, err
	case ev.IsCreate():
		obj, err := c.decode(ev.Kv.Key, ev.Kv.Value, rev)
		return Event[T, PT]{Type: apiv1.Added, Object: obj, Revision: rev}, err
	default:
		obj, err := c.decode(ev.Kv.Key, ev.Kv.Value, rev)
		return Event[T, PT]{Type: apiv1.Modified, Object: obj, Revision: rev}, err
	}
}

func isCompacted(err error) bool { return errors.Is(err, rpctypes.ErrCompacted) }

// ParseRevision reads a resourceVersion ("" is 0).
func ParseRevision(rv string) (int64, error) {
	if rv == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(rv, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("resourceVersion %q is not a version this service returned: %w", rv, errdefs.ErrInvalidArgument)
	}
	return n, nil
}

// CheckRevision tells whether a watch can resume from rev: ErrGone when its
// history was compacted. A revision ahead of the store is fine (the watch
// waits for it).
func (s *Store) CheckRevision(ctx context.Context, rev int64) error {
	_, err := s.Client.Get(ctx, s.prefix+"revision-check", clientv3.WithRev(rev), clientv3.WithCountOnly())
	switch {
	case err == nil, errors.Is(err, rpctypes.ErrFutureRev):
		return nil
	case isCompacted(err):
		return fmt.Errorf("resourceVersion %d is too old (compacted); list again: %w", rev, errdefs.ErrGone)
	default:
		return fmt.Errorf("check revision %d: %w: %w", rev, errdefs.ErrUnavailable, err)
	}
}

// Ping tells whether etcd answers.
func (s *Store) Ping(ctx context.Context) error {
	if _, err := s.Client.Get(ctx, s.prefix+"ping", clientv3.WithCountOnly()); err != nil {
		return fmt.Errorf("%w: %w", errdefs.ErrUnavailable, err)
	}
	return nil
}
