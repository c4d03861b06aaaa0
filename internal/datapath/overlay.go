package datapath

import (
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// VXLANPort is the UDP port of the tunnels between hosts (IANA's VXLAN).
const VXLANPort = 4789

// VXLANOverhead is what the tunnel adds to a packet (outer IPv4, UDP,
// VXLAN and Ethernet headers): an instance's link is that much smaller than
// the underlay's.
const VXLANOverhead = 50

// Overlay is the host's tunnel to the other hosts of the pool: one VXLAN
// device, in the kernel, through which the host routes every instance that
// another host runs (a /32 route each, as it routes its own to their
// links). Nothing is learned from the wire: the routes, the neighbour
// entries (an instance's address to its host's tunnel MAC) and the
// forwarding entries (that MAC to the host's tunnel IP) all come from the
// server's view of the pool, so an instance can't redirect another's
// traffic by what it sends.
type Overlay struct {
	// Device is the VXLAN device's name, VNI its network identifier.
	Device string
	VNI    int
	// Local is this host's tunnel IP (its address on the underlay).
	Local netip.Addr
	// Table holds the routes (TableOf the VNI's VPC).
	Table int
	// MTU of the device: the underlay's less VXLANOverhead.
	MTU int
}

// Remote is an instance that another host runs.
type Remote struct {
	IP   netip.Addr // the instance's address
	Host netip.Addr // its host's tunnel IP
}

// TunnelGroup is the interface group (`ip link set ... group`) of the
// tunnels of network: the rules of its tables know its tunnels by it
// (`iifgroup`), so that no other interface passes for one whatever its
// name (another product's VXLAN device, vxlan.calico). 0x0ec and 20
// bits of the network name's FNV-1a hash (below 2^31: iproute2 reads a
// group as a signed int).
func TunnelGroup(network string) uint32 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(network))
	return 0x0ec00000 | h.Sum32()&0xfffff
}

// tunnelMatch is a rule's match of the packets that come in (dir "iif")
// or go out ("oif") through a tunnel of network, or (not) that do not.
func tunnelMatch(dir, network string, not bool) string {
	op := ""
	if not {
		op = "!= "
	}
	return fmt.Sprintf("meta %sgroup %s%#x", dir, op, TunnelGroup(network))
}

// networkOf is the network of tunnel device dev (TunnelDevice).
func networkOf(dev string) string {
	_, network, _ := strings.Cut(dev, "-")
	return network
}

// TunnelMAC is the MAC address of the tunnel device of the host whose
// tunnel IP is ip: locally administered, derived from the address, so that
// hosts need not tell each other theirs.
func TunnelMAC(ip netip.Addr) net.HardwareAddr {
	b := ip.As4()
	return net.HardwareAddr{0x02, 0xec, b[0], b[1], b[2], b[3]}
}

// Ensure makes the device (or checks it) and brings it up.
func (o *Overlay) Ensure() error {
	if !o.Local.Is4() {
		return fmt.Errorf("tunnel IP %s: only IPv4 is served", o.Local)
	}
	want := &netlink.Vxlan{
		LinkAttrs: netlink.LinkAttrs{Name: o.Device, MTU: o.MTU, HardwareAddr: TunnelMAC(o.Local)},
		VxlanId:   o.VNI, SrcAddr: o.Local.AsSlice(), Port: VXLANPort, Learning: false,
	}
	link, err := netlink.LinkByName(o.Device)
	if err == nil {
		vx, ok := link.(*netlink.Vxlan)
		if !ok || vx.VxlanId != o.VNI || !vx.SrcAddr.Equal(o.Local.AsSlice()) || vx.Port != VXLANPort || vx.Learning {
			// Made by another configuration: made again.
			if err := netlink.LinkDel(link); err != nil {
				return fmt.Errorf("tunnel %s: %w", o.Device, err)
			}
			link = nil
		}
	} else if !errors.As(err, new(netlink.LinkNotFoundError)) {
		return fmt.Errorf("tunnel %s: %w", o.Device, err)
	} else {
		link = nil
	}
	if link == nil {
		if err := netlink.LinkAdd(want); err != nil {
			return fmt.Errorf("tunnel %s (VXLAN %d from %s): %w", o.Device, o.VNI, o.Local, err)
		}
		if link, err = netlink.LinkByName(o.Device); err != nil {
			return fmt.Errorf("tunnel %s: %w", o.Device, err)
		}
	}
	if group := TunnelGroup(networkOf(o.Device)); link.Attrs().Group != group {
		if err := netlink.LinkSetGroup(link, int(group)); err != nil {
			return fmt.Errorf("tunnel %s group %#x: %w", o.Device, group, err)
		}
	}
	if link.Attrs().MTU != o.MTU {
		if err := netlink.LinkSetMTU(link, o.MTU); err != nil {
			return fmt.Errorf("tunnel %s MTU %d: %w", o.Device, o.MTU, err)
		}
	}
	if err := o.configure(); err != nil {
		return err
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return fmt.Errorf("tunnel %s up: %w", o.Device, err)
	}
	return EnableForwarding()
}

