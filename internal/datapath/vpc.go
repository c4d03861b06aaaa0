package datapath

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	"sigs.k8s.io/knftables"
)

// DefaultVNI is the VPC the host routes in its main table (api/v1's
// DefaultVNI): its links carry no mark.
const DefaultVNI = 1

// Every other VPC of a host has a routing table of its own (TableOf), a
// packet mark (MarkOf) that its instances' links and its tunnel give what
// they receive, a policy rule that sends marked packets to its table, and
// a connection-tracking zone (its VNI): instances of two VPCs never share
// a route or a connection, whatever their addresses.
const (
	tableBase = 100000
	markMask  = 0xffff0000
	// RulePriority of the VPCs' policy rules: after the local table's
	// (0), before the main table's (32766).
	RulePriority = 100
)

// TableOf is the routing table of VPC vni (the main table for the
// default VPC).
func TableOf(vni int) int {
	if vni == DefaultVNI {
		return unix.RT_TABLE_MAIN
	}
	return tableBase + vni
}

// MarkOf is the packet mark of VPC vni (0 for the default VPC): the VNI in
// the mark's upper 16 bits, so that the lower ones stay free for others
// (virtual services' masquerade bit).
func MarkOf(vni int) uint32 {
	if vni == DefaultVNI {
		return 0
	}
	return uint32(vni) << 16
}

// IsolationTable is the nftables table (family inet: IPv4 and IPv6) of
// network's VPC marks and zones.
func IsolationTable(network string) string { return "eci-net-" + network }

// InetFamily is the family of the isolation and firewall tables (IPv4 and
// IPv6 in one; before IPv6 they were of family ip: DropIPv4Table).
const InetFamily = knftables.InetFamily

// DropIPv4Table deletes table of family ip, an agent's of before IPv6
// (the same name, of family inet now), if it is there.
func DropIPv4Table(ctx context.Context, table string) error {
	nft, err := knftables.New(knftables.IPv4Family, table)
	if err != nil {
		return fmt.Errorf("the old table ip %s: %w", table, err)
	}
	if _, err := nft.List(ctx, "chain"); knftables.IsNotFound(err) {
		return nil
	}
	tx := nft.NewTransaction()
	tx.Delete(&knftables.Table{})
	if err := nft.Run(ctx, tx); err != nil && !knftables.IsNotFound(err) {
		return fmt.Errorf("delete the old table ip %s: %w", table, err)
	}
	return nil
}

// Isolation keeps the host's VPCs apart: the marks and zones of their
// links (one nftables table, whole in one transaction) and their policy
// rules and tables. What belongs to which VPC is read from the kernel: an
// instance's link belongs to the VPC whose table holds its /32 route (this
// package's routes), a tunnel to the VPC its name says; so an agent that
// restarts finds it all again.
type Isolation struct {
	NFT knftables.Interface
	// Network names the agent's network (its tunnels: TunnelDevice).
	Network string
	// Tunnel: the host has tunnels from its address Local; their UDP port
	// takes packets to Local from the other hosts' tunnel IPs alone
	// (SetPeers).
	Tunnel bool
	Local  netip.Addr
}

// prePriority is the isolation's prerouting priority: before IPv4
// defragmentation (-400), so that fragments are reassembled within their
// VPC's zone, never with another VPC's of the same addresses.
const prePriority = knftables.BaseChainPriority("-450")

// TunnelDevice is the VXLAN device of VPC vni on network.
func TunnelDevice(network string, vni int) string { return "vx" + strconv.Itoa(vni) + "-" + network }

// Add gives link (not up yet) the mark and zone of VPC vni, at once, so
// that its first packet is the VPC's.
func (i *Isolation) Add(ctx context.Context, link string, vni int) error {
	if vni <= DefaultVNI {
		return nil
	}
	tx := i.NFT.NewTransaction()
	i.base(tx)
	i.elements(tx, map[string]int{link: vni})
	if err := i.NFT.Run(ctx, tx); err != nil {
		return fmt.Errorf("VPC %d's mark for %s: %w", vni, link, err)
	}
	return i.ensureRules(vni)
}

