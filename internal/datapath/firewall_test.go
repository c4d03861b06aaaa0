package datapath

import (
	"context"
	"net/netip"
	"testing"

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
		nft, err := knftables.New(knftables.IPv4Family, FirewallTable("dpf"))
		fw = &Firewall{NFT: nft}
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
