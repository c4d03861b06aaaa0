package datapath

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// InterfacePrefix begins the name of every host end of an instance's veth,
// and no other interface's: the host's rules take any interface whose name
// begins so for an instance's (a bridge named eci0 must not be one).
const InterfacePrefix = "eci-"

// RouteProtocol marks the routes this package makes (rtnetlink's protocol
// field; `ip route show proto 236`), so that they are told from others'.
const RouteProtocol netlink.RouteProtocol = 236

// Attachment is one sandbox's interface as the runtime asks for it (CNI
// ADD) and the address the server gave its group.
type Attachment struct {
	// ContainerID is the sandbox's id; the host end's name derives from it,
	// so that a sandbox made again for the same group never meets the old
	// one's interface.
	ContainerID string
	// NetNS is the path of the sandbox's network namespace, IfName the
	// interface's name in it (eth0).
	NetNS, IfName string
	// Address is the group's address with its vSwitch's prefix length;
	// Gateway the vSwitch's gateway, which the host answers for on the link.
	Address netip.Prefix
	Gateway netip.Addr
	// Address6 and Gateway6 are the group's IPv6 address and its
	// vSwitch's IPv6 gateway (invalid: IPv4 alone).
	Address6 netip.Prefix
	Gateway6 netip.Addr
	// MTU of the link (0: 1500).
	MTU int
	// VNI is the VPC's (0: the default VPC): the host's route to the
	// instance goes in its table (TableOf). The caller gives the link its
	// VPC's mark first (Isolation.Add).
	VNI int
	// Bandwidth limits the instance's traffic (zero: none).
	Bandwidth Bandwidth
}

// Attached is what was made: the host end's name, and the instance's
// interface and its MAC address.
type Attached struct {
	HostInterface string
	Interface     string
	MAC           string
}

// HostInterfaceName is the host end of sandbox containerID's veth: the
// prefix and 11 hex digits of the id's SHA-256 (15 characters, the
// kernel's limit).
func HostInterfaceName(containerID string) string {
	sum := sha256.Sum256([]byte(containerID))
	return InterfacePrefix + hex.EncodeToString(sum[:])[:15-len(InterfacePrefix)]
}

// Attach makes the sandbox's interface: a veth pair whose instance end has
// the address, a route to the gateway on the link and the vSwitch's subnet
// and default routes through it (no route on the link but the gateway's,
// as the CNI ptp plugin does: every packet goes to the host); whose host
// end carries the gateway's address, answers for it, and filters the
// source of what arrives (rp_filter strict); and the host's /32 route to
// the instance. A second Attach of one sandbox makes it again.
func Attach(a Attachment) (*Attached, error) {
	if !a.Address.Addr().Is4() || !a.Gateway.Is4() {
		return nil, fmt.Errorf("address %s, gateway %s: allowed: IPv4 ones (and Address6, Gateway6 for IPv6)", a.Address, a.Gateway)
	}
	if a.Address6.IsValid() && (!a.Address6.Addr().Is6() || a.Address6.Addr().Is4In6() || !a.Gateway6.Is6() || a.Gateway6.Is4In6()) {
		return nil, fmt.Errorf("IPv6 address %s, gateway %s: allowed: IPv6 ones", a.Address6, a.Gateway6)
	}
	if a.IfName == "" || len(a.IfName) > 15 || strings.ContainsAny(a.IfName, "/ \t\n") {
		return nil, fmt.Errorf("interface name %q: allowed: 1 to 15 characters, no '/' or space", a.IfName)
	}
	ns, err := netns.GetFromPath(a.NetNS)
	if err != nil {
		return nil, fmt.Errorf("network namespace %s: %w", a.NetNS, err)
	}
	defer ns.Close()
	in, err := netlink.NewHandleAt(ns)
	if err != nil {
		return nil, fmt.Errorf("network namespace %s: %w", a.NetNS, err)
	}
	defer in.Delete()

	name := HostInterfaceName(a.ContainerID)
	if err := Detach(a.ContainerID); err != nil {
		return nil, err
	}
	if l, err := in.LinkByName(a.IfName); err == nil {
		// A failed ADD's half: the runtime tries again with the same names.
		_ = in.LinkDel(l)
	}
	mtu := a.MTU
	if mtu == 0 {
		mtu = 1500
	}
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name, MTU: mtu}, PeerName: a.IfName, PeerNamespace: netlink.NsFd(int(ns))}
	if err := netlink.LinkAdd(veth); err != nil {
		return nil, fmt.Errorf("veth %s: %w", name, err)
	}
	done := false
	defer func() {
		if !done {
			_ = Detach(a.ContainerID)
		}
	}()
	host, err := netlink.LinkByName(name)
	if err != nil {
		return nil, fmt.Errorf("host end %s: %w", name, err)
	}
	mac, err := instanceSide(in, a, host.Attrs().HardwareAddr)
	if err != nil {
		return nil, err
	}
	if err := hostSide(host, a, mac); err != nil {
		return nil, err
	}
	done = true
	return &Attached{HostInterface: name, Interface: a.IfName, MAC: mac.String()}, nil
}

