package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os/exec"
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
	url := serveUnderlay(t, p)

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

// serveUnderlay serves, on the underlay's gateway (the test's end), an
// answer naming the address a connection came from; it returns its URL.
func serveUnderlay(t *testing.T, p *pool) string {
	t.Helper()
	ln, err := net.Listen("tcp4", net.JoinHostPort(p.bed.Network.UnderlayGateway.String(), "0"))
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		fmt.Fprintf(w, "from=%s\n", host)
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	t.Cleanup(func() { _ = hs.Close() })
	return "http://" + ln.Addr().String() + "/"
}

// testEIPs: on h2, an instance of the default VPC with an EIP of its own
// and one of a tenant's VPC with the tenant's EIP are reached from the
// underlay (the test) at their EIPs, and reach the underlay from them;
// when the tenant's group goes, its EIP is free and nothing answers it.
func testEIPs(t *testing.T, p *pool) {
	p.t = t
	bed, srv := p.bed, p.srv
	url := serveUnderlay(t, p)
	c := srv.TenantClient(t, "eip")
	if _, err := srv.Admin.CreateVPC(p.ctx, &apiv1.VPC{Metadata: apiv1.ObjectMeta{Name: "vpc-eip", Tenant: "eip"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Admin.CreateVSwitch(p.ctx, &apiv1.VSwitch{Metadata: apiv1.ObjectMeta{Name: "vsw-eip", Tenant: "eip"},
		Spec: apiv1.VSwitchSpec{Zone: "zone-a", VPCID: "vpc-eip", CIDR: bed.Network.VSwitchCIDR.String()}}); err != nil {
		t.Fatal(err)
	}
	eip, err := c.AllocateEIP(p.ctx, &apiv1.EIP{Metadata: apiv1.ObjectMeta{Name: "web"}})
	if err != nil {
		t.Fatal(err)
	}
	script := func(name string) string {
		return fmt.Sprintf(`mkdir -p /srv && echo %s > /srv/index.html && httpd -p 8080 -h /srv
for i in $(seq 1 30); do out=$(timeout 3 wget -q -O - %s 2>&1) && break; sleep 1; done; echo "out: $out"; echo end; exec sleep 3600`, name, url)
	}
	tenantWeb := poolGroup(bed, "eip-tenant", script("eip-tenant"))
	tenantWeb.Spec.VSwitchIDs, tenantWeb.Spec.EIPID = []string{"vsw-eip"}, eip.Metadata.ID
	defaultWeb := poolGroup(bed, "eip-default", script("eip-default"))
	defaultWeb.Spec.WithEIP = true
	groups := map[string]*apiv1.ContainerGroup{
		"eip-tenant":  p.pin(c, "h2", tenantWeb),
		"eip-default": p.pin(srv.Admin, "h2", defaultWeb),
	}
	hc := &http.Client{Timeout: 3 * time.Second}
	for name, g := range groups {
		addr := g.Status.EIPAddress
		if addr == "" || !bed.Network.EIPRange.Contains(netip.MustParseAddr(addr)) {
			t.Fatalf("%s has EIP %q, not one of %s", name, addr, bed.Network.EIPRange)
		}
		poll.Eventually(t, 30*time.Second, name+" answers at its EIP "+addr, func() error {
			resp, err := hc.Get("http://" + addr + ":8080/")
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if strings.TrimSpace(string(body)) != name {
				return fmt.Errorf("answer %q", body)
			}
			return nil
		})
		var out string
		poll.Eventually(t, 60*time.Second, name+"'s tries end", func() error {
			out = groupLog(p.ctx, srv, g.Metadata.ID)
			if !strings.Contains(out, "end\n") {
				return fmt.Errorf("log so far: %q", out)
			}
			return nil
		})
		if want := "out: from=" + addr + "\n"; !strings.Contains(out, want) {
			t.Errorf("%s: %q, want %q in it", name, out, want)
		}
	}
	tenantAddr := groups["eip-tenant"].Status.EIPAddress
	srv.DeleteGroup(t, groups["eip-tenant"].Metadata.ID, time.Minute, "eip-tenant deleted")
	got, err := c.ListEIPs(p.ctx)
	if err != nil || len(got) != 1 || got[0].Status.GroupID != "" {
		t.Fatalf("the tenant's EIPs after its group went: %+v, %v", got, err)
	}
	poll.Eventually(t, 30*time.Second, "nothing answers "+tenantAddr, func() error {
		_ = exec.Command("ip", "neigh", "flush", "dev", bed.Network.UnderlayBridge).Run()
		if resp, err := hc.Get("http://" + tenantAddr + ":8080/"); err == nil {
			resp.Body.Close()
			return fmt.Errorf("%s still answers", tenantAddr)
		}
		return nil
	})
}
