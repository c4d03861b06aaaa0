package datapath

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"sigs.k8s.io/knftables"

	"github.com/eci-dev/eci/internal/netnstest"
)

// newNATHost is a VPC host with an underlay link to namespace out
// (host 198.18.61.1, out 198.18.61.2; out has no route to the instances)
// and a NAT gateway.
func newNATHost(t *testing.T, ns, out, network string) (*vpcHost, *NATGateway) {
	t.Helper()
	h := newVPCHost(t, ns, network)
	netnstest.New(t, out)
	netnstest.IP(t, "-n", ns, "link", "add", "up0", "type", "veth", "peer", "name", "eth0", "netns", out)
	netnstest.IP(t, "-n", ns, "addr", "add", "198.18.61.1/24", "dev", "up0")
	netnstest.IP(t, "-n", ns, "link", "set", "up0", "up")
	netnstest.IP(t, "-n", out, "addr", "add", "198.18.61.2/24", "dev", "eth0")
	netnstest.IP(t, "-n", out, "addr", "add", "198.18.61.3/24", "dev", "eth0") // a host of the pool
	netnstest.IP(t, "-n", out, "link", "set", "eth0", "up")
	gw := &NATGateway{Network: network}
	if err := netnstest.In(ns, func() (err error) {
		gw.NFT, err = knftables.New(knftables.IPv4Family, NATTable(network))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return h, gw
}

func (h *vpcHost) syncNAT(t *testing.T, gw *NATGateway, sources ...NATSource) {
	t.Helper()
	h.syncNATWith(t, gw, NATConfig{Sources: sources})
}

// syncNATWith syncs cfg, with the test's protected addresses.
func (h *vpcHost) syncNATWith(t *testing.T, gw *NATGateway, cfg NATConfig) {
	t.Helper()
	// A protected network that holds a host too (its set merges them).
	cfg.Protected = NATProtected{Hosts: []netip.Addr{netip.MustParseAddr("198.18.61.3")}, Services: []netip.AddrPort{netip.MustParseAddrPort("198.18.61.2:7301")},
		Networks: []netip.Prefix{netip.MustParsePrefix("198.18.61.3/32"), netip.MustParsePrefix("198.18.61.0/31")}}
	if err := netnstest.In(h.ns, func() error { return gw.Sync(context.Background(), cfg) }); err != nil {
		t.Fatal(err)
	}
}

// Instances of vSwitches with a NAT gateway reach a server outside, which
// sees the host's address, from the default VPC and from another with the
// same address at once, but not the pool's hosts or the server's API; an
// instance of a vSwitch without one does not,
// nor does a packet that went round the hairpin enter another VPC; nothing
// outside reaches the hairpin's addresses; a gateway removed is gone.
func TestNATGatewayOnAHost(t *testing.T) {
	netnstest.NeedRoot(t)
	h, gw := newNATHost(t, "dpn-host", "dpn-out", "dpn")
	const vgw = "198.18.60.1"
	h.attach(t, "dpn-d1", DefaultVNI, "198.18.60.10", vgw)
	h.attach(t, "dpn-d2", DefaultVNI, "198.18.60.200", vgw) // outside the default VPC's gateway vSwitch
	h.attach(t, "dpn-x1", 7, "198.18.60.10", vgw)           // VPC 7: d1's address
	h.attach(t, "dpn-y1", 8, "198.18.60.10", vgw)           // VPC 8: no gateway
	serveTCP(t, "dpn-d2", 7200, "d2")
	netnstest.ServePeer(t, "dpn-out", 7300)
	netnstest.ServePeer(t, "dpn-out", 7301) // the server's API on .2
	h.syncNAT(t, gw, NATSource{VNI: DefaultVNI, CIDR: netip.MustParsePrefix("198.18.60.0/25")}, NATSource{VNI: 7, CIDR: netip.MustParsePrefix("198.18.60.0/24")})

	for _, from := range []string{"dpn-d1", "dpn-x1"} {
		if got, err := dialTCP(from, "198.18.61.2:7300", ""); err != nil || got != "198.18.61.1" {
			t.Errorf("%s to the outside: %q, %v; want the host's address 198.18.61.1", from, got, err)
		}
	}
	// A privileged source port is not kept: the host's own are not given.
	seen := make(chan string, 1)
	netnstest.ServeConns(t, "dpn-out", 7302, func(c net.Conn) {
		select {
		case seen <- c.RemoteAddr().String():
		default:
		}
		c.Close()
	})
	if err := netnstest.In("dpn-d1", func() error {
		d := net.Dialer{Timeout: 2 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP("198.18.60.10"), Port: 700}}
		c, err := d.Dial("tcp4", "198.18.61.2:7302")
		if err == nil {
			c.Close()
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	select {
	case from := <-seen:
		if ap := netip.MustParseAddrPort(from); ap.Port() < 1024 {
			t.Errorf("the outside saw %s: a privileged port of the host's", from)
		}
	case <-time.After(3 * time.Second):
		t.Error("the server saw no connection")
	}
	// Not the pool's hosts nor the server's API, from the host's address.
	for _, from := range []string{"dpn-d1", "dpn-x1"} {
		for _, to := range []string{"198.18.61.3:7300", "198.18.61.2:7301"} {
			if got, err := dialTCP(from, to, ""); err == nil {
				t.Errorf("%s reached %s, which is protected: %q", from, to, got)
			}
		}
	}
	for _, from := range []string{"dpn-d2", "dpn-y1"} {
		if got, err := dialTCP(from, "198.18.61.2:7300", ""); err == nil {
			t.Errorf("%s (no gateway) reached the outside: %q", from, got)
		}
	}
	if got, err := dialTCP("dpn-x1", "198.18.60.200:7200", ""); err == nil {
		t.Errorf("VPC 7 reached the default VPC's d2 through the gateway: %q", got)
	}
	// The outside, with a route to the hairpin's addresses, reaches none.
	netnstest.IP(t, "-n", "dpn-out", "route", "add", DefaultNATRange.String(), "via", "198.18.61.1")
	addr7, _ := gw.Address(7)
	if got, err := dialTCP("dpn-out", addr7.String()+":7200", ""); err == nil {
		t.Errorf("the outside reached VPC 7's hairpin address: %q", got)
	}

	// VPC 7's gateway goes: so do its routes.
	h.syncNAT(t, gw, NATSource{VNI: DefaultVNI, CIDR: netip.MustParsePrefix("198.18.60.0/25")})
	if got, err := dialTCP("dpn-x1", "198.18.61.2:7300", ""); err == nil {
		t.Errorf("VPC 7 reached the outside after its gateway went: %q", got)
	}
	if got, err := dialTCP("dpn-d1", "198.18.61.2:7300", ""); err != nil || got != "198.18.61.1" {
		t.Errorf("d1 after VPC 7's gateway went: %q, %v", got, err)
	}
	err := netnstest.In(h.ns, func() error {
		routes, err := netlink.RouteListFiltered(0, &netlink.Route{Table: TableOf(7), Protocol: RouteProtocolNAT}, netlink.RT_FILTER_TABLE|netlink.RT_FILTER_PROTOCOL)
		if err == nil && len(routes) > 0 {
			t.Errorf("VPC 7's table keeps the gateway's route: %v", routes)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestNATAddress(t *testing.T) {
	gw := &NATGateway{}
	if a, err := gw.Address(7); err != nil || a.String() != "169.254.0.7" {
		t.Errorf("VNI 7: %v, %v", a, err)
	}
	if a, err := gw.Address(300); err != nil || a.String() != "169.254.1.44" {
		t.Errorf("VNI 300: %v, %v", a, err)
	}
	if _, err := gw.Address(DefaultVNI); err == nil {
		t.Error("the default VPC got a hairpin address")
	}
	small := &NATGateway{Range: netip.MustParsePrefix("198.18.250.0/24")}
	if _, err := small.Address(256); err == nil {
		t.Error("VNI 256 got an address in a /24")
	}
	if gw.nextHop().String() != "169.254.0.1" {
		t.Errorf("next hop %s", gw.nextHop())
	}
}

// Instances with EIPs, one of the default VPC and one of VPC 7 with the
// same address, are reached from outside at their EIPs (the host answers
// ARP for them) and reach the outside from them, while the gateway of the
// default VPC's vSwitch goes on masquerading its others; an EIP gone is
// neither answered nor translated.
func TestEIPsOnAHost(t *testing.T) {
	netnstest.NeedRoot(t)
	h, gw := newNATHost(t, "dpe-host", "dpe-out", "dpe")
	const vgw = "198.18.60.1"
	h.attach(t, "dpe-d1", DefaultVNI, "198.18.60.10", vgw)
	h.attach(t, "dpe-d2", DefaultVNI, "198.18.60.11", vgw)
	h.attach(t, "dpe-x1", 7, "198.18.60.10", vgw)
	for name, reply := range map[string]string{"dpe-d1": "d1", "dpe-d2": "d2", "dpe-x1": "x1"} {
		serveTCP(t, name, 7200, reply)
	}
	netnstest.ServePeer(t, "dpe-out", 7300)
	inst := netip.MustParseAddr("198.18.60.10")
	eipD, eipX := netip.MustParseAddr("198.18.61.100"), netip.MustParseAddr("198.18.61.101")
	vsw := netip.MustParsePrefix("198.18.60.0/24")
	h.syncNATWith(t, gw, NATConfig{
		Sources: []NATSource{{VNI: DefaultVNI, CIDR: netip.MustParsePrefix("198.18.60.11/32")}},
		EIPs:    []EIP{{Addr: eipD, Instance: inst, VNI: DefaultVNI}, {Addr: eipX, Instance: inst, VNI: 7}},
		Inside:  []NATSource{{VNI: DefaultVNI, CIDR: vsw}, {VNI: 7, CIDR: vsw}},
	})
	for _, c := range []struct{ eip, want string }{{eipD.String(), "d1"}, {eipX.String(), "x1"}} {
		if got, err := dialTCP("dpe-out", c.eip+":7200", ""); err != nil || got != c.want {
			t.Errorf("the outside to EIP %s: %q, %v; want %q", c.eip, got, err, c.want)
		}
		// A host of the pool (protected: no instance opens a connection
		// to it) gets its answers.
		if got, err := dialTCP("dpe-out", c.eip+":7200", "198.18.61.3"); err != nil || got != c.want {
			t.Errorf("a host of the pool to EIP %s: %q, %v; want %q", c.eip, got, err, c.want)
		}
	}
	// From outside with an address of the VPCs (which security groups may
	// trust): nothing reaches either instance.
	netnstest.IP(t, "-n", "dpe-out", "addr", "add", "198.18.60.99/32", "dev", "eth0")
	netnstest.IP(t, "-n", "dpe-host", "route", "add", "198.18.60.99/32", "via", "198.18.61.2") // answers could go back
	for _, eip := range []string{eipD.String(), eipX.String()} {
		if got, err := dialTCP("dpe-out", eip+":7200", "198.18.60.99"); err == nil {
			t.Errorf("the outside reached EIP %s with an address of the VPCs: %q", eip, got)
		}
	}
	for _, c := range []struct{ from, want string }{{"dpe-d1", eipD.String()}, {"dpe-x1", eipX.String()}, {"dpe-d2", "198.18.61.1"}} {
		if got, err := dialTCP(c.from, "198.18.61.2:7300", ""); err != nil || got != c.want {
			t.Errorf("%s to the outside: %q, %v; want it from %s", c.from, got, err, c.want)
		}
	}
	// An EIP that is the host's own address is refused (and said), the
	// others kept.
	var warned []error
	gw.Warn = func(err error) { warned = append(warned, err) }
	err := netnstest.In(h.ns, func() error {
		return gw.Sync(context.Background(), NATConfig{EIPs: []EIP{{Addr: eipD, Instance: inst, VNI: DefaultVNI}, {Addr: netip.MustParseAddr("198.18.61.1"), Instance: inst, VNI: 7}}})
	})
	if err != nil || len(warned) != 1 || !strings.Contains(warned[0].Error(), "198.18.61.1 is an address of this host") {
		t.Errorf("an EIP of the host's own address: %v, warned %v", err, warned)
	}
	gw.Warn = nil
	if got, err := dialTCP("dpe-out", eipD.String()+":7200", ""); err != nil || got != "d1" {
		t.Errorf("d1's EIP beside a refused one: %q, %v", got, err)
	}
	// An EIP's instance inside a vSwitch with a gateway: one source.
	h.syncNATWith(t, gw, NATConfig{Sources: []NATSource{{VNI: DefaultVNI, CIDR: vsw}}, EIPs: []EIP{{Addr: eipD, Instance: inst, VNI: DefaultVNI}}, Inside: []NATSource{{VNI: DefaultVNI, CIDR: vsw}}})
	if got, err := dialTCP("dpe-d1", "198.18.61.2:7300", ""); err != nil || got != eipD.String() {
		t.Errorf("d1 with an EIP in a vSwitch with a gateway: %q, %v; want it from its EIP", got, err)
	}
	// VPC 7's EIP goes: nothing answers it, x1 reaches nothing outside.
	h.syncNATWith(t, gw, NATConfig{EIPs: []EIP{{Addr: eipD, Instance: inst, VNI: DefaultVNI}}})
	netnstest.IP(t, "-n", "dpe-out", "neigh", "flush", "dev", "eth0")
	if got, err := dialTCP("dpe-out", eipX.String()+":7200", ""); err == nil {
		t.Errorf("the outside reached a released EIP: %q", got)
	}
	if got, err := dialTCP("dpe-x1", "198.18.61.2:7300", ""); err == nil {
		t.Errorf("x1 reached the outside after its EIP went: %q", got)
	}
	if got, err := dialTCP("dpe-out", eipD.String()+":7200", ""); err != nil || got != "d1" {
		t.Errorf("d1's EIP after x1's went: %q, %v", got, err)
	}
	err = netnstest.In(h.ns, func() error {
		proxies, err := netlink.NeighProxyList(0, 0)
		for _, p := range proxies {
			if p.IP.String() == eipX.String() {
				t.Errorf("the host still answers ARP for %s", eipX)
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A route entry: the host routes a real node's pod network through the
// node, and its instance and the node's pod reach each other by their own
// addresses both ways, the gateway of the instance's vSwitch translating
// nothing to it; the entry gone, the host routes it no more.
func TestRouteEntriesOnAHost(t *testing.T) {
	netnstest.NeedRoot(t)
	h, gw := newNATHost(t, "dpr-host", "dpr-node", "dpr")
	h.attach(t, "dpr-d1", DefaultVNI, "198.18.60.10", "198.18.60.1")
	serveTCP(t, "dpr-d1", 7200, "d1")
	// The node's pod, behind the node (which routes the vSwitch back
	// through the host).
	netnstest.New(t, "dpr-pod")
	netnstest.IP(t, "-n", "dpr-node", "link", "add", "cni0", "type", "veth", "peer", "name", "eth0", "netns", "dpr-pod")
	netnstest.IP(t, "-n", "dpr-node", "addr", "add", "198.18.63.1/24", "dev", "cni0")
	netnstest.IP(t, "-n", "dpr-node", "link", "set", "cni0", "up")
	netnstest.IP(t, "-n", "dpr-pod", "addr", "add", "198.18.63.10/24", "dev", "eth0")
	netnstest.IP(t, "-n", "dpr-pod", "link", "set", "eth0", "up")
	netnstest.IP(t, "-n", "dpr-pod", "route", "add", "default", "via", "198.18.63.1")
	netnstest.IP(t, "-n", "dpr-node", "route", "add", "198.18.60.0/24", "via", "198.18.61.1")
	if err := netnstest.In("dpr-node", func() error { return EnableForwarding() }); err != nil {
		t.Fatal(err)
	}
	netnstest.ServePeer(t, "dpr-pod", 7300)
	entry := RouteEntry{Destination: netip.MustParsePrefix("198.18.63.0/24"), NextHop: netip.MustParseAddr("198.18.61.2")}
	h.syncNATWith(t, gw, NATConfig{Sources: []NATSource{{VNI: DefaultVNI, CIDR: netip.MustParsePrefix("198.18.60.0/24")}}, Routes: []RouteEntry{entry}})
	if got, err := dialTCP("dpr-d1", "198.18.63.10:7300", ""); err != nil || got != "198.18.60.10" {
		t.Errorf("the instance to the node's pod: %q, %v; want it seen from 198.18.60.10", got, err)
	}
	if got, err := dialTCP("dpr-pod", "198.18.60.10:7200", ""); err != nil || got != "d1" {
		t.Errorf("the node's pod to the instance: %q, %v", got, err)
	}
	h.syncNATWith(t, gw, NATConfig{Sources: []NATSource{{VNI: DefaultVNI, CIDR: netip.MustParsePrefix("198.18.60.0/24")}}})
	if got, err := dialTCP("dpr-d1", "198.18.63.10:7300", ""); err == nil {
		t.Errorf("the instance reached the pod after the entry went: %q", got)
	}
}
