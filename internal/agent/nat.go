package agent

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"time"

	"sigs.k8s.io/knftables"

	"github.com/eci-dev/eci/internal/datapath"
	"github.com/eci-dev/eci/internal/log"
)

// natInterval is how often the host reads the vSwitches (their NAT
// gateways) and the hosts (their addresses) again: a gateway added or gone
// is seen within it. natRewrite: the gateway is written whole that often
// even when nothing changed.
const (
	natInterval = 10 * time.Second
	natRewrite  = 5 * time.Minute
)

// natGateway keeps the host's NAT gateway (datapath.NATGateway): it lets
// out the instances of every vSwitch of the pool that has one, and
// translates the EIPs of the host's own groups. It writes the gateway when
// what it lets through changed: on a group's change (an EIP placed here or
// gone), every natInterval (the pool read again), every natRewrite in any
// case.
type natGateway struct {
	gw       *datapath.NATGateway
	readPool func(context.Context) (datapath.NATConfig, error) // all but the EIPs
	// eips are the host's instances' EIPs; false: not known yet (the
	// groups not listed since the agent started).
	eips    func() ([]datapath.EIP, bool)
	changed chan struct{}

	// Only the sync loop uses these.
	pool    datapath.NATConfig
	read    bool // pool was read
	last    *datapath.NATConfig
	written time.Time
	warned  bool // the last write warned: written again at the next tick
}

func newNATGateway(ctx context.Context, network string, readPool func(context.Context) (datapath.NATConfig, error), eips func() ([]datapath.EIP, bool)) (*natGateway, error) {
	nft, err := knftables.New(knftables.IPv4Family, datapath.NATTable(network))
	if err != nil {
		return nil, fmt.Errorf("NAT gateways need nftables (nft 1.0.1 or later): %w", err)
	}
	n := &natGateway{readPool: readPool, eips: eips, changed: make(chan struct{}, 1)}
	// What one EIP, VPC or route entry can't have (an EIP that is the
	// host's address, or on none of its networks) is said, and the others
	// are served; the write is tried again at the next tick.
	warn := func(err error) {
		n.warned = true
		log.G(ctx).Warn("NAT gateway: not served on this host", "err", err)
	}
	n.gw = &datapath.NATGateway{NFT: nft, Network: network, Warn: warn}
	return n, nil
}

func (n *natGateway) kick() { notify(n.changed) }

// run syncs until ctx ends: on a group's change, and every natInterval
// with the pool read again.
func (n *natGateway) run(ctx context.Context) {
	syncLoop(ctx, "NAT gateways and EIPs", n.changed, natInterval, n.sync)
}

// sync writes the gateway when what it lets through changed (or natRewrite
// after its last write); with reread (every natInterval), the pool read
// again first.
func (n *natGateway) sync(ctx context.Context, reread bool) error {
	if reread || !n.read {
		pool, err := n.readPool(ctx)
		if err != nil {
			return err
		}
		n.pool, n.read = pool, true
	}
	eips, known := n.eips()
	if !known {
		return nil // an agent that starts again keeps the EIPs it left until it knows its groups
	}
	cfg := n.pool
	cfg.EIPs = eips
	if natEqual(&cfg, n.last) && time.Since(n.written) < natRewrite {
		return nil
	}
	n.warned = false
	if err := n.gw.Sync(ctx, cfg); err != nil {
		return err
	}
	n.last, n.written = &cfg, time.Now()
	if n.warned {
		n.last = nil
	}
	return nil
}

func natEqual(a, b *datapath.NATConfig) bool {
	return b != nil && slices.Equal(a.Sources, b.Sources) && slices.Equal(a.EIPs, b.EIPs) && slices.Equal(a.Routes, b.Routes) &&
		slices.Equal(a.Inside, b.Inside) && slices.Equal(a.Protected.Hosts, b.Protected.Hosts) &&
		slices.Equal(a.Protected.Services, b.Protected.Services) && slices.Equal(a.Protected.Networks, b.Protected.Networks)
}

