package agent

import (
	"context"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/client"
	"github.com/eci-dev/eci/internal/log"
)

// addressBook is the agent's copy of where every group's address is
// (/v1/addresses), which the tunnels (overlay.go) and the security groups
// (firewall.go) read; each change kicks them.
type addressBook struct {
	m *mirror[apiv1.InstanceAddress]
}

func newAddressBook() *addressBook { return &addressBook{m: newMirror[apiv1.InstanceAddress](nil)} }

// subscribe calls kick after every change (set before watch runs).
func (b *addressBook) subscribe(kick func()) { b.m.subscribe(kick) }

// snapshot is a copy of the addresses by group id, and whether the first
// list is in.
func (b *addressBook) snapshot() (map[string]apiv1.InstanceAddressSpec, bool) {
	items, synced := b.m.snapshot()
	out := make(map[string]apiv1.InstanceAddressSpec, len(items))
	for id, a := range items {
		out[id] = a.Spec
	}
	return out, synced
}

// set replaces the copy (tests).
func (b *addressBook) set(addrs map[string]apiv1.InstanceAddressSpec) {
	b.m.mu.Lock()
	defer b.m.mu.Unlock()
	b.m.items, b.m.synced = map[string]*apiv1.InstanceAddress{}, true
	for id, spec := range addrs {
		b.m.items[id] = &apiv1.InstanceAddress{Metadata: apiv1.ObjectMeta{ID: id}, Spec: spec}
	}
}

// watch keeps the copy until ctx ends.
func (b *addressBook) watch(ctx context.Context, c *client.Client) {
	c.InformAddresses(ctx, b.m.handler(ctx, "the instances' addresses", func(a *apiv1.InstanceAddress) string { return a.Metadata.ID }))
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
