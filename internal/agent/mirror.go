package agent

import (
	"context"
	"maps"
	"sync"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/client"
	"github.com/eci-dev/eci/internal/log"
)

// mirror is the agent's copy of a list-and-watch of the server's objects
// by id (virtual IPs, security groups, the pool's addresses), kept by an
// informer's handler: a relist drops what it did not replay; every change
// calls the kicks.
type mirror[T any] struct {
	// keep says whether an object is kept (nil: all); one it refuses is
	// dropped as if deleted.
	keep func(*T) bool

	mu     sync.Mutex
	items  map[string]*T
	seen   map[string]bool // replayed by a relist in progress
	synced bool            // the first list is in
	kicks  []func()
}

func newMirror[T any](keep func(*T) bool) *mirror[T] {
	return &mirror[T]{keep: keep, items: map[string]*T{}}
}

// subscribe calls kick after every change (set before the watch runs).
func (m *mirror[T]) subscribe(kick func()) { m.kicks = append(m.kicks, kick) }

func (m *mirror[T]) kick() {
	for _, k := range m.kicks {
		k()
	}
}

// snapshot is a copy of the objects, and whether the first list is in.
func (m *mirror[T]) snapshot() (map[string]*T, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.items), m.synced
}

// notify signals ch (of capacity 1) without waiting: a signal pending
// already stands for this one.
func notify(ch chan<- struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// handler keeps the copy; what names the objects in its warnings.
func (m *mirror[T]) handler(ctx context.Context, what string, id func(*T) string) client.Handler[T] {
	return client.Handler[T]{
		Relist: func() { m.mu.Lock(); m.seen = map[string]bool{}; m.mu.Unlock() },
		Relisted: func() {
			m.mu.Lock()
			for k := range m.items {
				if !m.seen[k] {
					delete(m.items, k)
				}
			}
			m.seen = nil
			m.mu.Unlock()
			m.kick()
		},
		Synced: func() { m.mu.Lock(); m.synced = true; m.mu.Unlock(); m.kick() },
		Event: func(ev client.WatchEvent[T]) {
			k := id(ev.Object)
			m.mu.Lock()
			if ev.Type == apiv1.Deleted || m.keep != nil && !m.keep(ev.Object) {
				delete(m.items, k)
			} else {
				m.items[k] = ev.Object
				if m.seen != nil {
					m.seen[k] = true
				}
			}
			m.mu.Unlock()
			m.kick()
		},
		Error: func(err error) { log.G(ctx).Warn("watch "+what, "err", err) },
	}
}
