package datapath

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	"sigs.k8s.io/knftables"
)

// NATTable is the nftables table (family ip) of network's NAT gateways.
func NATTable(network string) string { return "eci-nat-" + network }

// NATDevices are the ends of network's NAT hairpin: VPCSide, where the
// VPCs' packets to the outside leave (and their answers come back in),
// UnderlaySide, where they come in again as the host's own traffic.
func NATDevices(network string) (vpcSide, underlaySide string) {
	return "natv-" + network, "natu-" + network
}

// DefaultNATRange holds the VPCs' addresses on the hairpin (the range's
// address plus the VPC's VNI); none of them leaves the host.
var DefaultNATRange = netip.MustParsePrefix("169.254.0.0/16")

// reservedLinkLocal holds clouds' link-local services (metadata at .254,
// DNS at .253, NTP at .123): never a VPC's hairpin address.
var reservedLinkLocal = netip.MustParsePrefix("169.254.169.0/24")

// RouteProtocolNAT marks the NAT gateway's routes (`ip route show proto 237`).
const RouteProtocolNAT netlink.RouteProtocol = 237

// NATSource is a vSwitch whose instances reach the outside through the
// host's NAT gateway.
type NATSource struct {
	VNI  int
	CIDR netip.Prefix
}

// NATProtected is what no packet through a NAT gateway may reach: the pool's
// hosts (all of their ports) and the server's API (its address and port),
// which would take it for the host whose address it has.
type NATProtected struct {
	Hosts    []netip.Addr
	Services []netip.AddrPort // TCP
	// Networks the operator names (the storage servers the hosts mount
	// volumes from, the hosts' management network).
	Networks []netip.Prefix
}

// NATConfig is what a host's gateway lets through.
type NATConfig struct {
	Sources   []NATSource
	Protected NATProtected
	// EIPs of the host's instances.
	EIPs []EIP
	// Routes of the default VPC's route table: routed, never translated.
	Routes []RouteEntry
	// Inside are every vSwitch of the pool (their VPC and CIDR): what
	// comes to an EIP from outside never has their sources.
	Inside []NATSource
}

// RouteEntry routes Destination through NextHop (main table).
type RouteEntry struct {
	Destination netip.Prefix
	NextHop     netip.Addr
}

// EIP is an address of the underlay an instance of the host is reached at
// from outside its VPC (DNAT), and leaves from (SNAT).
type EIP struct {
	Addr     netip.Addr
	Instance netip.Addr
	VNI      int
}

// NATGateway lets instances of the vSwitches that have one reach addresses
// outside their VPC, from the host's own address (masquerade), and nothing
// outside reach them.
//
// The default VPC's packets leave by the main table's routes: they are
// masqueraded where they leave. Another VPC's, routed in its own table and
// tracked in its own conntrack zone, can't be: the answers come back to the
// host's address without a VPC to find their connection in. So they go
// round a hairpin of the host's own (a veth pair whose ends are both the
// host's, NATDevices): leaving by its VPC side (the VPC table's default
// route), they are given their VPC's address on the hairpin (NATRange plus
// the VNI, in the VPC's zone); coming in again on the underlay side, as
// new packets without a mark in zone 0, they are masqueraded like the
// host's own. Answers take the way back: the host's address to the VPC's
// hairpin address (zone 0), out the underlay side, in by the VPC side,
// where the address gives them the VPC's mark and zone again, and to the
// instance. Packets that came round the hairpin never enter a VPC, a
// tunnel or the host itself.
type NATGateway struct {
	NFT     knftables.Interface
	Network string
	// Range holds the VPCs' hairpin addresses (DefaultNATRange when not
	// valid).
	Range netip.Prefix
	// Warn hears of what one EIP can't have (the others are served);
	// nil: Sync returns it.
	Warn func(error)
}

func (n *NATGateway) natRange() netip.Prefix {
	if n.Range.IsValid() {
		return n.Range.Masked()
	}
	return DefaultNATRange
}

// Address is VPC vni's address on the hairpin.
func (n *NATGateway) Address(vni int) (netip.Addr, error) {
	r := n.natRange()
	if vni <= DefaultVNI || r.Addr().BitLen()-r.Bits() < 31 && vni >= 1<<(r.Addr().BitLen()-r.Bits()) {
		return netip.Addr{}, fmt.Errorf("VPC %d has no address in the NAT range %s", vni, r)
	}
	a := r.Addr().As4()
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	v += uint32(vni)
	out := netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
	if reservedLinkLocal.Contains(out) {
		return netip.Addr{}, fmt.Errorf("VPC %d's NAT address %s is a cloud's (metadata, DNS, NTP): its gateway is not served", vni, out)
	}
	return out, nil
}

