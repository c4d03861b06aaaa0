package e2e

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/client"
	"github.com/eci-dev/eci/internal/poll"
	"github.com/eci-dev/eci/internal/server"
	"github.com/eci-dev/eci/internal/server/servertest"
	"github.com/eci-dev/eci/internal/testbed"
)

// A pool of two hosts on one machine (network namespaces joined by an
// underlay, each with its own containerd and an `eci agent` process given
// its tunnel IP). Instances of one vSwitch on different hosts reach each
// other by IP through the hosts' tunnels: TCP, a transfer of 4 MiB (the
// links' MTU leaves room for the tunnel), UDP (traceroute's probes, which
// the far instance's kernel answers); when a group goes, the other host no
// longer routes its address. Two tenants' VPCs with one CIDR (and one
// address in both): each tenant's instance reaches its own VPC's instance
// at that address across the hosts, and nothing only the other VPC has.
func TestPoolOfHosts(t *testing.T) {
	p := startPool(t)
	t.Run("one vSwitch across hosts", func(t *testing.T) { testAcrossHosts(t, p) })
	t.Run("VPCs apart, one address in two of them", func(t *testing.T) { testVPCs(t, p) })
	t.Run("security groups across hosts, a rule change", func(t *testing.T) { testSecurityGroups(t, p) })
	t.Run("NAT gateways, out from the host's address", func(t *testing.T) { testNATGateways(t, p) })
	t.Run("EIPs, in and out", func(t *testing.T) { testEIPs(t, p) })
	t.Run("IPv6 across hosts in a VPC", func(t *testing.T) { testIPv6(t, p) })
}

