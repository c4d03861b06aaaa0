package datapath

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
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
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), nil
}

// nextHop is the address both ends of the hairpin route to (VNI 1's,
// which no VPC's address is).
func (n *NATGateway) nextHop() netip.Addr { return n.natRange().Addr().Next() }

// Sync makes the hairpin, the routes of every VPC with sources, and the
// whole table (one transaction).
func (n *NATGateway) Sync(ctx context.Context, sources []NATSource, protected NATProtected) error {
	vpcSide, underlaySide, err := n.hairpin()
	if err != nil {
		return err
	}
	vnis := map[int]netip.Addr{}
	for _, s := range sources {
		if s.VNI > DefaultVNI {
			a, err := n.Address(s.VNI)
			if err != nil {
				return err
			}
			vnis[s.VNI] = a
		}
	}
	if err := n.routes(vpcSide, underlaySide, vnis); err != nil {
		return err
	}
	tx := n.NFT.NewTransaction()
	n.table(tx, sources, vnis, protected)
	if err := n.NFT.Run(ctx, tx); err != nil {
		return fmt.Errorf("NAT gateways: %w", err)
	}
	return nil
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
// to its hairpin address (main table).
func (n *NATGateway) routes(vpcSide, underlaySide netlink.Link, vnis map[int]netip.Addr) error {
	hop := n.nextHop().AsSlice()
	want := map[string]*netlink.Route{}
	for vni, addr := range vnis {
		for _, r := range []*netlink.Route{
			{Table: TableOf(vni), Dst: ipNet(netip.MustParsePrefix("0.0.0.0/0")), Gw: hop, LinkIndex: vpcSide.Attrs().Index},
			{Table: unix.RT_TABLE_MAIN, Dst: ipNet(netip.PrefixFrom(addr, 32)), Gw: hop, LinkIndex: underlaySide.Attrs().Index},
		} {
			r.Flags, r.Protocol = int(netlink.FLAG_ONLINK), RouteProtocolNAT
			want[routeKey(r)] = r
		}
	}
	have, err := netlink.RouteListFiltered(unix.AF_INET, &netlink.Route{Table: unix.RT_TABLE_UNSPEC, Protocol: RouteProtocolNAT},
		netlink.RT_FILTER_TABLE|netlink.RT_FILTER_PROTOCOL)
	if err != nil {
		return fmt.Errorf("NAT routes: %w", err)
	}
	var errs []error
	for _, r := range have {
		if w, ok := want[routeKey(&r)]; ok && r.LinkIndex == w.LinkIndex {
			delete(want, routeKey(&r))
			continue
		}
		if err := netlink.RouteDel(&r); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("NAT route %s: %w", r, err))
		}
	}
	for _, r := range want {
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

// natPriority: after the VPCs' marks (prePriority), before defragmentation
// and connection tracking.
const natPriority = knftables.BaseChainPriority("-449")

// table writes the gateway's rules (see NATGateway).
func (n *NATGateway) table(tx *knftables.Transaction, sources []NATSource, vnis map[int]netip.Addr, protected NATProtected) {
	vName, uName := NATDevices(n.Network)
	tx.Add(&knftables.Table{})
	tx.Delete(&knftables.Table{})
	tx.Add(&knftables.Table{Comment: knftables.PtrTo("eci: the NAT gateways of the host's VPCs")})
	tx.Add(&knftables.Set{Name: "sources", Type: "mark . ipv4_addr", Flags: []knftables.SetFlag{knftables.IntervalFlag}})
	tx.Add(&knftables.Map{Name: "vpc-address", Type: "mark : ipv4_addr"})
	tx.Add(&knftables.Set{Name: "addresses", Type: "ipv4_addr"})
	tx.Add(&knftables.Map{Name: "address-mark", Type: "ipv4_addr : mark"})
	tx.Add(&knftables.Map{Name: "address-zone", TypeOf: "ip daddr : ct zone"})
	tx.Add(&knftables.Set{Name: "protected-hosts", Type: "ipv4_addr"})
	tx.Add(&knftables.Set{Name: "protected-services", Type: "ipv4_addr . inet_service"})
	for _, h := range protected.Hosts {
		tx.Add(&knftables.Element{Set: "protected-hosts", Key: []string{h.String()}})
	}
	for _, s := range protected.Services {
		tx.Add(&knftables.Element{Set: "protected-services", Key: []string{s.Addr().String(), strconv.Itoa(int(s.Port()))}})
	}
	for _, s := range sources {
		tx.Add(&knftables.Element{Set: "sources", Key: []string{fmt.Sprintf("%#x", MarkOf(max(s.VNI, DefaultVNI))), s.CIDR.Masked().String()}})
	}
	for vni, addr := range vnis {
		mark := fmt.Sprintf("%#x", MarkOf(vni))
		tx.Add(&knftables.Element{Map: "vpc-address", Key: []string{mark}, Value: []string{addr.String()}})
		tx.Add(&knftables.Element{Set: "addresses", Key: []string{addr.String()}})
		tx.Add(&knftables.Element{Map: "address-mark", Key: []string{addr.String()}, Value: []string{mark}})
		tx.Add(&knftables.Element{Map: "address-zone", Key: []string{addr.String()}, Value: []string{strconv.Itoa(vni)}})
	}
	v, u := fmt.Sprintf("%q", vName), fmt.Sprintf("%q", uName)
	inst, vpc := fmt.Sprintf("%q", InterfacePrefix+"*"), fmt.Sprintf("meta mark & %#x", markMask)
	for _, c := range []struct {
		name  string
		typ   knftables.BaseChainType
		hook  knftables.BaseChainHook
		prio  knftables.BaseChainPriority
		rules []string
	}{
		{"prerouting", knftables.FilterType, knftables.PreroutingHook, natPriority, []string{
			// Round the hairpin: the host's own traffic, in the main table.
			"iifname " + u + " meta mark set 0",
			// Back in: only answers to a VPC's address, in its VPC.
			"iifname " + v + " ip daddr != @addresses drop",
			"iifname " + v + " meta mark set ip daddr map @address-mark",
			"iifname " + v + " ct zone set ip daddr map @address-zone",
		}},
		{"forward", knftables.FilterType, knftables.ForwardHook, knftables.FilterPriority, []string{
			// Out: only the gateways' vSwitches.
			"oifname " + v + " " + vpc + " . ip saddr != @sources drop",
			// Round the hairpin: to the underlay, never into a VPC.
			"iifname " + u + " oifname " + inst + " drop",
			"iifname " + u + " oifname \"vx*\" drop",
			"iifname " + u + " oifname " + v + " drop",
			// Never the pool's own hosts and server, from the host's
			// address (the default VPC's gateways' too).
			"iifname " + u + " ip daddr @protected-hosts drop",
			"iifname " + u + " ip daddr . tcp dport @protected-services drop",
			"iifname " + inst + " " + vpc + " . ip saddr @sources ip daddr @protected-hosts drop",
			"iifname " + inst + " " + vpc + " . ip saddr @sources ip daddr . tcp dport @protected-services drop",
			// Back in: answers alone.
			"oifname " + u + " ct state != { established, related } drop",
		}},
		{"input", knftables.FilterType, knftables.InputHook, knftables.FilterPriority, []string{
			"iifname " + u + " drop",
			"iifname " + v + " drop",
		}},
		{"postrouting", knftables.NATType, knftables.PostroutingHook, knftables.SNATPriority, []string{
			"oifname " + v + " snat ip to " + vpc + " map @vpc-address",
			"iifname " + u + " masquerade",
			// The default VPC's, where they leave the host.
			"iifname " + inst + " oifname != " + inst + " oifname != \"vx*\" oifname != " + v + " " + vpc + " . ip saddr @sources masquerade",
		}},
	} {
		tx.Add(&knftables.Chain{Name: c.name, Type: knftables.PtrTo(c.typ), Hook: knftables.PtrTo(c.hook), Priority: knftables.PtrTo(c.prio)})
		for _, r := range c.rules {
			tx.Add(&knftables.Rule{Chain: c.name, Rule: r})
		}
	}
}

// RemoveNAT removes network's NAT gateway: its table, hairpin and routes
// (an agent whose network has no gateway any more).
func RemoveNAT(ctx context.Context, nft knftables.Interface, network string) error {
	tx := nft.NewTransaction()
	tx.Add(&knftables.Table{})
	tx.Delete(&knftables.Table{})
	var errs []error
	if err := nft.Run(ctx, tx); err != nil {
		errs = append(errs, fmt.Errorf("NAT table: %w", err))
	}
	vName, _ := NATDevices(network)
	if l, err := netlink.LinkByName(vName); err == nil {
		if err := netlink.LinkDel(l); err != nil {
			errs = append(errs, fmt.Errorf("NAT hairpin: %w", err))
		}
	}
	return errors.Join(errs...)
}