// instanceSide configures the interface in the sandbox and returns its MAC.
// Its neighbour entry of the gateway is permanent (the host end's MAC):
// neither side ever asks ARP. (The host could not answer it for a VPC with
// a table of its own: ARP's reverse-path check has no mark.)
func instanceSide(h *netlink.Handle, a Attachment, hostMAC net.HardwareAddr) (net.HardwareAddr, error) {
	link, err := h.LinkByName(a.IfName)
	if err != nil {
		return nil, fmt.Errorf("%s in the sandbox: %w", a.IfName, err)
	}
	addr := &netlink.Addr{IPNet: ipNet(a.Address), Flags: unix.IFA_F_NOPREFIXROUTE}
	if err := h.AddrAdd(link, addr); err != nil {
		return nil, fmt.Errorf("address %s on %s: %w", a.Address, a.IfName, err)
	}
	if !a.Address6.IsValid() && hostHasIPv6() {
		// No link-local address, so none of autoconf's work (duplicate
		// address detection, router solicitations, multicast listener
		// reports): waste where the vSwitch has no IPv6, and the host
		// end drops all of it.
		if err := h.LinkSetIP6AddrGenMode(link, nl.IN6_ADDR_GEN_MODE_NONE); err != nil {
			return nil, fmt.Errorf("no IPv6 autoconf on %s: %w", a.IfName, err)
		}
	}
	if err := h.LinkSetUp(link); err != nil {
		return nil, fmt.Errorf("%s up: %w", a.IfName, err)
	}
	idx := link.Attrs().Index
	gw := a.Gateway.AsSlice()
	routes := []*netlink.Route{
		{LinkIndex: idx, Dst: ipNet(netip.PrefixFrom(a.Gateway, 32)), Scope: netlink.SCOPE_LINK, Src: a.Address.Addr().AsSlice()},
		{LinkIndex: idx, Dst: ipNet(a.Address.Masked()), Gw: gw, Src: a.Address.Addr().AsSlice()},
		{LinkIndex: idx, Gw: gw},
	}
	for _, r := range routes {
		if err := h.RouteReplace(r); err != nil {
			return nil, fmt.Errorf("route %s in the sandbox: %w", r, err)
		}
	}
	gwNeigh := &netlink.Neigh{LinkIndex: idx, Family: unix.AF_INET, State: netlink.NUD_PERMANENT, IP: gw, HardwareAddr: hostMAC}
	if err := h.NeighSet(gwNeigh); err != nil {
		return nil, fmt.Errorf("the gateway's neighbour entry in the sandbox: %w", err)
	}
	if a.Address6.IsValid() {
		if err := instanceSide6(h, link, a, hostMAC); err != nil {
			return nil, err
		}
	}
	return link.Attrs().HardwareAddr, nil
}