// Sync writes the whole table from the kernel's routes and tunnels, adds
// the rules of every VPC in use and removes the others'.
func (i *Isolation) Sync(ctx context.Context) error {
	links, err := i.links()
	if err != nil {
		return err
	}
	tx := i.NFT.NewTransaction()
	i.base(tx)
	for _, m := range []string{"vpc-mark", "vpc-zone", "mark-zone"} {
		tx.Flush(&knftables.Map{Name: m})
	}
	i.elements(tx, links)
	if err := i.NFT.Run(ctx, tx); err != nil {
		return fmt.Errorf("VPC marks: %w", err)
	}
	used := map[int]bool{}
	for _, vni := range links {
		used[vni] = true
		if err := i.ensureRules(vni); err != nil {
			return err
		}
	}
	return i.removeRules(used)
}

// base adds the table, maps and chains (idempotent).
func (i *Isolation) base(tx *knftables.Transaction) {
	tx.Add(&knftables.Table{Comment: knftables.PtrTo("eci: the marks and zones of the host's VPCs")})
	tx.Add(&knftables.Map{Name: "vpc-mark", Type: "ifname : mark"})
	tx.Add(&knftables.Map{Name: "vpc-zone", TypeOf: "iifname : ct zone"})
	tx.Add(&knftables.Map{Name: "mark-zone", TypeOf: "meta mark : ct zone"})
	tx.Add(&knftables.Set{Name: "tunnel-peers", Type: "ipv4_addr"})
	// No instance sends into a tunnel: the tunnels' port is the host's, and
	// (with tunnels) the other hosts' alone.
	input := []string{
		fmt.Sprintf("iifname %q udp dport %d drop", InterfacePrefix+"*", VXLANPort),
		// IPv6 from an instance reaches the host at its gateway's address
		// alone (the one on its link), none of the host's others.
		fmt.Sprintf("iifname %q meta nfproto ipv6 fib daddr . iif type != local drop", InterfacePrefix+"*"),
	}
	if i.Tunnel {
		input = append(input, fmt.Sprintf("udp dport %d ip saddr != @tunnel-peers drop", VXLANPort))
		if i.Local.IsValid() {
			input = append(input, fmt.Sprintf("udp dport %d ip daddr != %s drop", VXLANPort, i.Local))
		}
	}
	// IPv6 goes from instance to instance alone, through the tunnels or
	// not: no way out of the VPC (no NAT gateway, EIP or route entry has
	// IPv6 yet) and none in.
	eci := fmt.Sprintf("%q", InterfacePrefix+"*")
	forward6 := []string{
		"meta nfproto ipv6 iifname " + eci + " oifname != " + eci + " " + tunnelMatch("oif", i.Network, true) + " drop",
		"meta nfproto ipv6 oifname " + eci + " iifname != " + eci + " " + tunnelMatch("iif", i.Network, true) + " drop",
		"meta nfproto ipv6 " + tunnelMatch("iif", i.Network, false) + " oifname != " + eci + " drop",
	}
	for _, c := range []struct {
		name  string
		hook  knftables.BaseChainHook
		prio  knftables.BaseChainPriority
		rules []string
	}{
		// Before connection tracking: the link's VPC gives the packet its
		// mark (routing: the VPC's table) and its zone.
		// IPv6 has no reverse-path filter: what an instance sends from an
		// address the host would not route back to its link (in its
		// VPC's table) is dropped here.
		{"prerouting", knftables.PreroutingHook, prePriority, []string{
			"meta mark set iifname map @vpc-mark", "ct zone set iifname map @vpc-zone",
			// Neighbour discovery has nothing to do on an instance's link
			// (the entries are permanent both ways): none from an
			// instance, whose solicitations from made-up link-local
			// addresses would fill the host's neighbour table.
			fmt.Sprintf("iifname %q icmpv6 type { nd-router-solicit, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert, nd-redirect } drop", InterfacePrefix+"*"),
			// Nor from a link-local address (nothing needs one: the
			// neighbour entries are permanent, the routes have global
			// sources), whose answers would fill it too.
			fmt.Sprintf("iifname %q ip6 saddr fe80::/10 drop", InterfacePrefix+"*"),
			fmt.Sprintf("iifname %q meta nfproto ipv6 fib saddr . mark . iif oif missing drop", InterfacePrefix+"*"),
			// Nor does a tunnel bring an instance's IPv6 address that the
			// host routes elsewhere (IPv4's: the tunnel's rp_filter).
			tunnelMatch("iif", i.Network, false) + " meta nfproto ipv6 fib saddr . mark . iif oif missing drop",
		}},
		// The host's own packets to an instance (its answers, marked by
		// fwmark_reflect and tcp_fwmark_accept; probes, marked by the
		// agent) go in their VPC's zone.
		{"output", knftables.OutputHook, knftables.RawPriority, []string{fmt.Sprintf("ct zone set meta mark and %#x map @mark-zone", markMask)}},
		{"input", knftables.InputHook, knftables.FilterPriority, input},
		{"forward", knftables.ForwardHook, knftables.FilterPriority, forward6},
	} {
		tx.Add(&knftables.Chain{Name: c.name, Type: knftables.PtrTo(knftables.FilterType), Hook: knftables.PtrTo(c.hook), Priority: knftables.PtrTo(c.prio)})
		tx.Flush(&knftables.Chain{Name: c.name})
		for _, r := range c.rules {
			tx.Add(&knftables.Rule{Chain: c.name, Rule: r})
		}
	}
}

