package datapath

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// An EIP is an address on one of the host's networks (the underlay) that
// the host answers ARP for (a proxy entry on that network's link; the
// kernel answers for an address it routes through another link, here the
// hairpin) and translates to its instance:
//
//   - the default VPC's where they arrive (DNAT) and leave (SNAT to the
//     EIP instead of the host's address);
//   - another VPC's round the hairpin, like its gateway's packets: coming
//     in, routed to the hairpin, given the VPC's mark and zone by their
//     address on the VPC side and translated there, in the VPC's zone;
//     going out, given the EIP on the VPC side and left untranslated on the
//     underlay side.
//
// The EIP's instance is a source of the gateway as a vSwitch with one
// would be; security groups filter what reaches it as anything else.

// usableEIPs are those of eips that are neither the host's own addresses
// (what comes to the host would go to the instance) nor the hairpin's;
// the others are warned of.
func (n *NATGateway) usableEIPs(eips []EIP) ([]EIP, error) {
	addrs, err := netlink.AddrList(nil, unix.AF_INET)
	if err != nil {
		return nil, fmt.Errorf("the host's addresses, to check the EIPs against: %w", err)
	}
	local := map[netip.Addr]bool{}
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok {
			local[ip.Unmap()] = true
		}
	}
	var out []EIP
	for _, e := range eips {
		if local[e.Addr] || n.natRange().Contains(e.Addr) {
			n.warn(fmt.Errorf("EIP %s is an address of this host or its NAT hairpin: not translated", e.Addr))
			continue
		}
		out = append(out, e)
	}
	return out, nil
}

func eipAddrs(eips []EIP) []netip.Addr {
	out := make([]netip.Addr, 0, len(eips))
	for _, e := range eips {
		out = append(out, e.Addr)
	}
	return out
}

func eipVNIs(eips []EIP) []int {
	out := make([]int, 0, len(eips))
	for _, e := range eips {
		out = append(out, e.VNI)
	}
	return out
}

// proxyARP answers ARP for the EIPs on the link of the network each is on,
// and stops answering for those an earlier sync had (their routes through
// the hairpin tell them, so an agent that starts again finds them too).
// kept are stale ones whose answers could not be taken back (their routes
// stay, so that the next sync finds them again); an EIP on none of the
// host's networks is warned of.
func (n *NATGateway) proxyARP(underlaySide netlink.Link, eips []EIP) (kept []netip.Addr, err error) {
	want := map[netip.Addr]bool{}
	for _, e := range eips {
		want[e.Addr] = true
	}
	routes, err := netlink.RouteListFiltered(unix.AF_INET, &netlink.Route{Table: unix.RT_TABLE_MAIN, Protocol: RouteProtocolNAT},
		netlink.RT_FILTER_TABLE|netlink.RT_FILTER_PROTOCOL)
	if err != nil {
		return nil, fmt.Errorf("EIP routes: %w", err)
	}
	var errs []error
	for _, r := range routes {
		if r.Dst == nil || r.LinkIndex != underlaySide.Attrs().Index {
			continue
		}
		p, ok := netip.AddrFromSlice(r.Dst.IP)
		if ones, _ := r.Dst.Mask.Size(); !ok || ones != 32 || want[p.Unmap()] || n.natRange().Contains(p.Unmap()) {
			continue
		}
		if err := deleteProxy(p.Unmap()); err != nil {
			errs, kept = append(errs, err), append(kept, p.Unmap())
			continue
		}
		forgetConnections(p.Unmap())
	}
	for a := range want {
		link, err := linkOfNetwork(a)
		if err != nil {
			n.warn(err)
			continue
		}
		name := link.Attrs().Name
		// Answer at once, not after a random wait (proxy_delay).
		if err := sysctl("net/ipv4/neigh/"+name+"/proxy_delay", "0"); err != nil {
			errs = append(errs, err)
		}
		proxy := &netlink.Neigh{LinkIndex: link.Attrs().Index, Family: unix.AF_INET, Flags: netlink.NTF_PROXY, IP: a.AsSlice()}
		if err := netlink.NeighAdd(proxy); err != nil && !errors.Is(err, unix.EEXIST) {
			errs = append(errs, fmt.Errorf("answer ARP for EIP %s on %s: %w", a, name, err))
		}
	}
	return kept, errors.Join(errs...)
}

// forgetConnections deletes the tracked connections of an EIP that went
// (to it, or translated from it): none goes on to the instance that had
// it, whose address may be another's next.
func forgetConnections(a netip.Addr) {
	for _, f := range []netlink.ConntrackFilterType{netlink.ConntrackOrigDstIP, netlink.ConntrackReplyDstIP} {
		filter := &netlink.ConntrackFilter{}
		if err := filter.AddIP(f, a.AsSlice()); err == nil {
			_, _ = netlink.ConntrackDeleteFilters(netlink.ConntrackTable, unix.AF_INET, filter)
		}
	}
}

// linkOfNetwork is the link of the host's network that holds a (its
// connected route, the longest).
func linkOfNetwork(a netip.Addr) (netlink.Link, error) {
	routes, err := netlink.RouteListFiltered(unix.AF_INET, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, err
	}
	best, bits := -1, -1
	for _, r := range routes {
		if r.Dst == nil || r.Scope != netlink.SCOPE_LINK || r.Gw != nil || r.Protocol == RouteProtocol || r.Protocol == RouteProtocolNAT {
			continue
		}
		p, ok := netip.AddrFromSlice(r.Dst.IP)
		ones, _ := r.Dst.Mask.Size()
		if ok && ones < 32 && ones > bits && netip.PrefixFrom(p.Unmap(), ones).Contains(a) {
			best, bits = r.LinkIndex, ones
		}
	}
	if best < 0 {
		return nil, fmt.Errorf("EIP %s is on none of the host's networks (no connected route holds it)", a)
	}
	return netlink.LinkByIndex(best)
}

// deleteProxy stops answering ARP for a on any link.
func deleteProxy(a netip.Addr) error {
	proxies, err := netlink.NeighProxyList(0, unix.AF_INET)
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range proxies {
		if ip, ok := netip.AddrFromSlice(p.IP); ok && ip.Unmap() == a {
			p.Flags = netlink.NTF_PROXY
			if err := netlink.NeighDel(&p); err != nil && !errors.Is(err, unix.ENOENT) {
				errs = append(errs, fmt.Errorf("stop answering ARP for %s: %w", a, err))
			}
		}
	}
	return errors.Join(errs...)
}
