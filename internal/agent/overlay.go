package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/client"
	"github.com/eci-dev/eci/internal/datapath"
	"github.com/eci-dev/eci/internal/errdefs"
)

// overlay keeps the host's tunnels (datapath.Overlay, one per VPC the
// host has instances of) routing every instance another host runs: it
// watches where every group's address is (/v1/addresses), reads where the
// other hosts' tunnels reach them (their tunnel IPs), and syncs the
// tunnels' routes and entries on every change, at most every 100 ms, and
// every 30 s in any case.
type overlay struct {
	self, network string
	local         netip.Addr
	mtu           int
	client        *client.Client
	net           *hostNetwork                               // the VPCs' marks (network.go)
	vniOf         func(context.Context, string) (int, error) // a vSwitch's VPC

	book *addressBook // where every group's address is

	mu      sync.Mutex
	tunnels map[string]netip.Addr     // host: its tunnel IP
	read    time.Time                 // when tunnels were read
	devices map[int]*datapath.Overlay // VNI: its tunnel
	changed chan struct{}
}

// newOverlay is the tunnels of host self, from its tunnel IP local, with
// links of mtu.
func newOverlay(c *client.Client, self, network string, local netip.Addr, mtu int, hn *hostNetwork, book *addressBook, vniOf func(context.Context, string) (int, error)) *overlay {
	o := &overlay{
		self: self, network: network, local: local, mtu: mtu, client: c, net: hn, vniOf: vniOf, book: book,
		tunnels: map[string]netip.Addr{}, devices: map[int]*datapath.Overlay{}, changed: make(chan struct{}, 1),
	}
	book.subscribe(o.kick)
	return o
}

func (o *overlay) kick() {
	notify(o.changed)
}

// run makes the tunnels and syncs them until ctx ends (the hosts' tunnel
// IPs read again every 30 s).
func (o *overlay) run(ctx context.Context) {
	syncLoop(ctx, "tunnels to the other hosts", o.changed, 30*time.Second, func(ctx context.Context, full bool) error {
		if full {
			o.mu.Lock()
			o.read = time.Time{}
			o.mu.Unlock()
		}
		return o.sync(ctx)
	})
}

// sync writes the tunnels' routes for the instances of the other hosts
// (nothing before the first list of addresses is in): a tunnel per VPC of
// the host's own instances (the default VPC's always), each routing the
// other hosts' instances of its VPC.
func (o *overlay) sync(ctx context.Context) error {
	addrs, synced := o.book.snapshot()
	if !synced {
		return nil
	}
	o.mu.Lock()
	need := false
	for _, a := range addrs {
		if _, ok := o.tunnels[a.Host]; !ok && a.Host != o.self {
			need = true
		}
	}
	reread := time.Since(o.read) > 30*time.Second || need && time.Since(o.read) > 2*time.Second
	o.mu.Unlock()
	if reread {
		if err := o.readTunnels(ctx); err != nil {
			return err
		}
	}
	remotes, local, err := o.remotes(ctx, addrs)
	if err != nil {
		return err
	}
	local[datapath.DefaultVNI] = true
	var errs []error
	for vni := range local {
		dev, err := o.device(ctx, vni)
		if err == nil {
			err = dev.Sync(remotes[vni])
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("tunnel of VPC %d: %w", vni, err))
		}
	}
	// Tunnels of VPCs the host has no instance of any more, this run's or
	// an earlier run's.
	stale, err := datapath.Tunnels(o.network)
	if err != nil {
		errs = append(errs, err)
	}
	for vni, dev := range stale {
		if local[vni] {
			continue
		}
		if err := dev.Remove(); err != nil {
			errs = append(errs, fmt.Errorf("tunnel of VPC %d: %w", vni, err))
		}
		delete(o.devices, vni)
	}
	return errors.Join(errs...)
}

// device is VPC vni's tunnel, made (with its VPC's mark before it is up)
// if need be.
func (o *overlay) device(ctx context.Context, vni int) (*datapath.Overlay, error) {
	dev := o.devices[vni]
	if dev == nil {
		dev = &datapath.Overlay{Device: datapath.TunnelDevice(o.network, vni), VNI: vni, Local: o.local, MTU: o.mtu, Table: datapath.TableOf(vni)}
		o.devices[vni] = dev
	}
	// Marked (again: a rebuild may have run meanwhile) and made.
	return dev, o.net.ensureTunnel(ctx, dev)
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
	peers := make([]netip.Addr, 0, len(tunnels))
	for name, ip := range tunnels {
		if name != o.self {
			peers = append(peers, ip)
		}
	}
	return o.net.setPeers(ctx, peers)
}

// remotes are the instances of the other hosts whose tunnel IP is known,
// by VPC, and the VPCs of this host's own.
func (o *overlay) remotes(ctx context.Context, addrs map[string]apiv1.InstanceAddressSpec) (map[int][]datapath.Remote, map[int]bool, error) {
	o.mu.Lock()
	tunnels := o.tunnels
	o.mu.Unlock()
	out, local := map[int][]datapath.Remote{}, map[int]bool{}
	for _, a := range addrs {
		vni, err := o.vniOf(ctx, a.VSwitchID)
		if errdefs.IsNotFound(err) {
			continue // a vSwitch gone (none is while it has addresses)
		}
		if err != nil {
			return nil, nil, err
		}
		if a.Host == o.self {
			local[vni] = true
			continue
		}
		host, ok := tunnels[a.Host]
		ip, err := netip.ParseAddr(a.IP)
		if !ok || err != nil {
			continue
		}
		out[vni] = append(out[vni], datapath.Remote{IP: ip, Host: host})
		if ip6 := bookIPv6(a); ip6.IsValid() {
			out[vni] = append(out[vni], datapath.Remote{IP: ip6, Host: host})
		}
	}
	return out, local, nil
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
