package e2e

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/client"
	"github.com/eci-dev/eci/internal/poll"
)

// testNATGateways: a server on the underlay (the test's, at the underlay's
// gateway) answers with the address a connection came from. Instances on
// h2 of vSwitches with a NAT gateway, one in the default VPC and one in a
// tenant's VPC, reach it from h2's own address; an instance of the
// tenant's vSwitch without one reaches nothing outside.
func testNATGateways(t *testing.T, p *pool) {
	p.t = t
	bed, srv := p.bed, p.srv
	ln, err := net.Listen("tcp4", net.JoinHostPort(bed.Network.UnderlayGateway.String(), "0"))
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		fmt.Fprintf(w, "from=%s\n", host)
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	t.Cleanup(func() { _ = hs.Close() })
	url := "http://" + ln.Addr().String() + "/"

	c := srv.TenantClient(t, "nat")
	if _, err := srv.Admin.CreateVPC(p.ctx, &apiv1.VPC{Metadata: apiv1.ObjectMeta{Name: "vpc-nat", Tenant: "nat"}}); err != nil {
		t.Fatal(err)
	}
	halves := bed.Network.VSwitchCIDR.Addr().As4()
	halves[3] = 128
	for _, v := range []*apiv1.VSwitch{
		{Metadata: apiv1.ObjectMeta{Name: "vsw-nat", Tenant: "nat"}, Spec: apiv1.VSwitchSpec{Zone: "zone-a", VPCID: "vpc-nat", NATGateway: true,
			CIDR: netip.PrefixFrom(bed.Network.VSwitchCIDR.Addr(), 25).String()}},
		{Metadata: apiv1.ObjectMeta{Name: "vsw-closed", Tenant: "nat"}, Spec: apiv1.VSwitchSpec{Zone: "zone-a", VPCID: "vpc-nat",
			CIDR: netip.PrefixFrom(netip.AddrFrom4(halves), 25).String()}},
		{Metadata: apiv1.ObjectMeta{Name: "vsw-pool-nat"}, Spec: apiv1.VSwitchSpec{Zone: "zone-a", NATGateway: true,
			CIDR: bed.Network.LargeVSwitchCIDR.String()}},
	} {
		if _, err := srv.Admin.CreateVSwitch(p.ctx, v); err != nil {
			t.Fatal(err)
		}
	}
	// Tried until it answers (the agents read the vSwitches' gateways every
	// 10 s); then, the gateway in force, the closed vSwitch's instance tries
	// three times.
	try := func(n int) string {
		return fmt.Sprintf(`for i in $(seq 1 %d); do out=$(timeout 3 wget -q -O - %s 2>&1) && break; sleep 1; done; echo "out: $out"; echo end; exec sleep 3600`, n, url)
	}
	h2 := bed.Hosts[1].TunnelIP.String()
	run := func(c *client.Client, name, vsw string, tries int) string {
		g := poolGroup(bed, name, try(tries))
		g.Spec.VSwitchIDs = []string{vsw}
		id := p.pin(c, "h2", g).Metadata.ID
		var out string
		poll.Eventually(t, 90*time.Second, name+"'s tries end", func() error {
			out = groupLog(p.ctx, srv, id)
			if !strings.Contains(out, "end\n") {
				return fmt.Errorf("log so far: %q", out)
			}
			return nil
		})
		return out
	}
	for _, g := range []struct {
		c         *client.Client
		name, vsw string
	}{{c, "nat-tenant", "vsw-nat"}, {srv.Admin, "nat-default", "vsw-pool-nat"}} {
		if out, want := run(g.c, g.name, g.vsw, 30), "out: from="+h2+"\n"; !strings.Contains(out, want) {
			t.Errorf("%s: %q, want %q in it", g.name, out, want)
		}
	}
	if out := run(c, "nat-closed", "vsw-closed", 3); strings.Contains(out, "from=") {
		t.Errorf("nat-closed (no NAT gateway) reached the underlay: %q", out)
	}

}