// Ensure writes the table's maps and chains, IPv6's guards among them,
// before a link with IPv6 is up.
func (i *Isolation) Ensure(ctx context.Context) error {
	tx := i.NFT.NewTransaction()
	i.base(tx)
	if err := i.NFT.Run(ctx, tx); err != nil {
		return fmt.Errorf("the VPCs' table: %w", err)
	}
	return nil
}

// Remove forgets link's mark and zone (a link that is gone).
func (i *Isolation) Remove(ctx context.Context, link string) error {
	tx := i.NFT.NewTransaction()
	found := false
	for _, m := range []string{"vpc-mark", "vpc-zone"} {
		elems, err := i.NFT.ListElements(ctx, "map", m)
		if knftables.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("forget the VPC mark of %s: %w", link, err)
		}
		for _, e := range elems {
			if len(e.Key) == 1 && strings.Trim(e.Key[0], `"`) == link {
				tx.Delete(&knftables.Element{Map: m, Key: e.Key})
				found = true
			}
		}
	}
	if !found {
		return nil
	}
	if err := i.NFT.Run(ctx, tx); err != nil {
		return fmt.Errorf("forget the VPC mark of %s: %w", link, err)
	}
	return nil
}

// SetPeers makes the other hosts' tunnel IPs the only senders to the
// tunnels' port.
func (i *Isolation) SetPeers(ctx context.Context, peers []netip.Addr) error {
	tx := i.NFT.NewTransaction()
	i.base(tx)
	tx.Flush(&knftables.Set{Name: "tunnel-peers"})
	for _, p := range peers {
		tx.Add(&knftables.Element{Set: "tunnel-peers", Key: []string{p.String()}})
	}
	if err := i.NFT.Run(ctx, tx); err != nil {
		return fmt.Errorf("the tunnels' peers: %w", err)
	}
	return nil
}

// elements adds links' marks and zones, and their VPCs' mark-to-zone.
func (i *Isolation) elements(tx *knftables.Transaction, links map[string]int) {
	for link, vni := range links {
		mark := fmt.Sprintf("%#x", MarkOf(vni))
		tx.Add(&knftables.Element{Map: "vpc-mark", Key: []string{fmt.Sprintf("%q", link)}, Value: []string{mark}})
		tx.Add(&knftables.Element{Map: "vpc-zone", Key: []string{fmt.Sprintf("%q", link)}, Value: []string{strconv.Itoa(vni)}})
		tx.Add(&knftables.Element{Map: "mark-zone", Key: []string{mark}, Value: []string{strconv.Itoa(vni)}})
	}
}

