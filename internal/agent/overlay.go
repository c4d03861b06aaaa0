package agent

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/client"
	"github.com/eci-dev/eci/internal/datapath"
	"github.com/eci-dev/eci/internal/log"
)

// overlay keeps the host's tunnel (datapath.Overlay) routing every
// instance another host runs: it watches where every group's address is
// (/v1/addresses) and reads where the other hosts' tunnels reach them
// (their tunnel IPs), and syncs the tunnel's routes and entries on every
// change, at most every 100 ms, and every 30 s in any case.
type overlay struct {
	dp     *datapath.Overlay
	self   string
	client *client.Client

	mu      sync.Mutex
	addrs   map[string]apiv1.InstanceAddressSpec // group id: where its address is
	seen    map[string]bool                      // replayed by a relist in progress
	synced  bool                                 // the first list is in
	tunnels map[string]netip.Addr                // host: its tunnel IP
	read    time.Time                            // when tunnels were read
	changed chan struct{}
}

// overlayDevice is the tunnel device of the agent's network.
func overlayDevice(network string) string { return "vx-" + network }

// newOverlay is the tunnel of host self, from its tunnel IP local, with
// links of mtu.
func newOverlay(c *client.Client, self, network string, local netip.Addr, mtu int) *overlay {
	return &overlay{
		dp:   &datapath.Overlay{Device: overlayDevice(network), VNI: 1, Local: local, MTU: mtu},
		self: self, client: c, addrs: map[string]apiv1.InstanceAddressSpec{},
		tunnels: map[string]netip.Addr{}, changed: make(chan struct{}, 1),
	}
}

func (o *overlay) kick() {
	select {
	case o.changed <- struct{}{}:
	default:
	}
}

// watch keeps the copy of every group's address.
func (o *overlay) watch(ctx context.Context) {
	o.client.InformAddresses(ctx, client.Handler[apiv1.InstanceAddress]{
		Relist: func() { o.mu.Lock(); o.seen = map[string]bool{}; o.mu.Unlock() },
		Relisted: func() {
			o.mu.Lock()
			for id := range o.addrs {
				if !o.seen[id] {
					delete(o.addrs, id)
				}
			}
			o.seen = nil
			o.mu.Unlock()
			o.kick()
		},
		Synced: func() { o.mu.Lock(); o.synced = true; o.mu.Unlock(); o.kick() },
		Event: func(ev client.WatchEvent[apiv1.InstanceAddress]) {
			o.mu.Lock()
			id := ev.Object.Metadata.ID
			if ev.Type == apiv1.Deleted {
				delete(o.addrs, id)
			} else {
				o.addrs[id] = ev.Object.Spec
				if o.seen != nil {
					o.seen[id] = true
				}
			}
			o.mu.Unlock()
			o.kick()
		},
		Error: func(err error) { log.G(ctx).Warn("watch the instances' addresses", "err", err) },
	})
}

// run makes the tunnel and syncs it until ctx ends.
func (o *overlay) run(ctx context.Context) {
	backoff := time.Second
	resync := time.NewTicker(30 * time.Second)
	defer resync.Stop()
	for {
		if err := o.sync(ctx); err != nil {
			log.G(ctx).Warn("tunnel to the other hosts: sync failed; trying again", "in", backoff, "err", err)
			if sleep(ctx, backoff); ctx.Err() != nil {
				return
			}
			backoff = min(2*backoff, 30*time.Second)
			continue // changes wait for the retry
		}
		backoff = time.Second
		if sleep(ctx, 100*time.Millisecond); ctx.Err() != nil { // changes meanwhile go into the next sync
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-o.changed:
		case <-resync.C:
			o.mu.Lock()
			o.read = time.Time{} // the hosts' tunnel IPs are read again
			o.mu.Unlock()
		}
	}
}

// sync writes the tunnel's routes for the instances of the other hosts
// (nothing before the first list of addresses is in).
func (o *overlay) sync(ctx context.Context) error {
	if err := o.dp.Ensure(); err != nil {
		return err
	}
	o.mu.Lock()
	if !o.synced {
		o.mu.Unlock()
		return nil
	}
	need := false
	for _, a := range o.addrs {
		if _, ok := o.tunnels[a.Host]; !ok && a.Host != o.self {
			need = true
		}
	}
	stale := time.Since(o.read) > 30*time.Second || need && time.Since(o.read) > 2*time.Second
	o.mu.Unlock()
	if stale {
		if err := o.readTunnels(ctx); err != nil {
			return err
		}
	}
	return o.dp.Sync(o.remotes())
}

// readTunnels reads every host's tunnel IP.
func (o *overlay) readTunnels(ctx context.Context) error {
	hosts, err := o.client.ListHosts(ctx)
	if err != nil {
		return fmt.Errorf("read the hosts' tunnel IPs: %w", err)
	}
	tunnels := map[string]netip.Addr{}
	for _, h := range hosts {
		if ip, err := netip.ParseAddr(h.Spec.TunnelIP); err == nil && ip.Is4() {
			tunnels[h.Metadata.Name] = ip
		}
	}
	o.mu.Lock()
	o.tunnels, o.read = tunnels, time.Now()
	o.mu.Unlock()
	return nil
}

// remotes are the instances of the other hosts whose tunnel IP is known.
func (o *overlay) remotes() []datapath.Remote {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make([]datapath.Remote, 0, len(o.addrs))
	for _, a := range o.addrs {
		host, ok := o.tunnels[a.Host]
		ip, err := netip.ParseAddr(a.IP)
		if a.Host == o.self || !ok || err != nil {
			continue
		}
		out = append(out, datapath.Remote{IP: ip, Host: host})
	}
	return out
}

// linkMTU is the MTU of the interface that holds ip, less the tunnel's
// overhead: the MTU of the instances' links when there is a tunnel.
func linkMTU(ip netip.Addr) (int, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return 0, err
	}
	for _, i := range ifs {
		addrs, _ := i.Addrs()
		for _, a := range addrs {
			if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr() == ip {
				return i.MTU - datapath.VXLANOverhead, nil
			}
		}
	}
	return 0, fmt.Errorf("no interface of this host has the tunnel IP %s", ip)
}
