package datapath

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"sigs.k8s.io/knftables"

	"github.com/eci-dev/eci/internal/netnstest"
	"github.com/eci-dev/eci/internal/poll"
)

// dualStack is an instance's IPv4 and IPv6 addresses on the test vSwitch
// 198.18.60.0/24, 2001:2:0:60::/64 (an IPv6 address "" : IPv4 alone).
type dualStack struct {
	name, ip, ip6 string
	vni           int
}

const (
	gw4 = "198.18.60.1"
	gw6 = "2001:2:0:60::1"
)

func (h *vpcHost) attachDual(t *testing.T, d dualStack) {
	t.Helper()
	a := Attachment{Address: netip.PrefixFrom(netip.MustParseAddr(d.ip), 24), Gateway: netip.MustParseAddr(gw4), VNI: d.vni}
	if d.ip6 != "" {
		a.Address6, a.Gateway6 = netip.PrefixFrom(netip.MustParseAddr(d.ip6), 64), netip.MustParseAddr(gw6)
	}
	h.attachWith(t, d.name, a)
}

func ensureGuards(t *testing.T, h *vpcHost) {
	t.Helper()
	if err := netnstest.In(h.ns, func() error { return h.iso.Ensure(context.Background()) }); err != nil {
		t.Fatal(err)
	}
}

func at6(addr string, port string) string { return "[" + addr + "]:" + port }

