package datapath

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// IPv6 on an instance's link is built as IPv4 is (veth.go): the
// instance's address with its vSwitch's prefix length but no route on the
// link except its gateway's, permanent neighbour entries both ways (no
// neighbour discovery is needed, none can take an address over), the
// gateway's address on the host's end and the host's /128 route to the
// instance in its VPC's table. IPv6 has no reverse-path filter: the
// isolation table (vpc.go) drops what an instance sends from an address
// the host would not route back to its link.

// instanceSide6 adds the instance's IPv6 address and routes in the
// sandbox.
func instanceSide6(h *netlink.Handle, link netlink.Link, a Attachment, hostMAC net.HardwareAddr) error {
	// No duplicate address detection: the address is the instance's alone
	// (the server's), and would not be usable for a second or more.
	addr := &netlink.Addr{IPNet: ipNet(a.Address6), Flags: unix.IFA_F_NOPREFIXROUTE | unix.IFA_F_NODAD}
	if err := h.AddrAdd(link, addr); err != nil {
		return fmt.Errorf("address %s on %s: %w", a.Address6, a.IfName, err)
	}
	idx, gw := link.Attrs().Index, a.Gateway6.AsSlice()
	routes := []*netlink.Route{
		{LinkIndex: idx, Dst: ipNet(netip.PrefixFrom(a.Gateway6, 128)), Scope: netlink.SCOPE_LINK, Src: a.Address6.Addr().AsSlice()},
		{LinkIndex: idx, Dst: ipNet(a.Address6.Masked()), Gw: gw, Src: a.Address6.Addr().AsSlice()},
		{LinkIndex: idx, Dst: ipNet(netip.MustParsePrefix("::/0")), Gw: gw},
	}
	for _, r := range routes {
		if err := h.RouteReplace(r); err != nil {
			return fmt.Errorf("route %s in the sandbox: %w", r, err)
		}
	}
	n := &netlink.Neigh{LinkIndex: idx, Family: unix.AF_INET6, State: netlink.NUD_PERMANENT, IP: gw, HardwareAddr: hostMAC}
	if err := h.NeighSet(n); err != nil {
		return fmt.Errorf("the IPv6 gateway's neighbour entry in the sandbox: %w", err)
	}
	return nil
}

// hostSide6 turns IPv6 on on the host's end (link, not up yet): no router
// advertisements taken from the instance, no address of its own but the
// gateway's.
func hostSide6(link netlink.Link, a Attachment) error {
	name := link.Attrs().Name
	if err := enableIPv6(name); err != nil {
		return err
	}
	// No prefix route either: the host routes the instance alone to the
	// link, in its VPC's table.
	gw := &netlink.Addr{IPNet: ipNet(netip.PrefixFrom(a.Gateway6, 128)), Flags: unix.IFA_F_NODAD | unix.IFA_F_NOPREFIXROUTE}
	if err := netlink.AddrAdd(link, gw); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("IPv6 gateway %s on %s: %w", a.Gateway6, name, err)
	}
	return nil
}

// enableIPv6 turns IPv6 on on device dev, taking no router
// advertisements, redirects or autoconf addresses.
func enableIPv6(dev string) error {
	for _, kv := range [][2]string{{"accept_ra", "0"}, {"autoconf", "0"}, {"accept_redirects", "0"}, {"disable_ipv6", "0"}} {
		if err := sysctl("net/ipv6/conf/"+dev+"/"+kv[0], kv[1]); err != nil {
			return err
		}
	}
	return nil
}

// hostRoute6 adds the instance's neighbour entry and the host's route to
// it (link is up), and lets the host forward IPv6.
func hostRoute6(link netlink.Link, a Attachment, mac net.HardwareAddr) error {
	name := link.Attrs().Name
	n := &netlink.Neigh{LinkIndex: link.Attrs().Index, Family: unix.AF_INET6, State: netlink.NUD_PERMANENT, IP: a.Address6.Addr().AsSlice(), HardwareAddr: mac}
	if err := netlink.NeighSet(n); err != nil {
		return fmt.Errorf("the instance's IPv6 neighbour entry on %s: %w", name, err)
	}
	route := &netlink.Route{LinkIndex: link.Attrs().Index, Dst: ipNet(netip.PrefixFrom(a.Address6.Addr(), 128)),
		Scope: netlink.SCOPE_LINK, Protocol: RouteProtocol, Table: TableOf(max(a.VNI, DefaultVNI))}
	if err := netlink.RouteReplace(route); err != nil {
		return fmt.Errorf("route to %s on %s: %w", a.Address6.Addr(), name, err)
	}
	return EnableForwarding6()
}

// EnableForwarding6 lets the host route IPv6 between its instances. (A
// host that takes its own IPv6 address from router advertisements must
// have accept_ra=2 on that interface: the kernel ignores them on a router
// otherwise.)
func EnableForwarding6() error {
	if err := sysctl("net/ipv6/conf/all/forwarding", "1"); err != nil {
		return fmt.Errorf("enable IPv6 forwarding: %w", err)
	}
	return nil
}