// links are the host's links of VPCs other than the default: instances'
// (their /32 route's table) and tunnels (their name).
func (i *Isolation) links() (map[string]int, error) {
	routes, err := netlink.RouteListFiltered(unix.AF_INET, &netlink.Route{Table: unix.RT_TABLE_UNSPEC, Protocol: RouteProtocol},
		netlink.RT_FILTER_TABLE|netlink.RT_FILTER_PROTOCOL)
	if err != nil {
		return nil, fmt.Errorf("instance routes: %w", err)
	}
	byIndex := map[int]int{}
	for _, r := range routes {
		if r.Table > tableBase && r.Table <= tableBase+0xffff && r.LinkIndex > 0 {
			byIndex[r.LinkIndex] = r.Table - tableBase
		}
	}
	all, err := netlink.LinkList()
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	suffix := "-" + i.Network
	for _, l := range all {
		name := l.Attrs().Name
		if vni, ok := byIndex[l.Attrs().Index]; ok && strings.HasPrefix(name, InterfacePrefix) {
			out[name] = vni
		} else if strings.HasPrefix(name, "vx") && strings.HasSuffix(name, suffix) {
			if vni, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(name, "vx"), suffix)); err == nil && vni != DefaultVNI && vni > 0 {
				out[name] = vni
			}
		}
	}
	return out, nil
}

// ensureRules makes VPC vni's policy rule and its table's last route
// (unreachable: a lookup never falls through to the main table).
func (i *Isolation) ensureRules(vni int) error {
	table := TableOf(vni)
	rule := netlink.NewRule()
	rule.Priority, rule.Table = RulePriority, table
	rule.Mark, rule.Mask = MarkOf(vni), knftables.PtrTo(uint32(markMask))
	for _, fam := range []struct {
		family int
		all    netip.Prefix
	}{{unix.AF_INET, netip.MustParsePrefix("0.0.0.0/0")}, {unix.AF_INET6, netip.MustParsePrefix("::/0")}} {
		rule.Family = fam.family
		if err := netlink.RuleAdd(rule); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("policy rule of VPC %d: %w", vni, err)
		}
		stop := &netlink.Route{Table: table, Type: unix.RTN_UNREACHABLE, Dst: ipNet(fam.all), Priority: 4294967295}
		if err := netlink.RouteReplace(stop); err != nil {
			return fmt.Errorf("last route of VPC %d's table: %w", vni, err)
		}
	}
	return nil
}

// removeRules deletes the rules (and tables' last routes) of VPCs not in
// used.
func (i *Isolation) removeRules(used map[int]bool) error {
	for _, fam := range []struct {
		family int
		all    netip.Prefix
	}{{unix.AF_INET, netip.MustParsePrefix("0.0.0.0/0")}, {unix.AF_INET6, netip.MustParsePrefix("::/0")}} {
		rules, err := netlink.RuleList(fam.family)
		if err != nil {
			return err
		}
		for _, r := range rules {
			if r.Priority != RulePriority || r.Table <= tableBase || r.Table > tableBase+0xffff || used[r.Table-tableBase] {
				continue
			}
			if err := netlink.RuleDel(&r); err != nil && !errors.Is(err, unix.ENOENT) {
				return fmt.Errorf("policy rule of table %d: %w", r.Table, err)
			}
			_ = netlink.RouteDel(&netlink.Route{Table: r.Table, Type: unix.RTN_UNREACHABLE, Dst: ipNet(fam.all), Priority: 4294967295})
		}
	}
	return nil
}

// HostSysctls makes the host's own answers to an instance (ICMP, a TCP
// reset, an accepted connection) carry the mark of what they answer, so
// they are routed in the instance's VPC.
func HostSysctls() error {
	for _, k := range []string{"net/ipv4/fwmark_reflect", "net/ipv6/fwmark_reflect", "net/ipv4/tcp_fwmark_accept"} {
		if err := sysctl(k, "1"); err != nil {
			return err
		}
	}
	return nil
}
