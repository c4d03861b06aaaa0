package datapath

import (
	"fmt"
	"net/netip"
	"strconv"

	"sigs.k8s.io/knftables"
)

// natPriority: after the VPCs' marks (prePriority), before defragmentation
// and connection tracking.
const natPriority = knftables.BaseChainPriority("-449")

// table writes the gateway's rules (see NATGateway and EIP): its sets and
// maps, then its chains.
func (n *NATGateway) table(tx *knftables.Transaction, cfg NATConfig, vnis map[int]netip.Addr) {
	tx.Add(&knftables.Table{})
	tx.Delete(&knftables.Table{})
	tx.Add(&knftables.Table{Comment: knftables.PtrTo("eci: the NAT gateways and EIPs of the host's instances")})
	n.elements(tx, cfg, vnis)
	for _, c := range n.chains() {
		tx.Add(&knftables.Chain{Name: c.name, Type: knftables.PtrTo(c.typ), Hook: knftables.PtrTo(c.hook), Priority: knftables.PtrTo(c.prio)})
		for _, r := range c.rules {
			tx.Add(&knftables.Rule{Chain: c.name, Rule: r})
		}
	}
}

// elements adds the sets and maps:
//   - sources: (VPC mark, CIDR) of what may leave: the gateways' vSwitches
//     and the EIPs' instances (/32);
//   - addresses, address-mark, address-zone: what comes back in by the
//     hairpin (the VPCs' hairpin addresses and EIPs) and its VPC;
//   - vpc-address: a VPC's hairpin address (its SNAT);
//   - default-eips, vpc-eips, eip-instance, instance-eip: the EIPs of the
//     default VPC (translated where they arrive) and of the others (on the
//     hairpin), and their instances;
//   - protected-hosts, protected-services (NATProtected);
//   - routed: the default VPC's route entries' destinations;
//   - inside: every vSwitch's (VPC mark, CIDR).
func (n *NATGateway) elements(tx *knftables.Transaction, cfg NATConfig, vnis map[int]netip.Addr) {
	for _, s := range []*knftables.Set{
		{Name: "sources", Type: "mark . ipv4_addr", Flags: []knftables.SetFlag{knftables.IntervalFlag}},
		{Name: "inside", Type: "mark . ipv4_addr", Flags: []knftables.SetFlag{knftables.IntervalFlag}},
		{Name: "addresses", Type: "ipv4_addr"},
		{Name: "default-eips", Type: "ipv4_addr"},
		{Name: "vpc-eips", Type: "ipv4_addr"},
		{Name: "routed", Type: "ipv4_addr", Flags: []knftables.SetFlag{knftables.IntervalFlag}, AutoMerge: knftables.PtrTo(true)},
		{Name: "protected-hosts", Type: "ipv4_addr", Flags: []knftables.SetFlag{knftables.IntervalFlag}, AutoMerge: knftables.PtrTo(true)},
		{Name: "protected-services", Type: "ipv4_addr . inet_service"},
	} {
		tx.Add(s)
	}
	for _, m := range []*knftables.Map{
		{Name: "vpc-address", Type: "mark : ipv4_addr"},
		{Name: "address-mark", Type: "ipv4_addr : mark"},
		{Name: "address-zone", TypeOf: "ip daddr : ct zone"},
		{Name: "eip-instance", Type: "ipv4_addr : ipv4_addr"},
		{Name: "instance-eip", Type: "mark . ipv4_addr : ipv4_addr"},
	} {
		tx.Add(m)
	}
	elem := func(set string, key ...string) { tx.Add(&knftables.Element{Set: set, Key: key}) }
	mapElem := func(m, value string, key ...string) {
		tx.Add(&knftables.Element{Map: m, Key: key, Value: []string{value}})
	}
	for _, h := range cfg.Protected.Hosts {
		elem("protected-hosts", h.String())
	}
	for _, p := range cfg.Protected.Networks {
		elem("protected-hosts", p.Masked().String())
	}
	for _, s := range cfg.Protected.Services {
		elem("protected-services", s.Addr().String(), strconv.Itoa(int(s.Port())))
	}
	for _, r := range cfg.Routes {
		elem("routed", r.Destination.Masked().String())
	}
	for _, v := range cfg.Inside {
		elem("inside", markText(v.VNI), v.CIDR.Masked().String())
	}
	for _, s := range cfg.Sources {
		elem("sources", markText(s.VNI), s.CIDR.Masked().String())
	}
	back := func(addr netip.Addr, vni int) {
		elem("addresses", addr.String())
		mapElem("address-mark", markText(vni), addr.String())
		mapElem("address-zone", strconv.Itoa(vni), addr.String())
	}
	for vni, addr := range vnis {
		mapElem("vpc-address", addr.String(), markText(vni))
		back(addr, vni)
	}
	for _, e := range cfg.EIPs {
		if !covered(cfg.Sources, e) {
			elem("sources", markText(e.VNI), netip.PrefixFrom(e.Instance, 32).String())
		}
		mapElem("eip-instance", e.Instance.String(), e.Addr.String())
		mapElem("instance-eip", e.Addr.String(), markText(e.VNI), e.Instance.String())
		if e.VNI <= DefaultVNI {
			elem("default-eips", e.Addr.String())
			continue
		}
		elem("vpc-eips", e.Addr.String())
		back(e.Addr, e.VNI)
	}
}