func testAcrossHosts(t *testing.T, p *pool) {
	p.t = t
	ctx, pin := p.ctx, p.pin
	bed, srv := p.bed, p.srv
	web := pin(srv.Admin, "h1", poolGroup(bed, "web", "mkdir -p /srv && echo pool-web > /srv/index.html && dd if=/dev/zero of=/srv/big bs=1024 count=4096 2>/dev/null && exec httpd -f -p 8080 -h /srv"))
	ip := web.Status.IP
	// (This busybox's wget crashes with -T.)
	client := pin(srv.Admin, "h2", poolGroup(bed, "client", fmt.Sprintf(`for i in $(seq 1 60); do wget -q -O - http://%[1]s:8080/ && break; sleep 1; done
echo "bytes=$(wget -q -O - http://%[1]s:8080/big | wc -c)"
traceroute -n -q 1 -w 2 -m 5 %[1]s 2>&1 | tail -1
echo end; exec sleep 3600`, ip)))

	var out string
	poll.Eventually(t, 90*time.Second, "the client's checks end", func() error {
		out = groupLog(ctx, srv, client.Metadata.ID)
		if !strings.Contains(out, "end\n") {
			return fmt.Errorf("log so far: %q", out)
		}
		return nil
	})
	if !strings.Contains(out, "pool-web\n") {
		t.Errorf("h2's instance did not fetch h1's page: %q", out)
	}
	if !strings.Contains(out, "bytes=4194304\n") {
		t.Errorf("h2's instance did not get the 4 MiB file whole: %q", out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 2 || !strings.Contains(lines[len(lines)-2], " "+ip+" ") {
		t.Errorf("traceroute's UDP probes did not reach %s: %q", ip, out)
	}

	srv.DeleteGroup(t, web.Metadata.ID, time.Minute, "web deleted")
	poll.Eventually(t, 20*time.Second, "h2 routes web's address no more", func() error {
		routes, err := exec.Command("ip", "-n", bed.Hosts[1].NetNS, "-4", "route", "show", ip+"/32").CombinedOutput()
		if err != nil || strings.TrimSpace(string(routes)) != "" {
			return fmt.Errorf("%s (%v)", routes, err)
		}
		return nil
	})
}

func testVPCs(t *testing.T, p *pool) {
	p.t = t
	bed, srv := p.bed, p.srv
	cidr := bed.Network.VSwitchCIDR
	at := func(n byte) string { a := cidr.Addr().As4(); a[3] = n; return netip.AddrFrom4(a).String() }
	tenants := map[string]*client.Client{}
	for _, x := range []string{"a", "b"} {
		tenants[x] = srv.TenantClient(t, x)
		if _, err := srv.Admin.CreateVPC(p.ctx, &apiv1.VPC{Metadata: apiv1.ObjectMeta{Name: "vpc-" + x, Tenant: x}}); err != nil {
			t.Fatal(err)
		}
		if _, err := srv.Admin.CreateVSwitch(p.ctx, &apiv1.VSwitch{Metadata: apiv1.ObjectMeta{Name: "vsw-" + x, Tenant: x},
			Spec: apiv1.VSwitchSpec{Zone: "zone-a", CIDR: cidr.String(), VPCID: "vpc-" + x}}); err != nil {
			t.Fatal(err)
		}
	}
	group := func(x, name, ip, script string) *apiv1.ContainerGroup {
		g := poolGroup(bed, name, script)
		g.Spec.VSwitchIDs, g.Spec.PrivateIPAddress = []string{"vsw-" + x}, ip
		return g
	}
	serve := func(reply string) string {
		return "mkdir -p /srv && echo " + reply + " > /srv/index.html && exec httpd -f -p 8080 -h /srv"
	}
	// The first address is fetched until it answers (the far host's route
	// comes with the watch); the others once, after it (their groups were
	// made before the client: their routes are there by then).
	fetch := func(ips ...string) string {
		script := fmt.Sprintf(`for i in $(seq 1 20); do out=$(wget -q -O - http://%[1]s:8080/ 2>&1) && break; sleep 1; done; echo "%[1]s: $out"`+"\n", ips[0])
		for _, ip := range ips[1:] {
			script += fmt.Sprintf(`echo "%[1]s: $(wget -q -O - http://%[1]s:8080/ 2>&1)"`+"\n", ip)
		}
		return script + "echo end; exec sleep 3600"
	}
	// .10 in both VPCs; .20 in b's alone.
	p.pin(tenants["a"], "h1", group("a", "web-a", at(10), serve("web-a")))
	p.pin(tenants["b"], "h1", group("b", "web-b", at(10), serve("web-b")))
	p.pin(tenants["b"], "h1", group("b", "only-b", at(20), serve("only-b")))
	clients := map[string]*apiv1.ContainerGroup{
		"a": p.pin(tenants["a"], "h2", group("a", "client-a", at(30), fetch(at(10), at(20)))),
		"b": p.pin(tenants["b"], "h2", group("b", "client-b", at(30), fetch(at(10), at(20)))),
	}
	want := map[string][]string{
		"a": {at(10) + ": web-a\n", at(20) + ": wget: can't connect to remote host (" + at(20) + "): No route to host\n"}, // .20 is b's alone
		"b": {at(10) + ": web-b\n", at(20) + ": only-b\n"},
	}
	for x, c := range clients {
		var out string
		poll.Eventually(t, 90*time.Second, "client-"+x+"'s fetches end", func() error {
			out = groupLog(p.ctx, srv, c.Metadata.ID)
			if !strings.Contains(out, "end\n") {
				return fmt.Errorf("log so far: %q", out)
			}
			return nil
		})
		for _, w := range want[x] {
			if !strings.Contains(out, w) {
				t.Errorf("tenant %s's client: %q, want %q in it", x, out, w)
			}
		}
	}
}

// testSecurityGroups: web (h1) takes 8080 from client's group alone; client
// (h2) reaches it, a stranger (h2, in no group) does not, until a rule lets
// every address in, which every host enforces at once.
func testSecurityGroups(t *testing.T, p *pool) {
	p.t = t
	bed, srv := p.bed, p.srv
	c := srv.TenantClient(t, "sg")
	for _, g := range []*apiv1.SecurityGroup{
		{Metadata: apiv1.ObjectMeta{Name: "client"}},
		{Metadata: apiv1.ObjectMeta{Name: "web"}, Spec: apiv1.SecurityGroupSpec{Ingress: []apiv1.SecurityRule{{Protocol: "TCP", PortRange: "8080/8080", GroupID: "client"}}}},
	} {
		if _, err := c.PutSecurityGroup(p.ctx, g); err != nil {
			t.Fatal(err)
		}
	}
	web := poolGroup(bed, "sg-web", "mkdir -p /srv && echo pool-sg > /srv/index.html && exec httpd -f -p 8080 -h /srv")
	web.Spec.SecurityGroupIDs = []string{"web"}
	ip := p.pin(c, "h1", web).Status.IP
	// Every 100 ms a connection (nc gives up after a second: a dropped SYN
	// has no answer); the time of the first page.
	try := fmt.Sprintf(`while true; do if printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 1 %s 8080 2>/dev/null | grep -q pool-sg; then echo "reached $(cut -d' ' -f1 /proc/uptime)"; break; fi; sleep 0.1; done; exec sleep 3600`, ip)
	client := poolGroup(bed, "sg-client", try)
	client.Spec.SecurityGroupIDs = []string{"client"}
	clientID := p.pin(c, "h2", client).Metadata.ID
	strangerID := p.pin(c, "h2", poolGroup(bed, "sg-stranger", try)).Metadata.ID
	poll.Eventually(t, 30*time.Second, "the client reaches web", func() error {
		if out := groupLog(p.ctx, srv, clientID); !strings.Contains(out, "reached") {
			return fmt.Errorf("log: %q", out)
		}
		return nil
	})
	poll.Consistently(t, 3*time.Second, "the stranger does not reach web", func() error {
		out, err := readGroupLog(p.ctx, srv, strangerID)
		if err != nil || out != "" {
			return fmt.Errorf("log: %q (%v)", out, err)
		}
		return nil
	})
	open := &apiv1.SecurityGroup{Metadata: apiv1.ObjectMeta{Name: "web"}, Spec: apiv1.SecurityGroupSpec{Ingress: []apiv1.SecurityRule{
		{Protocol: "TCP", PortRange: "8080/8080", GroupID: "client"}, {Protocol: "TCP", PortRange: "8080/8080", CIDR: "0.0.0.0/0"}}}}
	if _, err := c.PutSecurityGroup(p.ctx, open); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, 5*time.Second, "the stranger reaches web once a rule lets every address in", func() error {
		if out := groupLog(p.ctx, srv, strangerID); !strings.Contains(out, "reached") {
			return fmt.Errorf("log: %q", out)
		}
		return nil
	})
}

// pool is a test bed of two hosts with an eci server and an agent on each.
type pool struct {
	bed *testbed.Bed
	srv *servertest.Server
	ctx context.Context
	t   testing.TB
}

// startPool starts a pool of two hosts, with a shared vSwitch vsw-pool on
// the bed's vSwitch range in the default VPC.
func startPool(t testing.TB) *pool {
	bed := testbed.New(t, testbed.Options{Hosts: 2})
	eciBin := buildEci(t)
	gw := bed.Network.UnderlayGateway.String()
	srv := servertest.Start(t, func(c *server.Config) {
		c.Addr, c.TLSNames, c.Control.EIPRange = gw+":0", []string{gw}, bed.Network.EIPRange
	})
	srv.VSwitch(t, "vsw-pool", "zone-a", bed.Network.VSwitchCIDR.String())
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	t.Cleanup(cancel)
	startPoolAgents(t, srv, bed, eciBin)
	return &pool{bed: bed, srv: srv, ctx: ctx, t: t}
}

// pin makes g with c on host alone (the other hosts cordoned meanwhile)
// and returns it Running.
func (p *pool) pin(c *client.Client, host string, g *apiv1.ContainerGroup) *apiv1.ContainerGroup {
	p.t.Helper()
	for _, h := range p.bed.Hosts {
		cordon := h.Name != host
		if _, err := p.srv.Admin.UpdateHost(p.ctx, h.Name, apiv1.HostUpdate{Unschedulable: &cordon}); err != nil {
			p.t.Fatal(err)
		}
	}
	out, _, err := c.CreateGroup(p.ctx, g)
	if err != nil {
		p.t.Fatal(err)
	}
	return p.srv.WaitGroup(p.t, out.Metadata.ID, "Running on "+host, func(g *apiv1.ContainerGroup) bool {
		return g.Status.State == apiv1.StateRunning && g.Status.Host == host
	})
}

// startPoolAgents runs an eci agent process in each host of the bed's
// pool, with the host's tunnel IP, and waits until every host is Ready.
func startPoolAgents(t testing.TB, srv *servertest.Server, bed *testbed.Bed, eciBin string) {
	t.Helper()
	dir := t.TempDir()
	logs := filepath.Join(dir, "logs")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, h := range bed.Hosts {
		copyFile(t, filepath.Join(filepath.Dir(eciBin), "eci-cni"), filepath.Join(h.Containerd.CNIBinDir, "eci-cni"))
		tok, err := srv.Admin.CreateToken(context.Background(), &apiv1.Token{Spec: apiv1.TokenSpec{Kind: apiv1.TokenHost, Host: h.Name}})
		if err != nil {
			t.Fatal(err)
		}
		tokenFile := filepath.Join(dir, h.Name+".token")
		if err := os.WriteFile(tokenFile, []byte(tok.Status.Token), 0o600); err != nil {
			t.Fatal(err)
		}
		startProc(t, "agent-"+h.Name, logs, "nsenter", "--net=/var/run/netns/"+h.NetNS, "--", eciBin, "agent",
			"--server", srv.URL(), "--ca-file", srv.CAFile(), "--token-file", tokenFile, "--host-name", h.Name, "--zone", "zone-a",
			"--cpu", "32", "--memory", "128", "--max-groups", "50", "--cri-endpoint", h.Containerd.Endpoint,
			"--cgroup-parent", bed.CgroupParent+"/"+h.Name, "--log-dir", filepath.Join(h.Dir, "group-logs"), "--state-dir", filepath.Join(h.Dir, "agent"),
			"--cni-conf-dir", h.Containerd.CNIConfDir, "--network-name", bed.Network.AgentNetwork, "--cni-socket", filepath.Join(h.Dir, "cni.sock"),
			"--resolv-conf", "", "--stream-address", h.TunnelIP.String()+":0", "--registry-config-dir", h.Containerd.CertsDir,
			"--tunnel-ip", h.TunnelIP.String(), "--groups-cpu-weight", "50")
	}
	poll.Eventually(t, 60*time.Second, "every host of the pool Ready with its tunnel IP", func() error {
		hosts, err := srv.Admin.ListHosts(context.Background())
		if err != nil {
			return err
		}
		ready := 0
		for _, h := range hosts {
			if h.Status.Ready && h.Spec.TunnelIP != "" {
				ready++
			}
		}
		if ready != len(bed.Hosts) {
			return fmt.Errorf("%d of %d ready: %+v", ready, len(bed.Hosts), hosts)
		}
		return nil
	})
	// --groups-cpu-weight 50: the host's groups weigh half of what the
	// kernel gives a cgroup by default (cgroup v1: cpu.shares 512).
	for _, h := range bed.Hosts {
		file, want := filepath.Join("/sys/fs/cgroup/cpu", bed.CgroupParent, h.Name, "cpu.shares"), "512"
		if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
			file, want = filepath.Join("/sys/fs/cgroup", bed.CgroupParent, h.Name, "cpu.weight"), "50"
		}
		if data, err := os.ReadFile(file); err != nil || strings.TrimSpace(string(data)) != want {
			t.Fatalf("%s = %q (%v), want %s (--groups-cpu-weight 50)", file, data, err, want)
		}
	}
}