// IPv6 on one host: dual-stack instances reach each other and their
// gateway by IPv6 as by IPv4; two VPCs with one IPv6 address each reach
// their own; an instance that sends from an IPv6 address not its own, or
// one without IPv6 that gives itself an address, reaches nobody; nothing
// of IPv6 leaves the instances' network or enters it from outside; a
// security group filters IPv6 by its members and ::/0 rules.
func TestIPv6OnAHost(t *testing.T) {
	netnstest.NeedRoot(t)
	h := newVPCHost(t, "dp6-host", "dp6")
	ensureGuards(t, h)
	inst := []dualStack{
		{"dp6-a", "198.18.60.10", "2001:2:0:60::a", DefaultVNI},
		{"dp6-b", "198.18.60.11", "2001:2:0:60::b", DefaultVNI},
		{"dp6-x", "198.18.60.11", "2001:2:0:60::b", 7}, // b's addresses, in VPC 7
		{"dp6-y", "198.18.60.12", "2001:2:0:60::c", 7},
		{"dp6-d", "198.18.60.13", "", DefaultVNI}, // IPv4 alone
		{"dp6-e", "198.18.60.14", "2001:2:0:60::e", DefaultVNI},
	}
	for _, d := range inst {
		h.attachDual(t, d)
		netnstest.ServeTCP6(t, d.name, 7400, strings.TrimPrefix(d.name, "dp6-"))
	}
	netnstest.ServeTCP6(t, h.ns, 7401, "host")

	// The outside: a network the host routes, with a server, on a link
	// named as another product's VXLAN device (no tunnel of eci's).
	out := netnstest.New(t, "dp6-out")
	netnstest.IP(t, "-n", h.ns, "link", "add", "vxlan.calico", "type", "veth", "peer", "name", "eth0", "netns", out)
	netnstest.IP(t, "-n", h.ns, "addr", "add", "2001:2:0:61::1/64", "dev", "vxlan.calico", "nodad")
	netnstest.IP(t, "-n", out, "addr", "add", "2001:2:0:61::2/64", "dev", "eth0", "nodad")
	netnstest.IP(t, "-n", h.ns, "link", "set", "vxlan.calico", "up")
	netnstest.IP(t, "-n", out, "link", "set", "eth0", "up")
	netnstest.IP(t, "-n", out, "-6", "route", "add", "2001:2:0:60::/64", "via", "2001:2:0:61::1")
	netnstest.ServeTCP6(t, out, 7402, "out")
	if got, err := dialTCP(h.ns, at6("2001:2:0:61::2", "7402"), ""); err != nil || got != "out" {
		t.Fatalf("the host reaches the outside: %q, %v", got, err)
	}

	for _, c := range []struct{ from, to, want string }{
		{"dp6-a", at6("2001:2:0:60::b", "7400"), "b"},
		{"dp6-b", at6("2001:2:0:60::a", "7400"), "a"},
		{"dp6-y", at6("2001:2:0:60::b", "7400"), "x"}, // VPC 7's, not b
		{"dp6-x", at6("2001:2:0:60::c", "7400"), "y"},
		{"dp6-a", at6(gw6, "7401"), "host"},
		{"dp6-x", at6(gw6, "7401"), "host"}, // answered in VPC 7
	} {
		if got, err := dialTCP(c.from, c.to, ""); err != nil || got != c.want {
			t.Errorf("%s to %s: %q, %v; want %q", c.from, c.to, got, err, c.want)
		}
	}
	var b []byte
	err := netnstest.In(h.ns, func() (err error) { b, err = os.ReadFile("/proc/sys/net/ipv6/conf/all/forwarding"); return err })
	if err != nil || strings.TrimSpace(string(b)) != "1" {
		t.Errorf("the host's IPv6 forwarding: %q, %v", b, err)
	}

	// a gives itself y's address, one nobody has and b's; d (IPv4 alone)
	// gives itself one of the vSwitch.
	netnstest.IP(t, "-n", "dp6-a", "addr", "add", "2001:2:0:60::c/128", "dev", "eth0", "nodad")
	netnstest.IP(t, "-n", "dp6-a", "addr", "add", "2001:2:0:60::99/128", "dev", "eth0", "nodad")
	netnstest.IP(t, "-n", "dp6-d", "addr", "add", "2001:2:0:60::d/64", "dev", "eth0", "nodad")
	// (with its gateway's neighbour entry, as IPv4's: nothing waits for
	// neighbour discovery)
	gwMAC, err := exec.Command("ip", "-n", "dp6-d", "neigh", "show", gw4).Output()
	if f := strings.Fields(string(gwMAC)); err != nil || len(f) < 5 || f[3] != "lladdr" {
		t.Fatalf("d's gateway's neighbour entry: %q, %v", gwMAC, err)
	} else {
		netnstest.IP(t, "-n", "dp6-d", "-6", "neigh", "replace", gw6, "lladdr", f[4], "dev", "eth0", "nud", "permanent")
	}
	netnstest.IP(t, "-n", "dp6-d", "-6", "route", "add", "default", "via", gw6, "dev", "eth0", "onlink")
	for _, c := range []struct{ from, to, src, why string }{
		{"dp6-a", at6("2001:2:0:60::b", "7400"), "2001:2:0:60::99", "from an address nobody has"},
		{"dp6-a", at6("2001:2:0:60::b", "7400"), "2001:2:0:60::c", "from another VPC's instance's address"},
		{"dp6-b", at6("2001:2:0:60::c", "7400"), "", "to another VPC's instance"},
		{"dp6-x", at6("2001:2:0:60::a", "7400"), "", "to another VPC's instance"},
		{"dp6-d", at6("2001:2:0:60::a", "7400"), "", "from an instance without IPv6"},
		{"dp6-a", at6("2001:2:0:61::1", "7401"), "", "to the host's address on another network"},
		{"dp6-x", at6("2001:2:0:61::1", "7401"), "", "to the host's address on another network"},
		{"dp6-a", at6("2001:2:0:61::2", "7402"), "", "out of the instances' network"},
		{out, at6("2001:2:0:60::a", "7400"), "", "into the instances' network from outside"},
	} {
		if got, err := dialTCP(c.from, c.to, c.src); err == nil {
			t.Errorf("%s to %s %s: connected (%q)", c.from, c.to, c.why, got)
		}
	}
	if got, err := dialTCP("dp6-a", at6("2001:2:0:60::b", "7400"), ""); err != nil || got != "b" {
		t.Errorf("a to b from its own address, after: %q, %v", got, err)
	}
	// The same by UDP, which needs no answer: b receives a's own datagrams
	// alone, and none of d's.
	received := listenUDPOn(t, "udp6", "dp6-b", 7403)
	for _, src := range []string{"2001:2:0:60::99", "2001:2:0:60::c", ""} {
		for range 3 {
			sendUDP(t, "dp6-a", src, at6("2001:2:0:60::b", "7403"))
			sendUDP(t, "dp6-d", "", at6("2001:2:0:60::b", "7403"))
		}
	}
	poll.Eventually(t, 5*time.Second, "b receives a's datagrams", func() error { return atLeast(received("2001:2:0:60::a"), 3) })
	if n, m, d := received("2001:2:0:60::99"), received("2001:2:0:60::c"), received("2001:2:0:60::d"); n != 0 || m != 0 || d != 0 {
		t.Errorf("b received %d datagrams from ::99 and %d from y's ::c, all sent by a, and %d of d's (no IPv6)", n, m, d)
	}

	// a solicits its gateway from its link-local address, and sends to
	// a port of it with none listening (an answer is due) from a made-up
	// one: the host learns no neighbour of either (a flood of made-up
	// ones would fill its table).
	linkLocal := solicit(t, "dp6-a", netip.MustParseAddr(gw6))
	netnstest.IP(t, "-n", "dp6-a", "addr", "add", "fe80::1234/64", "dev", "eth0", "nodad")
	if err := netnstest.In("dp6-a", func() error {
		c, err := net.DialUDP("udp6", &net.UDPAddr{IP: net.ParseIP("fe80::1234"), Zone: "eth0"}, &net.UDPAddr{IP: net.ParseIP(gw6), Port: 7499})
		if err != nil {
			return err
		}
		defer c.Close()
		for range 3 {
			_, _ = c.Write([]byte("q"))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if out, err := exec.Command("ip", "-n", h.ns, "-6", "neigh", "show").CombinedOutput(); err != nil ||
		strings.Contains(string(out), linkLocal.String()) || strings.Contains(string(out), "fe80::1234") {
		t.Errorf("the host's neighbours after a's solicitation from %s and datagrams from fe80::1234: %s (%v)", linkLocal, out, err)
	}

	// A security group: b takes TCP from its group's members alone (by
	// IPv6 too), and from ::/0 on 7401; a is a member.
	var fw *Firewall
	if err := netnstest.In(h.ns, func() error {
		nft, err := knftables.New(InetFamily, FirewallTable("dp6"))
		fw = &Firewall{NFT: nft, Network: "dp6"}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	ep := func(s string) Endpoint { return Endpoint{Addr: netip.MustParseAddr(s)} }
	sg := SecurityGroup{Key: "t/db", InnerAccept: true, Members: []Endpoint{ep("198.18.60.10"), ep("2001:2:0:60::a"), ep("198.18.60.11"), ep("2001:2:0:60::b")},
		Ingress: []Rule{{Protocol: "tcp", From: 7401, To: 7401, CIDR: netip.MustParsePrefix("::/0")}}}
	local := []Protected{{Endpoint: ep("198.18.60.11"), Groups: []string{"t/db"}}, {Endpoint: ep("2001:2:0:60::b"), Groups: []string{"t/db"}}}
	if err := netnstest.In(h.ns, func() error { return fw.Sync(context.Background(), []SecurityGroup{sg}, local) }); err != nil {
		t.Fatal(err)
	}
	netnstest.ServeTCP6(t, "dp6-b", 7401, "b")
	netnstest.ServeTCP(t, "dp6-b", 7401, "b")
	for _, c := range []struct {
		from, to string
		want     bool
	}{
		{"dp6-a", at6("2001:2:0:60::b", "7400"), true},  // a member, by IPv6
		{"dp6-e", at6("2001:2:0:60::b", "7400"), false}, // not a member
		{"dp6-e", at6("2001:2:0:60::b", "7401"), true},  // ::/0
		{"dp6-e", "198.18.60.11:7401", false},           // ::/0 is IPv6's alone
		{"dp6-a", "198.18.60.11:7401", true},            // a member, by IPv4
	} {
		got, err := dialTCP(c.from, c.to, "")
		if ok := err == nil && got == "b"; ok != c.want {
			t.Errorf("security group: %s to %s: %q, %v; want allowed=%v", c.from, c.to, got, err, c.want)
		}
	}
}

// IPv6 across two hosts: the tunnels carry instances' IPv6 addresses as
// their IPv4 ones (a /128 route and a neighbour entry per remote
// instance), a large transfer passes, two VPCs with one IPv6 address each
// reach their own, and a tunnel brings no IPv6 source that the receiving
// host routes to one of its own instances.
func TestIPv6AcrossHosts(t *testing.T) {
	netnstest.NeedRoot(t)
	hosts, under := newHostPair(t, "dp6w", "198.18.62")
	for _, h := range hosts {
		ensureGuards(t, h)
	}
	inst := [][]dualStack{
		{{"dp6w-a", "198.18.60.10", "2001:2:0:60::a", DefaultVNI}, {"dp6w-x", "198.18.60.11", "2001:2:0:60::b", 7}},
		{{"dp6w-b", "198.18.60.11", "2001:2:0:60::b", DefaultVNI}, {"dp6w-y", "198.18.60.10", "2001:2:0:60::a", 7}},
	}
	for i, h := range hosts {
		for _, d := range inst[i] {
			h.attachDual(t, d)
			netnstest.ServeTCP6(t, d.name, 7400, strings.TrimPrefix(d.name, "dp6w-"))
		}
	}
	for i, h := range hosts {
		err := netnstest.In(h.ns, func() error {
			for _, vni := range []int{DefaultVNI, 7} {
				var remotes []Remote
				for _, d := range inst[1-i] {
					if d.vni == vni {
						remotes = append(remotes, Remote{IP: netip.MustParseAddr(d.ip), Host: under[1-i]}, Remote{IP: netip.MustParseAddr(d.ip6), Host: under[1-i]})
					}
				}
				o := &Overlay{Device: TunnelDevice("dp6w", vni), VNI: vni, Local: under[i], MTU: 1450, Table: TableOf(vni)}
				if err := o.Ensure(); err != nil {
					return err
				}
				if err := o.Sync(remotes); err != nil {
					return err
				}
			}
			h.iso.Tunnel, h.iso.Local = true, under[i]
			if err := h.iso.Sync(context.Background()); err != nil {
				return err
			}
			return h.iso.SetPeers(context.Background(), []netip.Addr{under[1-i]})
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct{ from, to, want string }{
		{"dp6w-a", "2001:2:0:60::b", "b"}, // not x, on a's host in VPC 7
		{"dp6w-b", "2001:2:0:60::a", "a"},
		{"dp6w-x", "2001:2:0:60::a", "y"}, // not a
		{"dp6w-y", "2001:2:0:60::b", "x"},
	} {
		if got, err := dialTCP(c.from, at6(c.to, "7400"), ""); err != nil || got != c.want {
			t.Errorf("%s to %s: %q, %v; want %q", c.from, c.to, got, err, c.want)
		}
	}
	const size = 4 << 20
	if n, err := transfer(t, "dp6w-b", "dp6w-a", netip.MustParseAddr("2001:2:0:60::b"), 7404, size); err != nil || n != size {
		t.Errorf("a sent b %d bytes over IPv6 (%v), want %d", n, err, size)
	}

	// h2 itself (as a host that checks nothing would let an instance)
	// sends to a through the tunnel from an address h1 does not route
	// back into it: h1 drops it; b's own datagrams arrive.
	received := listenUDPOn(t, "udp6", "dp6w-a", 7405)
	netnstest.IP(t, "-n", "dp6w-h2", "addr", "add", "2001:2:0:60::77/128", "dev", "lo", "nodad")
	for range 3 {
		sendUDP(t, "dp6w-h2", "2001:2:0:60::77", at6("2001:2:0:60::a", "7405"))
		sendUDP(t, "dp6w-b", "", at6("2001:2:0:60::a", "7405"))
	}
	poll.Eventually(t, 5*time.Second, "a receives b's datagrams", func() error { return atLeast(received("2001:2:0:60::b"), 3) })
	if n := received("2001:2:0:60::77"); n != 0 {
		t.Errorf("a received %d datagrams h2 sent through the tunnel from an address h1 routes elsewhere", n)
	}
}

// solicit sends 3 neighbour solicitations for target from ns's eth0, from
// its link-local address, which it returns.
func solicit(t *testing.T, ns string, target netip.Addr) netip.Addr {
	t.Helper()
	var src netip.Addr
	err := netnstest.In(ns, func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		addrs, err := ifi.Addrs()
		if err != nil {
			return err
		}
		for _, a := range addrs {
			if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().IsLinkLocalUnicast() {
				src = p.Addr().WithZone("")
			}
		}
		if !src.IsValid() {
			return fmt.Errorf("no link-local address on eth0: %v", addrs)
		}
		fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_RAW, unix.IPPROTO_ICMPV6)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_UNICAST_HOPS, 255); err != nil {
			return err
		}
		if err := unix.Bind(fd, &unix.SockaddrInet6{Addr: src.As16(), ZoneId: uint32(ifi.Index)}); err != nil {
			return err
		}
		// type 135, code 0, checksum (the kernel's), reserved, target,
		// and the source's link-layer address option.
		msg := append([]byte{135, 0, 0, 0, 0, 0, 0, 0}, target.AsSlice()...)
		msg = append(append(msg, 1, 1), ifi.HardwareAddr...)
		for range 3 {
			if err := unix.Sendto(fd, msg, 0, &unix.SockaddrInet6{Addr: target.As16(), ZoneId: uint32(ifi.Index)}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	return src
}