// hostSide configures the host end (link) and the host's route to the
// instance, whose MAC is mac.
func hostSide(link netlink.Link, a Attachment, mac net.HardwareAddr) error {
	name := link.Attrs().Name
	// Strict reverse-path filtering before the link is up: nothing the
	// instance sends from another address is routed (its only route back
	// is the /32 below). The sysctl exists once the link does.
	if err := sysctl("net/ipv4/conf/"+name+"/rp_filter", "1"); err != nil {
		return err
	}
	// No IPv6 on the link unless the instance has it: no autoconf
	// address, no router solicitations, nothing of IPv6 forwarded.
	if !a.Address6.IsValid() {
		// The only barrier to an instance without IPv6: an error is one
		// (unless the host has no IPv6 at all).
		if err := sysctl("net/ipv6/conf/"+name+"/disable_ipv6", "1"); err != nil && hostHasIPv6() {
			return err
		}
	} else if err := hostSide6(link, a); err != nil {
		return err
	}
	if a.VNI > DefaultVNI {
		// The reverse-path check looks up the source in the VPC's table
		// (the packet's mark), not the main one.
		if err := sysctl("net/ipv4/conf/"+name+"/src_valid_mark", "1"); err != nil {
			return err
		}
	}
	// Global scope: the host's own packets to the instance (probes) and
	// masquerade (an instance reaching itself through a virtual IP) take it
	// as their source.
	gw := &netlink.Addr{IPNet: ipNet(netip.PrefixFrom(a.Gateway, 32))}
	if err := netlink.AddrAdd(link, gw); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("gateway %s on %s: %w", a.Gateway, name, err)
	}
	if err := setBandwidth(link, a.Bandwidth); err != nil {
		return err
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return fmt.Errorf("%s up: %w", name, err)
	}
	neigh := &netlink.Neigh{LinkIndex: link.Attrs().Index, Family: unix.AF_INET, State: netlink.NUD_PERMANENT, IP: a.Address.Addr().AsSlice(), HardwareAddr: mac}
	if err := netlink.NeighSet(neigh); err != nil {
		return fmt.Errorf("the instance's neighbour entry on %s: %w", name, err)
	}
	route := &netlink.Route{LinkIndex: link.Attrs().Index, Dst: ipNet(netip.PrefixFrom(a.Address.Addr(), 32)),
		Scope: netlink.SCOPE_LINK, Protocol: RouteProtocol, Table: TableOf(max(a.VNI, DefaultVNI))}
	if err := netlink.RouteReplace(route); err != nil {
		return fmt.Errorf("route to %s on %s: %w", a.Address.Addr(), name, err)
	}
	if a.Address6.IsValid() {
		if err := hostRoute6(link, a, mac); err != nil {
			return err
		}
	}
	return EnableForwarding()
}

// Detach removes sandbox containerID's veth pair (the host's route to the
// instance goes with it); a pair that is gone is no error.
func Detach(containerID string) error {
	name := HostInterfaceName(containerID)
	if err := removeShaper(shaperName(name)); err != nil {
		return err
	}
	link, err := netlink.LinkByName(name)
	var notFound netlink.LinkNotFoundError
	if errors.As(err, &notFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("host end %s: %w", name, err)
	}
	if err := netlink.LinkDel(link); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	return nil
}

// EnableForwarding lets the host route between its instances.
func EnableForwarding() error {
	if err := sysctl("net/ipv4/ip_forward", "1"); err != nil {
		return fmt.Errorf("enable IPv4 forwarding: %w", err)
	}
	return nil
}

// hostHasIPv6 tells whether the kernel has IPv6 (not ipv6.disable=1).
func hostHasIPv6() bool {
	_, err := os.Stat("/proc/sys/net/ipv6")
	return err == nil
}

// sysctl sets /proc/sys/<key> to value unless it is.
func sysctl(key, value string) error {
	path := "/proc/sys/" + key
	cur, err := os.ReadFile(path)
	if err == nil && strings.TrimSpace(string(cur)) == value {
		return nil
	}
	if err := os.WriteFile(path, []byte(value), 0o644); err != nil {
		return fmt.Errorf("sysctl %s=%s: %w", strings.ReplaceAll(key, "/", "."), value, err)
	}
	return nil
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}
