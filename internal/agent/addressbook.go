package agent

import (
	"context"
	"maps"
	"sync"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/client"
	"github.com/eci-dev/eci/internal/log"
)

// addressBook is the agent's copy of where every group's address is
// (/v1/addresses), which the tunnels (overlay.go) and the security groups
// (firewall.go) read; each change kicks them.
type addressBook struct {
	mu     sync.Mutex
	addrs  map[string]apiv1.InstanceAddressSpec // group id: where its address is
	seen   map[string]bool                      // replayed by a relist in progress
	synced bool                                 // the first list is in
	kicks  []func()
}

func newAddressBook() *addressBook {
	return &addressBook{addrs: map[string]apiv1.InstanceAddressSpec{}}
}

// subscribe calls kick after every change (set before watch runs).
func (b *addressBook) subscribe(kick func()) { b.kicks = append(b.kicks, kick) }

func (b *addressBook) kick() {
	for _, k := range b.kicks {
		k()
	}
}

// snapshot is a copy of the addresses, and whether the first list is in.
func (b *addressBook) snapshot() (map[string]apiv1.InstanceAddressSpec, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return maps.Clone(b.addrs), b.synced
}

// watch keeps the copy until ctx ends.
func (b *addressBook) watch(ctx context.Context, c *client.Client) {
	c.InformAddresses(ctx, client.Handler[apiv1.InstanceAddress]{
		Relist: func() { b.mu.Lock(); b.seen = map[string]bool{}; b.mu.Unlock() },
		Relisted: func() {
			b.mu.Lock()
			for id := range b.addrs {
				if !b.seen[id] {
					delete(b.addrs, id)
				}
			}
			b.seen = nil
			b.mu.Unlock()
			b.kick()
		},
		Synced: func() { b.mu.Lock(); b.synced = true; b.mu.Unlock(); b.kick() },
		Event: func(ev client.WatchEvent[apiv1.InstanceAddress]) {
			b.mu.Lock()
			id := ev.Object.Metadata.ID
			if ev.Type == apiv1.Deleted {
				delete(b.addrs, id)
			} else {
				b.addrs[id] = ev.Object.Spec
				if b.seen != nil {
					b.seen[id] = true
				}
			}
			b.mu.Unlock()
			b.kick()
		},
		Error: func(err error) { log.G(ctx).Warn("watch the instances' addresses", "err", err) },
	})
}

// syncLoop runs sync at once and after every change on changed (at most
// every 100 ms, changes meanwhile going into the next), and every full
// interval with full set; a failed sync is tried again after 1 s, doubling
// to 30 s, changes waiting for the retry.
func syncLoop(ctx context.Context, what string, changed <-chan struct{}, full time.Duration, sync func(ctx context.Context, full bool) error) {
	backoff := time.Second
	resync := time.NewTicker(full)
	defer resync.Stop()
	all := true
	for {
		if err := sync(ctx, all); err != nil {
			log.G(ctx).Warn(what+": sync failed; trying again", "in", backoff, "err", err)
			if sleep(ctx, backoff); ctx.Err() != nil {
				return
			}
			backoff = min(2*backoff, 30*time.Second)
			continue
		}
		backoff, all = time.Second, false
		if sleep(ctx, 100*time.Millisecond); ctx.Err() != nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-resync.C:
			all = true
		}
	}
}
