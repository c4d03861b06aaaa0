package datapath

import (
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/eci-dev/eci/internal/netnstest"
)

func TestZZAttackIPv6(t *testing.T) {
	netnstest.NeedRoot(t)
	h := newVPCHost(t, "zzq-host", "zzq")
	ensureGuards(t, h)
	inst := []dualStack{
		{"zzq-a", "198.18.60.10", "2001:2:0:60::a", DefaultVNI},
		{"zzq-x", "198.18.60.11", "2001:2:0:60::b", 7},
		{"zzq-d", "198.18.60.13", "", DefaultVNI},
	}
	for _, d := range inst {
		h.attachDual(t, d)
		netnstest.ServeTCP6(t, d.name, 7400, strings.TrimPrefix(d.name, "zzq-"))
	}
	netnstest.ServeTCP6(t, h.ns, 7401, "host")
	// the host's network
	out := netnstest.New(t, "zzq-out")
	netnstest.IP(t, "-n", h.ns, "link", "add", "out6", "type", "veth", "peer", "name", "eth0", "netns", out)
	netnstest.IP(t, "-n", h.ns, "addr", "add", "2001:2:0:61::1/64", "dev", "out6", "nodad")
	netnstest.IP(t, "-n", out, "addr", "add", "2001:2:0:61::2/64", "dev", "eth0", "nodad")
	netnstest.IP(t, "-n", h.ns, "link", "set", "out6", "up")
	netnstest.IP(t, "-n", out, "link", "set", "eth0", "up")
	netnstest.IP(t, "-n", out, "-6", "route", "add", "2001:2:0:60::/64", "via", "2001:2:0:61::1")

	// 1. input path: instances reach the host's address on its own network
	for _, from := range []string{"zzq-a", "zzq-x"} {
		got, err := dialTCP(from, at6("2001:2:0:61::1", "7401"), "")
		t.Logf("ATTACK1 %s -> host's out6 address [2001:2:0:61::1]:7401: %q %v", from, got, err)
	}
	// 1b. host end's link-local
	ll, _ := exec.Command("ip", "-n", h.ns, "-6", "-br", "addr", "show", "dev", HostInterfaceName("sb-zzq-a")).CombinedOutput()
	t.Logf("host end addrs: %s", ll)
	fields := strings.Fields(string(ll))
	for _, f := range fields {
		if strings.HasPrefix(f, "fe80::") {
			a := strings.TrimSuffix(f, "/64")
			got, err := dialTCP("zzq-a", "["+a+"%eth0]:7401", "")
			t.Logf("ATTACK1b a -> host link-local %s: %q %v", a, got, err)
		}
	}

	// 2. an interface named vx* that is not a tunnel
	evil := netnstest.New(t, "zzq-evil")
	netnstest.IP(t, "-n", h.ns, "link", "add", "vxlan.calico", "type", "veth", "peer", "name", "eth0", "netns", evil)
	netnstest.IP(t, "-n", h.ns, "addr", "add", "2001:2:0:63::1/64", "dev", "vxlan.calico", "nodad")
	netnstest.IP(t, "-n", evil, "addr", "add", "2001:2:0:63::2/64", "dev", "eth0", "nodad")
	netnstest.IP(t, "-n", h.ns, "link", "set", "vxlan.calico", "up")
	netnstest.IP(t, "-n", evil, "link", "set", "eth0", "up")
	netnstest.IP(t, "-n", evil, "-6", "route", "add", "2001:2:0:60::/64", "via", "2001:2:0:63::1")
	time.Sleep(200 * time.Millisecond)
	got, err := dialTCP(evil, at6("2001:2:0:60::a", "7400"), "")
	t.Logf("ATTACK2 network behind vxlan.calico -> default-VPC instance a: %q %v", got, err)
	got, err = dialTCP(out, at6("2001:2:0:60::a", "7400"), "")
	t.Logf("CONTROL2 network behind out6 -> a: %q %v", got, err)
	got, err = dialTCP("zzq-a", at6("2001:2:0:63::2", "7400"), "")
	t.Logf("ATTACK2b a -> network behind vxlan.calico: %q %v", got, err)
	netnstest.ServeTCP6(t, evil, 7400, "evil")
	got, err = dialTCP("zzq-a", at6("2001:2:0:63::2", "7400"), "")
	t.Logf("ATTACK2c a -> server behind vxlan.calico: %q %v", got, err)

	// 3. instance without IPv6, with a static neighbour of the gateway
	mac, _ := exec.Command("ip", "-n", h.ns, "-br", "link", "show", "dev", HostInterfaceName("sb-zzq-d")).CombinedOutput()
	hm := strings.Fields(string(mac))[2]
	netnstest.IP(t, "-n", "zzq-d", "addr", "add", "2001:2:0:60::d/64", "dev", "eth0", "nodad")
	netnstest.IP(t, "-n", "zzq-d", "-6", "neigh", "replace", "2001:2:0:60::1", "lladdr", hm, "dev", "eth0", "nud", "permanent")
	netnstest.IP(t, "-n", "zzq-d", "-6", "route", "replace", "default", "via", "2001:2:0:60::1", "dev", "eth0")
	received := listenUDPOn(t, "udp6", "zzq-a", 7403)
	for range 3 {
		sendUDP(t, "zzq-d", "", at6("2001:2:0:60::a", "7403"))
	}
	time.Sleep(300 * time.Millisecond)
	t.Logf("ATTACK3 a received %d datagrams from d (no IPv6)", received("2001:2:0:60::d"))
	s, _ := exec.Command("ip", "-n", h.ns, "-s", "link", "show", "dev", HostInterfaceName("sb-zzq-d")).CombinedOutput()
	t.Logf("%s", s)
	r, _ := exec.Command("ip", "-n", h.ns, "-6", "route", "show", "table", "all").CombinedOutput()
	t.Logf("routes:\n%s", r)
}