// covered tells whether a source of e's VPC holds its instance (the
// concatenated interval set takes no overlapping elements).
func covered(sources []NATSource, e EIP) bool {
	for _, s := range sources {
		if max(s.VNI, DefaultVNI) == max(e.VNI, DefaultVNI) && s.CIDR.Contains(e.Instance) {
			return true
		}
	}
	return false
}

func markText(vni int) string { return fmt.Sprintf("%#x", MarkOf(max(vni, DefaultVNI))) }

type natChain struct {
	name  string
	typ   knftables.BaseChainType
	hook  knftables.BaseChainHook
	prio  knftables.BaseChainPriority
	rules []string
}

// chains are the gateway's base chains and their rules.
func (n *NATGateway) chains() []natChain {
	vName, uName := NATDevices(n.Network)
	v, u := fmt.Sprintf("%q", vName), fmt.Sprintf("%q", uName)
	inst, vpc := fmt.Sprintf("%q", InterfacePrefix+"*"), fmt.Sprintf("meta mark & %#x", markMask)
	// Where packets leave the host (not into an instance, a tunnel or the
	// hairpin): the default VPC's are translated there.
	out := "iifname " + inst + " oifname != " + inst + " " + tunnelMatch("oif", n.Network, true) + " oifname != " + v + " "
	return []natChain{
		{"prerouting", knftables.FilterType, knftables.PreroutingHook, natPriority, []string{
			// Round the hairpin: the host's own traffic, in the main table.
			"iifname " + u + " meta mark set 0",
			// Back in: only to a VPC's address or EIP, in its VPC.
			"iifname " + v + " ip daddr != @addresses drop",
			"iifname " + v + " meta mark set ip daddr map @address-mark",
			"iifname " + v + " ct zone set ip daddr map @address-zone",
		}},
		{"to-eips", knftables.NATType, knftables.PreroutingHook, knftables.DNATPriority, []string{
			// An EIP of the default VPC where it arrives from outside (not
			// from an instance, a tunnel or the hairpin, never marked for
			// another VPC); another VPC's once round the hairpin, in its zone.
			"iifname != " + inst + " " + tunnelMatch("iif", n.Network, true) + " iifname != " + v + " " + vpc + " 0 ip daddr @default-eips dnat ip to ip daddr map @eip-instance",
			"iifname " + v + " ip daddr @vpc-eips dnat ip to ip daddr map @eip-instance",
		}},
		{"forward", knftables.FilterType, knftables.ForwardHook, knftables.FilterPriority, []string{
			// To an EIP from outside: never from an address of the VPCs
			// (which security groups may trust); answers to what its
			// instance opened are not checked.
			"ct direction original ct original ip daddr @default-eips " + vpc + " . ip saddr @inside drop",
			"ct direction original ct original ip daddr @vpc-eips " + vpc + " . ip saddr @inside drop",
			// Out: only the gateways' vSwitches and the EIPs' instances.
			"oifname " + v + " " + vpc + " . ip saddr != @sources drop",
			// Round the hairpin: to the underlay, never into a VPC; no
			// tunnel packet (with the host's address, it would pass for a
			// host's).
			"iifname " + u + " udp dport " + strconv.Itoa(VXLANPort) + " drop",
			out + vpc + " . ip saddr @sources udp dport " + strconv.Itoa(VXLANPort) + " drop",
			// Nothing untracked goes out (it would be neither translated
			// nor checked as what an instance opens).
			"iifname " + u + " ct state invalid drop",
			out + vpc + " . ip saddr @sources ct state invalid drop",
			"iifname " + inst + " oifname " + u + " drop",
			"iifname " + u + " oifname " + inst + " drop",
			"iifname " + u + " " + tunnelMatch("oif", n.Network, false) + " drop",
			"iifname " + u + " oifname " + v + " drop",
			// Never the pool's own hosts and server, from the host's
			// address or an EIP (the default VPC's too).
			// (What they open: their answers to what a host opened to an
			// EIP pass.)
			"iifname " + u + " ct direction original ip daddr @protected-hosts drop",
			"iifname " + u + " ct direction original ip daddr . tcp dport @protected-services drop",
			"iifname " + inst + " ct direction original " + vpc + " . ip saddr @sources ip daddr @protected-hosts drop",
			"iifname " + inst + " ct direction original " + vpc + " . ip saddr @sources ip daddr . tcp dport @protected-services drop",
			// Back in: answers, and what comes to an EIP.
			"oifname " + u + " ip daddr @vpc-eips accept",
			"oifname " + u + " ct state != { established, related } drop",
		}},
		{"input", knftables.FilterType, knftables.InputHook, knftables.FilterPriority, []string{
			"iifname " + u + " drop",
			"iifname " + v + " drop",
		}},
		{"postrouting", knftables.NATType, knftables.PostroutingHook, knftables.SNATPriority, []string{
			"oifname " + v + " snat ip to " + vpc + " . ip saddr map @instance-eip",
			"oifname " + v + " snat ip to " + vpc + " map @vpc-address",
			"iifname " + u + " ip saddr @vpc-eips accept",
			// Ports above 1023: no server takes the host's privileged ports
			// from an instance (NFS's "secure" exports).
			"iifname " + u + " meta l4proto { tcp, udp } masquerade to :1024-65535",
			"iifname " + u + " masquerade",
			// The default VPC's route entries: routed as they are.
			out + "ip daddr @routed accept",
			out + "snat ip to " + vpc + " . ip saddr map @instance-eip",
			out + vpc + " . ip saddr @sources meta l4proto { tcp, udp } masquerade to :1024-65535",
			out + vpc + " . ip saddr @sources masquerade",
		}},
	}
}