// configure sets the device's sysctls (the device is down) and the policy
// rule of its own packets.
func (o *Overlay) configure() error {
	// What arrives through another VPC's tunnel claims an instance of the
	// host it came from: strict reverse-path filtering holds it to the /32
	// routes. The default VPC's also carries what its route table's
	// networks (a real node's pods) send to an instance through the host
	// they reach first, which checked their source where they entered
	// (datapath.Firewall): none there (the kernel's loose check fails on a
	// link without an address, as a tunnel is, for a source routed
	// elsewhere; net.ipv4.conf.all.rp_filter must then be 0 too).
	rp := "1"
	if o.VNI <= DefaultVNI {
		rp = "0"
	}
	if err := sysctl("net/ipv4/conf/"+o.Device+"/rp_filter", rp); err != nil {
		return err
	}
	if o.Table != 0 && o.Table != unix.RT_TABLE_MAIN {
		if err := sysctl("net/ipv4/conf/"+o.Device+"/src_valid_mark", "1"); err != nil {
			return err
		}
		// The tunnel's own packets keep the inner packet's mark (the
		// kernel routes them with it): from this host's tunnel IP, made
		// here, they are routed in the main table. No instance sends from
		// that address (the reverse-path filter).
		rule := netlink.NewRule()
		rule.Priority, rule.Table, rule.Family = RulePriority-1, unix.RT_TABLE_MAIN, unix.AF_INET
		rule.Src, rule.IifName = ipNet(netip.PrefixFrom(o.Local, 32)), "lo"
		if err := netlink.RuleAdd(rule); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("policy rule of the tunnel's packets: %w", err)
		}
	}
	// IPv6 on: the instances' IPv6 addresses are routed through it too
	// (from instance to instance alone: Isolation), with entries of the
	// server's, no router advertisements and no autoconf address.
	if !hostHasIPv6() {
		return nil // (ipv6.disable=1: the instances have none either)
	}
	return enableIPv6(o.Device)
}

// Sync makes the device's routes, neighbour and forwarding entries exactly
// remotes' (a remote on this host's own tunnel IP is left out): what is
// missing or different is written, what is no longer wanted deleted.
func (o *Overlay) Sync(remotes []Remote) error {
	link, err := netlink.LinkByName(o.Device)
	if err != nil {
		return fmt.Errorf("tunnel %s: %w", o.Device, err)
	}
	idx := link.Attrs().Index
	own, err := o.ownInstances()
	if err != nil {
		return err
	}
	hosts := map[netip.Addr]bool{}
	ips := map[netip.Addr]netip.Addr{}
	for _, r := range remotes {
		// An address this host routes to an instance's link is that
		// instance's, whatever a view that lags behind says.
		if r.Host == o.Local || !r.IP.IsGlobalUnicast() || r.IP.Is4In6() || !r.Host.Is4() || own[r.IP] {
			continue
		}
		hosts[r.Host] = true
		ips[r.IP] = r.Host
	}
	if err := o.syncForwarding(idx, hosts); err != nil {
		return err
	}
	if err := o.syncNeighbours(idx, ips); err != nil {
		return err
	}
	return o.syncRoutes(idx, ips)
}

// ownInstances are the addresses the table routes to this host's
// instances' links.
func (o *Overlay) ownInstances() (map[netip.Addr]bool, error) {
	routes, err := netlink.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Protocol: RouteProtocol, Table: o.table()},
		netlink.RT_FILTER_PROTOCOL|netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, fmt.Errorf("routes of table %d: %w", o.table(), err)
	}
	links, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	instance := map[int]bool{}
	for _, l := range links {
		if strings.HasPrefix(l.Attrs().Name, InterfacePrefix) {
			instance[l.Attrs().Index] = true
		}
	}
	out := map[netip.Addr]bool{}
	for _, r := range routes {
		if r.Dst != nil && instance[r.LinkIndex] {
			if ip, ok := netip.AddrFromSlice(r.Dst.IP); ok {
				out[ip.Unmap()] = true
			}
		}
	}
	return out, nil
}

// syncForwarding: one entry per host, its tunnel MAC to its tunnel IP.
func (o *Overlay) syncForwarding(idx int, hosts map[netip.Addr]bool) error {
	cur, err := netlink.NeighList(idx, unix.AF_BRIDGE)
	if err != nil {
		return fmt.Errorf("forwarding entries of %s: %w", o.Device, err)
	}
	have := map[netip.Addr]bool{}
	for _, n := range cur {
		ip, ok := netip.AddrFromSlice(n.IP)
		if !ok || n.HardwareAddr == nil {
			continue
		}
		ip = ip.Unmap()
		if hosts[ip] && slices.Equal(n.HardwareAddr, TunnelMAC(ip)) {
			have[ip] = true
			continue
		}
		if err := netlink.NeighDel(&n); err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("forwarding entry %s of %s: %w", ip, o.Device, err)
		}
	}
	for h := range hosts {
		if have[h] {
			continue
		}
		fdb := &netlink.Neigh{LinkIndex: idx, Family: unix.AF_BRIDGE, Flags: netlink.NTF_SELF, State: netlink.NUD_PERMANENT,
			IP: h.AsSlice(), HardwareAddr: TunnelMAC(h)}
		if err := netlink.NeighSet(fdb); err != nil {
			return fmt.Errorf("forwarding entry %s of %s: %w", h, o.Device, err)
		}
	}
	return nil
}