// nextHop is the address both ends of the hairpin route to (VNI 1's,
// which no VPC's address is).
func (n *NATGateway) nextHop() netip.Addr { return n.natRange().Addr().Next() }

// Sync makes the hairpin, the routes of every VPC with sources or EIPs,
// the EIPs' answers to ARP, and the whole table (one transaction).
func (n *NATGateway) Sync(ctx context.Context, cfg NATConfig) error {
	vpcSide, underlaySide, err := n.hairpin()
	if err != nil {
		return err
	}
	// What one EIP, VPC or route entry can't have is said (Warn); the
	// others are served.
	cfg.EIPs, err = n.usableEIPs(cfg.EIPs)
	if err != nil {
		return err
	}
	vnis := map[int]netip.Addr{}
	for _, vni := range slices.Concat(sourceVNIs(cfg.Sources), eipVNIs(cfg.EIPs)) {
		if vni > DefaultVNI {
			a, err := n.Address(vni)
			if err != nil {
				n.warn(err)
				continue
			}
			vnis[vni] = a
		}
	}
	cfg = withVPCs(cfg, vnis)
	var errs []error
	// ARP first: the stale EIPs are known by their routes, kept while
	// their answers could not be taken back.
	kept, err := n.proxyARP(underlaySide, cfg.EIPs)
	if err != nil {
		errs = append(errs, err)
	}
	if err := n.routes(vpcSide, underlaySide, vnis, cfg, kept); err != nil {
		errs = append(errs, err)
	}
	tx := n.NFT.NewTransaction()
	n.table(tx, cfg, vnis)
	if err := n.NFT.Run(ctx, tx); err != nil {
		errs = append(errs, fmt.Errorf("NAT gateways: %w", err))
	}
	return errors.Join(errs...)
}

// warn hears of what one EIP, VPC or route entry can't have.
func (n *NATGateway) warn(err error) {
	if n.Warn != nil {
		n.Warn(err)
	}
}

// withVPCs is cfg without the sources and EIPs of VPCs that have no
// hairpin address (vnis; the default VPC needs none).
func withVPCs(cfg NATConfig, vnis map[int]netip.Addr) NATConfig {
	served := func(vni int) bool { _, ok := vnis[vni]; return vni <= DefaultVNI || ok }
	cfg.Sources = slices.DeleteFunc(slices.Clone(cfg.Sources), func(s NATSource) bool { return !served(s.VNI) })
	cfg.EIPs = slices.DeleteFunc(slices.Clone(cfg.EIPs), func(e EIP) bool { return !served(e.VNI) })
	return cfg
}

func sourceVNIs(sources []NATSource) []int {
	out := make([]int, 0, len(sources))
	for _, s := range sources {
		out = append(out, s.VNI)
	}
	return out
}

// hairpin makes (or finds) the veth pair, each end's neighbour entry for
// the next hop naming the other's MAC.
func (n *NATGateway) hairpin() (vpcSide, underlaySide netlink.Link, err error) {
	vName, uName := NATDevices(n.Network)
	if len(uName) > 15 {
		return nil, nil, fmt.Errorf("NAT gateway: network name %q too long for %s (15 characters at most)", n.Network, uName)
	}
	v, errV := netlink.LinkByName(vName)
	u, errU := netlink.LinkByName(uName)
	if errV != nil || errU != nil {
		if v != nil {
			_ = netlink.LinkDel(v)
		}
		if u != nil {
			_ = netlink.LinkDel(u)
		}
		veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: vName, MTU: 65535}, PeerName: uName}
		if err := netlink.LinkAdd(veth); err != nil {
			return nil, nil, fmt.Errorf("NAT hairpin %s: %w", vName, err)
		}
		if v, err = netlink.LinkByName(vName); err != nil {
			return nil, nil, err
		}
		if u, err = netlink.LinkByName(uName); err != nil {
			return nil, nil, err
		}
		if err := netlink.LinkSetMTU(u, 65535); err != nil {
			return nil, nil, fmt.Errorf("NAT hairpin %s: %w", uName, err)
		}
	}
	for _, l := range []netlink.Link{v, u} {
		name := l.Attrs().Name
		_ = sysctl("net/ipv6/conf/"+name+"/disable_ipv6", "1")
		// The VPC side's answers are checked against their VPC's table.
		if err := sysctl("net/ipv4/conf/"+name+"/src_valid_mark", "1"); err != nil {
			return nil, nil, err
		}
		if err := netlink.LinkSetUp(l); err != nil {
			return nil, nil, fmt.Errorf("%s up: %w", name, err)
		}
	}
	hop := n.nextHop().AsSlice()
	for _, pair := range [][2]netlink.Link{{v, u}, {u, v}} {
		ne := &netlink.Neigh{LinkIndex: pair[0].Attrs().Index, Family: unix.AF_INET, State: netlink.NUD_PERMANENT, IP: hop, HardwareAddr: pair[1].Attrs().HardwareAddr}
		if err := netlink.NeighSet(ne); err != nil {
			return nil, nil, fmt.Errorf("next hop of %s: %w", pair[0].Attrs().Name, err)
		}
	}
	return v, u, EnableForwarding()
}

