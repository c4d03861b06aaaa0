package datapath

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"sigs.k8s.io/knftables"

	"github.com/eci-dev/eci/internal/netnstest"
)

// Security groups on a host: web takes TCP 8080 from client's group only;
// client may open TCP 8080 connections only, and takes what its members
// send; an instance in no group is not filtered; a rule change applies to
// the next connection; a group that does not exist lets nothing in.
func TestFirewallOnAHost(t *testing.T) {
	netnstest.NeedRoot(t)
	h := newVPCHost(t, "dpf-host", "dpf")
	const gw = "198.18.59.1"
	ips := map[string]string{"web": "198.18.59.10", "client": "198.18.59.11", "other": "198.18.59.12", "client2": "198.18.59.13"}
	for name, ip := range ips {
		h.attach(t, "dpf-"+name, DefaultVNI, ip, gw)
		serveTCP(t, "dpf-"+name, 8080, name)
		serveTCP(t, "dpf-"+name, 9090, name)
	}
	at := func(name string) Endpoint { return Endpoint{Addr: netip.MustParseAddr(ips[name])} }
	var fw *Firewall
	if err := netnstest.In(h.ns, func() error {
		nft, err := knftables.New(InetFamily, FirewallTable("dpf"))
		fw = &Firewall{NFT: nft, Network: "dpf"}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	web := SecurityGroup{Key: "t/web", Ingress: []Rule{{Protocol: "tcp", From: 8080, To: 8080, Group: "t/client"}}, Members: []Endpoint{at("web")}}
	client := SecurityGroup{Key: "t/client", InnerAccept: true, Egress: []Rule{{Protocol: "tcp", From: 8080, To: 8080, CIDR: netip.MustParsePrefix("0.0.0.0/0")}},
		Members: []Endpoint{at("client"), at("client2")}}
	local := []Protected{{Endpoint: at("web"), Groups: []string{"t/web"}}, {Endpoint: at("client"), Groups: []string{"t/client"}}, {Endpoint: at("client2"), Groups: []string{"t/client"}}}
	sync := func(groups ...SecurityGroup) {
		t.Helper()
		if err := netnstest.In(h.ns, func() error { return fw.Sync(context.Background(), groups, local) }); err != nil {
			t.Fatal(err)
		}
	}
	sync(web, client)
	check := func(when, from, to, port string, want bool) {
		t.Helper()
		got, err := dialTCP("dpf-"+from, ips[to]+":"+port, "")
		if ok := err == nil && got == to; ok != want {
			t.Errorf("%s: %s to %s:%s: %q, %v; want allowed=%v", when, from, to, port, got, err, want)
		}
	}
	check("rules", "client", "web", "8080", true)  // client's egress, web's ingress from client's group
	check("rules", "client", "web", "9090", false) // client's egress allows 8080 alone
	check("rules", "other", "web", "8080", false)  // not in client's group
	check("rules", "client", "other", "8080", true)
	check("rules", "client2", "client", "8080", true) // inner access
	check("rules", "web", "client", "9090", false)    // web is no member of client's group
	check("rules", "web", "other", "9090", true)      // web's egress: all; other: no group

	web.Ingress = append(web.Ingress, Rule{Protocol: "tcp", From: 8080, To: 8080, CIDR: netip.MustParsePrefix(ips["other"] + "/32")})
	sync(web, client)
	check("rule added", "other", "web", "8080", true)
	sync(client) // web's group is gone: nothing in
	check("group gone", "client", "web", "8080", false)
}

// A packet from outside the instances' network (the underlay) is checked
// where it enters: one whose source the host would not route back that
// way (an instance's address, a member's) reaches neither an instance nor
// a tunnel; one from an address the host routes there passes. What comes
// out of a tunnel was checked by the host it entered, but never claims
// this host's own instances.
func TestFirewallChecksSourcesFromOutside(t *testing.T) {
	netnstest.NeedRoot(t)
	h, _ := newNATHost(t, "dpg-host", "dpg-out", "dpg")
	const gw = "198.18.59.1"
	ips := map[string]string{"web": "198.18.59.10", "client": "198.18.59.11"}
	for name, ip := range ips {
		h.attach(t, "dpg-"+name, DefaultVNI, ip, gw)
		serveTCP(t, "dpg-"+name, 8080, name)
	}
	// A stand-in tunnel: a link named as the tunnels are, in their
	// interface group, to a namespace holding a "remote" instance's
	// address.
	netnstest.New(t, "dpg-remote")
	netnstest.IP(t, "-n", "dpg-host", "link", "add", "vx9-dpg", "type", "veth", "peer", "name", "eth0", "netns", "dpg-remote")
	netnstest.IP(t, "-n", "dpg-host", "link", "set", "vx9-dpg", "group", strconv.FormatUint(uint64(TunnelGroup("dpg")), 10))
	netnstest.IP(t, "-n", "dpg-host", "link", "set", "vx9-dpg", "up")
	netnstest.IP(t, "-n", "dpg-host", "route", "add", "198.18.59.50/32", "dev", "vx9-dpg")
	netnstest.IP(t, "-n", "dpg-remote", "addr", "add", "198.18.59.50/24", "dev", "eth0")
	netnstest.IP(t, "-n", "dpg-remote", "link", "set", "eth0", "up")
	netnstest.IP(t, "-n", "dpg-remote", "route", "add", "default", "dev", "eth0")
	// The tunnel answers no ARP: the remote side knows the host's MAC.
	var hostMAC string
	if err := netnstest.In("dpg-host", func() error {
		l, err := netlink.LinkByName("vx9-dpg")
		if err == nil {
			hostMAC = l.Attrs().HardwareAddr.String()
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	for _, ip := range ips {
		netnstest.IP(t, "-n", "dpg-remote", "neigh", "replace", ip, "lladdr", hostMAC, "dev", "eth0", "nud", "permanent")
	}
	netnstest.IP(t, "-n", "dpg-out", "route", "add", "198.18.59.0/24", "via", "198.18.61.1")
	var fw *Firewall
	if err := netnstest.In(h.ns, func() error {
		nft, err := knftables.New(InetFamily, FirewallTable("dpg"))
		fw = &Firewall{NFT: nft, Network: "dpg"}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	at := func(name string) Endpoint { return Endpoint{Addr: netip.MustParseAddr(ips[name])} }
	web := SecurityGroup{Key: "t/web", Ingress: []Rule{{Protocol: "tcp", From: 8080, To: 8080, Group: "t/client"}}, Members: []Endpoint{at("web")}}
	client := SecurityGroup{Key: "t/client", Members: []Endpoint{at("client")}}
	if err := netnstest.In(h.ns, func() error {
		return fw.Sync(context.Background(), []SecurityGroup{web, client}, []Protected{{Endpoint: at("web"), Groups: []string{"t/web"}}})
	}); err != nil {
		t.Fatal(err)
	}
	if got, err := dialTCP("dpg-client", ips["web"]+":8080", ""); err != nil || got != "web" {
		t.Fatalf("the member to web: %q, %v", got, err)
	}
	// Packets received by the IP layer of namespace ns.
	received := func(ns string) int {
		var n int
		err := netnstest.In(ns, func() error {
			raw, err := os.ReadFile("/proc/thread-self/net/snmp")
			if err != nil {
				return err
			}
			lines := strings.Split(string(raw), "\n")
			for i := 0; i+1 < len(lines); i += 2 {
				if strings.HasPrefix(lines[i], "Ip:") {
					keys, vals := strings.Fields(lines[i]), strings.Fields(lines[i+1])
					for k := range keys {
						if keys[k] == "InReceives" {
							n, err = strconv.Atoi(vals[k])
							return err
						}
					}
				}
			}
			return fmt.Errorf("no Ip InReceives in %s", raw)
		})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	// settled is received(ns) once it holds still (the last connection's
	// last packets in).
	settled := func(ns string) int {
		n := received(ns)
		for range 20 {
			time.Sleep(300 * time.Millisecond)
			m := received(ns)
			if m == n {
				return n
			}
			n = m
		}
		return n
	}
	// The outside takes the member's address: nothing of it reaches web
	// (its answers would go to the member, but what it sends one way
	// would count).
	before := settled("dpg-web")
	netnstest.IP(t, "-n", "dpg-out", "addr", "add", ips["client"]+"/32", "dev", "eth0")
	if got, err := dialTCP("dpg-out", ips["web"]+":8080", ips["client"]); err == nil {
		t.Errorf("the outside reached web as a member: %q", got)
	}
	if got := received("dpg-web"); got != before {
		t.Errorf("%d packets from the outside with the member's address reached web", got-before)
	}
	// Into the tunnel: the outside's own address passes, web's does not.
	before = settled("dpg-remote")
	netnstest.IP(t, "-n", "dpg-out", "addr", "add", ips["web"]+"/32", "dev", "eth0")
	_, _ = dialTCP("dpg-out", "198.18.59.50:8080", ips["web"])
	if got := received("dpg-remote"); got != before {
		t.Errorf("%d packets from the outside with web's address went into the tunnel", got-before)
	}
	_, _ = dialTCP("dpg-out", "198.18.59.50:8080", "198.18.61.2")
	if got := received("dpg-remote"); got == before {
		t.Error("nothing from the outside's own address went into the tunnel")
	}
	// Out of the tunnel: a remote instance's address reaches client (in no
	// group of this host: not filtered); web's, a local instance's, does
	// not.
	before = settled("dpg-client")
	netnstest.IP(t, "-n", "dpg-remote", "addr", "add", ips["web"]+"/32", "dev", "eth0")
	_, _ = dialTCP("dpg-remote", ips["client"]+":8080", ips["web"])
	if got := received("dpg-client"); got != before {
		t.Errorf("%d packets out of the tunnel with a local instance's address reached client", got-before)
	}
	if got, err := dialTCP("dpg-remote", ips["client"]+":8080", "198.18.59.50"); err != nil || got != "client" {
		t.Errorf("a remote instance's address out of the tunnel to client: %q, %v", got, err)
	}
}