// poolGroup is a group of one busybox container running script.
func poolGroup(bed *testbed.Bed, name, script string) *apiv1.ContainerGroup {
	return &apiv1.ContainerGroup{Metadata: apiv1.ObjectMeta{Name: name}, Spec: apiv1.ContainerGroupSpec{
		Containers: []apiv1.Container{{Name: "main", Image: bed.Registry.Busybox, Command: []string{"sh", "-c", script}}}}}
}

// groupLog is the log of a group's main container ("" when unreadable).
func groupLog(ctx context.Context, srv *servertest.Server, id string) string {
	out, _ := readGroupLog(ctx, srv, id)
	return out
}

// readGroupLog is the log of a group's main container.
func readGroupLog(ctx context.Context, srv *servertest.Server, id string) (string, error) {
	rc, err := srv.Admin.Logs(ctx, id, apiv1.LogOptions{Container: "main"})
	if err != nil {
		return "", err
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	return string(data), err
}

// testIPv6 runs two dual-stack instances of a tenant's VPC on the two
// hosts: one fetches the other's page and a 4 MiB file by its IPv6
// address, through the VPC's tunnel.
func testIPv6(t *testing.T, p *pool) {
	p.t = t
	bed, srv := p.bed, p.srv
	c := srv.TenantClient(t, "six")
	if _, err := srv.Admin.CreateVPC(p.ctx, &apiv1.VPC{Metadata: apiv1.ObjectMeta{Name: "vpc-six", Tenant: "six"}}); err != nil {
		t.Fatal(err)
	}
	vsw, err := srv.Admin.CreateVSwitch(p.ctx, &apiv1.VSwitch{Metadata: apiv1.ObjectMeta{Name: "vsw-six", Tenant: "six"},
		Spec: apiv1.VSwitchSpec{Zone: "zone-a", CIDR: bed.Network.VSwitchCIDR.String(), IPv6CIDR: bed.Network.VSwitchIPv6CIDR.String(), VPCID: "vpc-six"}})
	if err != nil {
		t.Fatal(err)
	}
	group := func(name, script string) *apiv1.ContainerGroup {
		g := poolGroup(bed, name, script)
		g.Spec.VSwitchIDs, g.Spec.EnableIPv6 = []string{vsw.Metadata.ID}, true
		return g
	}
	web := p.pin(c, "h1", group("web6", "mkdir -p /srv && echo web6 > /srv/index.html && dd if=/dev/zero of=/srv/big bs=1024 count=4096 2>/dev/null && exec httpd -f -p 8080 -h /srv"))
	ip6, err := netip.ParseAddr(web.Status.IPv6Address)
	if err != nil || !bed.Network.VSwitchIPv6CIDR.Contains(ip6) {
		t.Fatalf("web6's status.ipv6Address %q: not in %s", web.Status.IPv6Address, bed.Network.VSwitchIPv6CIDR)
	}
	client := p.pin(c, "h2", group("client6", fmt.Sprintf(`for i in $(seq 1 30); do out=$(timeout 3 wget -q -O - http://[%[1]s]:8080/ 2>&1) && break; sleep 1; done
echo "page: $out"
echo "bytes=$(timeout 20 wget -q -O - http://[%[1]s]:8080/big | wc -c)"
ip addr show dev eth0 | grep -o 'inet6 [^ ]*'
echo end; exec sleep 3600`, ip6)))
	var out string
	poll.Eventually(t, 90*time.Second, "client6's fetches end", func() error {
		out = groupLog(p.ctx, srv, client.Metadata.ID)
		if !strings.Contains(out, "end\n") {
			return fmt.Errorf("log so far: %q", out)
		}
		return nil
	})
	got, _ := srv.Admin.GetGroup(p.ctx, client.Metadata.ID)
	for _, want := range []string{"page: web6\n", "bytes=4194304\n", "inet6 " + got.Status.IPv6Address + "/64\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("client6 on h2: %q, want %q in it", out, want)
		}
	}
}