// routes makes exactly the gateway's routes: each VPC's default route to
// the hairpin (in its table; before its unreachable one), and the way back
// to its hairpin address and its EIPs (main table).
func (n *NATGateway) routes(vpcSide, underlaySide netlink.Link, vnis map[int]netip.Addr, cfg NATConfig, kept []netip.Addr) error {
	hop := n.nextHop().AsSlice()
	want := map[string]*netlink.Route{}
	add := func(r *netlink.Route) {
		r.Flags, r.Protocol, r.Gw = int(netlink.FLAG_ONLINK), RouteProtocolNAT, hop
		want[routeKey(r)] = r
	}
	for vni, addr := range vnis {
		add(&netlink.Route{Table: TableOf(vni), Dst: ipNet(netip.MustParsePrefix("0.0.0.0/0")), LinkIndex: vpcSide.Attrs().Index})
		add(&netlink.Route{Table: unix.RT_TABLE_MAIN, Dst: ipNet(netip.PrefixFrom(addr, 32)), LinkIndex: underlaySide.Attrs().Index})
	}
	for _, a := range slices.Concat(eipAddrs(cfg.EIPs), kept) {
		add(&netlink.Route{Table: unix.RT_TABLE_MAIN, Dst: ipNet(netip.PrefixFrom(a, 32)), LinkIndex: underlaySide.Attrs().Index})
	}
	for _, r := range cfg.Routes {
		// Through the next hop's own network (the kernel finds its link).
		want[routeKey(&netlink.Route{Table: unix.RT_TABLE_MAIN, Dst: ipNet(r.Destination.Masked())})] = &netlink.Route{
			Table: unix.RT_TABLE_MAIN, Dst: ipNet(r.Destination.Masked()), Gw: r.NextHop.AsSlice(), Protocol: RouteProtocolNAT}
	}
	have, err := netlink.RouteListFiltered(unix.AF_INET, &netlink.Route{Table: unix.RT_TABLE_UNSPEC, Protocol: RouteProtocolNAT},
		netlink.RT_FILTER_TABLE|netlink.RT_FILTER_PROTOCOL)
	if err != nil {
		return fmt.Errorf("NAT routes: %w", err)
	}
	var errs []error
	for _, r := range have {
		if w, ok := want[routeKey(&r)]; ok && (r.LinkIndex == w.LinkIndex || w.LinkIndex == 0) && r.Gw.Equal(w.Gw) {
			delete(want, routeKey(&r))
			continue
		}
		if err := netlink.RouteDel(&r); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("NAT route %s: %w", r, err))
		}
	}
	for _, r := range want {
		if r.LinkIndex == 0 {
			// A route entry's: never over a route of the host's own (the
			// kernel's to its networks, an operator's).
			if err := netlink.RouteAdd(r); err != nil {
				n.warn(fmt.Errorf("route entry %s via %s not routed (a route of the host's own has its destination?): %w", r.Dst, r.Gw, err))
			}
			continue
		}
		if err := netlink.RouteReplace(r); err != nil {
			errs = append(errs, fmt.Errorf("NAT route %s: %w", r, err))
		}
	}
	return errors.Join(errs...)
}

func routeKey(r *netlink.Route) string {
	dst := "0.0.0.0/0"
	if r.Dst != nil {
		dst = r.Dst.String()
	}
	return strconv.Itoa(r.Table) + " " + dst
}
