package agent

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"time"

	"sigs.k8s.io/knftables"

	"github.com/eci-dev/eci/internal/datapath"
)

// natInterval is how often the host reads the vSwitches again for their
// NAT gateways (a gateway added or gone is seen within it).
const natInterval = 10 * time.Second

// natGateway keeps the host's NAT gateway (datapath.NATGateway) letting
// out the instances of every vSwitch of the pool that has one: the
// vSwitches are read again every natInterval, and the table and routes
// written when they changed (and every 5 minutes in any case).
type natGateway struct {
	gw   *datapath.NATGateway
	read func(context.Context) ([]datapath.NATSource, datapath.NATProtected, error)
	last *natState
}

// natState is what the gateway was last written with.
type natState struct {
	sources   []datapath.NATSource
	protected datapath.NATProtected
}

func (s *natState) equal(o *natState) bool {
	return o != nil && slices.Equal(s.sources, o.sources) && slices.Equal(s.protected.Hosts, o.protected.Hosts) && slices.Equal(s.protected.Services, o.protected.Services)
}

func newNATGateway(network string, read func(context.Context) ([]datapath.NATSource, datapath.NATProtected, error)) (*natGateway, error) {
	nft, err := knftables.New(knftables.IPv4Family, datapath.NATTable(network))
	if err != nil {
		return nil, fmt.Errorf("NAT gateways need nftables (nft 1.0.1 or later): %w", err)
	}
	return &natGateway{gw: &datapath.NATGateway{NFT: nft, Network: network}, read: read}, nil
}

// run syncs until ctx ends.
func (n *natGateway) run(ctx context.Context) {
	tick := make(chan struct{}, 1)
	go func() {
		t := time.NewTicker(natInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				notify(tick)
			}
		}
	}()
	syncLoop(ctx, "NAT gateways", tick, 5*time.Minute, n.sync)
}

// sync writes the gateway when the sources changed (or full).
func (n *natGateway) sync(ctx context.Context, full bool) error {
	sources, protected, err := n.read(ctx)
	if err != nil {
		return err
	}
	now := &natState{sources: sources, protected: protected}
	if !full && now.equal(n.last) {
		return nil
	}
	if err := n.gw.Sync(ctx, sources, protected); err != nil {
		return err
	}
	n.last = now
	return nil
}

// natSources reads the vSwitches again (the agent's copy too) and returns
// those with a NAT gateway, in a stable order, and the addresses no
// packet through one may reach: every host's tunnel IP and the server's
// API (when its URL names an address).
func (a *Agent) natSources(ctx context.Context) ([]datapath.NATSource, datapath.NATProtected, error) {
	var protected datapath.NATProtected
	if err := a.readVSwitches(ctx); err != nil {
		return nil, protected, err
	}
	hosts, err := a.cfg.Client.ListHosts(ctx)
	if err != nil {
		return nil, protected, fmt.Errorf("read the hosts' addresses: %w", err)
	}
	for _, h := range hosts {
		if ip, err := netip.ParseAddr(h.Spec.TunnelIP); err == nil && ip.Is4() {
			protected.Hosts = append(protected.Hosts, ip)
		}
	}
	slices.SortFunc(protected.Hosts, netip.Addr.Compare)
	if u, err := url.Parse(a.cfg.Client.Server()); err == nil {
		port := u.Port()
		if port == "" {
			port = "443"
		}
		if ap, err := netip.ParseAddrPort(net.JoinHostPort(u.Hostname(), port)); err == nil && ap.Addr().Is4() {
			protected.Services = []netip.AddrPort{ap}
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	out := []datapath.NATSource{}
	for _, v := range a.vswitches {
		if !v.Spec.NATGateway {
			continue
		}
		p, err := netip.ParsePrefix(v.Spec.CIDR)
		if err != nil {
			continue // the server checked it; a bad one lets nothing out
		}
		out = append(out, datapath.NATSource{VNI: vniOf(v), CIDR: p})
	}
	slices.SortFunc(out, func(x, y datapath.NATSource) int {
		if x.VNI != y.VNI {
			return x.VNI - y.VNI
		}
		return x.CIDR.Addr().Compare(y.CIDR.Addr())
	})
	return out, protected, nil
}