// syncNeighbours: one permanent entry per remote instance, its address to
// its host's tunnel MAC.
func (o *Overlay) syncNeighbours(idx int, ips map[netip.Addr]netip.Addr) error {
	cur, err := netlink.NeighList(idx, unix.AF_INET)
	if err != nil {
		return fmt.Errorf("neighbours of %s: %w", o.Device, err)
	}
	cur6, err := netlink.NeighList(idx, unix.AF_INET6)
	if err != nil {
		return fmt.Errorf("IPv6 neighbours of %s: %w", o.Device, err)
	}
	have := map[netip.Addr]bool{}
	for _, n := range slices.Concat(cur, cur6) {
		ip, ok := netip.AddrFromSlice(n.IP)
		if !ok || !ip.IsGlobalUnicast() {
			continue // the kernel's own (link-local, multicast)
		}
		ip = ip.Unmap()
		if h, want := ips[ip]; want && n.State == netlink.NUD_PERMANENT && slices.Equal(n.HardwareAddr, TunnelMAC(h)) {
			have[ip] = true
			continue
		}
		if err := netlink.NeighDel(&n); err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("neighbour %s of %s: %w", ip, o.Device, err)
		}
	}
	for ip, h := range ips {
		if have[ip] {
			continue
		}
		n := &netlink.Neigh{LinkIndex: idx, Family: familyOf(ip), State: netlink.NUD_PERMANENT, IP: ip.AsSlice(), HardwareAddr: TunnelMAC(h)}
		if err := netlink.NeighSet(n); err != nil {
			return fmt.Errorf("neighbour %s of %s: %w", ip, o.Device, err)
		}
	}
	return nil
}

// syncRoutes: a /32 (or /128) route on the device per remote instance.
func (o *Overlay) syncRoutes(idx int, ips map[netip.Addr]netip.Addr) error {
	cur, err := netlink.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{LinkIndex: idx, Protocol: RouteProtocol, Table: o.table()},
		netlink.RT_FILTER_OIF|netlink.RT_FILTER_PROTOCOL|netlink.RT_FILTER_TABLE)
	if err != nil {
		return fmt.Errorf("routes of %s: %w", o.Device, err)
	}
	have := map[netip.Addr]bool{}
	for _, r := range cur {
		if r.Dst == nil {
			continue
		}
		p, ok := netip.AddrFromSlice(r.Dst.IP)
		ones, _ := r.Dst.Mask.Size()
		if ok && ones == p.Unmap().BitLen() {
			if _, want := ips[p.Unmap()]; want {
				have[p.Unmap()] = true
				continue
			}
		}
		if err := netlink.RouteDel(&r); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("route %s of %s: %w", r.Dst, o.Device, err)
		}
	}
	for ip := range ips {
		if have[ip] {
			continue
		}
		r := &netlink.Route{LinkIndex: idx, Dst: ipNet(netip.PrefixFrom(ip, ip.BitLen())), Scope: netlink.SCOPE_LINK, Protocol: RouteProtocol, Table: o.table()}
		if err := netlink.RouteReplace(r); err != nil {
			return fmt.Errorf("route to %s on %s: %w", ip, o.Device, err)
		}
	}
	return nil
}

// familyOf is addr's address family (netlink's).
func familyOf(addr netip.Addr) int {
	if addr.Is4() {
		return unix.AF_INET
	}
	return unix.AF_INET6
}

// table is the routes' table (main when unset).
func (o *Overlay) table() int {
	if o.Table == 0 {
		return unix.RT_TABLE_MAIN
	}
	return o.Table
}

// Tunnels are the tunnel devices of network on the host, by VNI (an
// earlier run's too).
func Tunnels(network string) (map[int]*Overlay, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	out := map[int]*Overlay{}
	suffix := "-" + network
	for _, l := range links {
		name := l.Attrs().Name
		if _, ok := l.(*netlink.Vxlan); !ok || !strings.HasPrefix(name, "vx") || !strings.HasSuffix(name, suffix) {
			continue
		}
		if vni, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(name, "vx"), suffix)); err == nil && vni > 0 {
			out[vni] = &Overlay{Device: name, VNI: vni}
		}
	}
	return out, nil
}

// Remove deletes the device (its routes and entries go with it); a device
// that is gone is no error.
func (o *Overlay) Remove() error {
	link, err := netlink.LinkByName(o.Device)
	if errors.As(err, new(netlink.LinkNotFoundError)) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("tunnel %s: %w", o.Device, err)
	}
	if err := netlink.LinkDel(link); err != nil {
		return fmt.Errorf("delete tunnel %s: %w", o.Device, err)
	}
	return nil
}