// natPool reads the vSwitches again (the agent's copy too) for those with
// a NAT gateway, the addresses no packet through one may reach (every
// host's tunnel IP and the server's API, when its URL names an address),
// and the default VPC's route entries; each in a stable order.
func (a *Agent) natPool(ctx context.Context) (datapath.NATConfig, error) {
	var protected datapath.NATProtected
	if err := a.readVSwitches(ctx); err != nil {
		return datapath.NATConfig{}, err
	}
	hosts, err := a.cfg.Client.ListHosts(ctx)
	if err != nil {
		return datapath.NATConfig{}, fmt.Errorf("read the hosts' addresses: %w", err)
	}
	entries, err := a.cfg.Client.ListRouteEntries(ctx)
	if err != nil {
		return datapath.NATConfig{}, fmt.Errorf("read the route entries: %w", err)
	}
	var routes []datapath.RouteEntry
	for _, e := range entries {
		d, err1 := netip.ParsePrefix(e.Spec.Destination)
		h, err2 := netip.ParseAddr(e.Spec.NextHop)
		if err1 == nil && err2 == nil {
			routes = append(routes, datapath.RouteEntry{Destination: d.Masked(), NextHop: h})
		}
	}
	slices.SortFunc(routes, func(x, y datapath.RouteEntry) int {
		if c := x.Destination.Addr().Compare(y.Destination.Addr()); c != 0 {
			return c
		}
		return x.Destination.Bits() - y.Destination.Bits()
	})
	for _, h := range hosts {
		if ip, err := netip.ParseAddr(h.Spec.TunnelIP); err == nil && ip.Is4() {
			protected.Hosts = append(protected.Hosts, ip)
		}
	}
	slices.SortFunc(protected.Hosts, netip.Addr.Compare)
	if protected.Services, err = a.serverAddrs(ctx); err != nil {
		return datapath.NATConfig{}, err // the last pool stays, with the server's addresses
	}
	protected.Networks = a.cfg.ProtectedNetworks
	a.mu.Lock()
	defer a.mu.Unlock()
	out, inside := []datapath.NATSource{}, []datapath.NATSource{}
	for _, v := range a.vswitches {
		p, err := netip.ParsePrefix(v.Spec.CIDR)
		if err != nil {
			continue // the server checked it; a bad one lets nothing out
		}
		inside = append(inside, datapath.NATSource{VNI: vniOf(v), CIDR: p})
		if v.Spec.NATGateway {
			out = append(out, datapath.NATSource{VNI: vniOf(v), CIDR: p})
		}
	}
	bySource := func(x, y datapath.NATSource) int {
		if x.VNI != y.VNI {
			return x.VNI - y.VNI
		}
		return x.CIDR.Addr().Compare(y.CIDR.Addr())
	}
	slices.SortFunc(out, bySource)
	slices.SortFunc(inside, bySource)
	return datapath.NATConfig{Sources: out, Protected: protected, Routes: routes, Inside: inside}, nil
}

// serverAddrs are the addresses and port of the server's API (its URL's
// host resolved when it is a name).
func (a *Agent) serverAddrs(ctx context.Context) ([]netip.AddrPort, error) {
	u, err := url.Parse(a.cfg.Client.Server())
	if err != nil {
		return nil, fmt.Errorf("the server's URL: %w", err)
	}
	port, err := strconv.Atoi(u.Port())
	if err != nil {
		port = 443
	}
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip4", u.Hostname())
	if err != nil {
		return nil, fmt.Errorf("resolve the server's address, to keep it from the NAT gateways: %w", err)
	}
	out := make([]netip.AddrPort, 0, len(addrs))
	for _, ad := range addrs {
		out = append(out, netip.AddrPortFrom(ad.Unmap(), uint16(port)))
	}
	slices.SortFunc(out, netip.AddrPort.Compare)
	return out, nil
}

// localEIPs are the EIPs of the groups placed on this host and not ended,
// whose vSwitch (VPC) the agent knows, in a stable order; none while the
// host is fenced (another host may be given them); false until the groups
// are listed.
func (a *Agent) localEIPs() ([]datapath.EIP, bool) {
	groups, complete := a.view.complete()
	if !complete {
		return nil, false
	}
	out := []datapath.EIP{}
	if a.lease.isFenced() {
		return out, true
	}
	for _, g := range groups {
		if g.Status.EIPAddress == "" || g.Status.State.Terminal() {
			continue
		}
		eip, err1 := netip.ParseAddr(g.Status.EIPAddress)
		inst, err2 := netip.ParseAddr(g.Status.IP)
		vni, ok := a.cachedVNI(g.Status.VSwitchID)
		if err1 != nil || err2 != nil || !ok || !eip.Is4() || !inst.Is4() {
			continue
		}
		out = append(out, datapath.EIP{Addr: eip, Instance: inst, VNI: vni})
	}
	slices.SortFunc(out, func(x, y datapath.EIP) int { return x.Addr.Compare(y.Addr) })
	return out, true
}
