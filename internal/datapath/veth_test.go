package datapath

import (
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/eci-dev/eci/internal/netnstest"
	"github.com/eci-dev/eci/internal/poll"
)

// Instances attached to one host reach each other through it (TCP, UDP,
// their gateway); an instance that sends from an address not its own, even
// another instance's it has put on its interface (NET_ADMIN), reaches
// nobody, and takes over nothing; a second attach of a sandbox makes it
// again; detach leaves no interface or route.
func TestAttachOnAHost(t *testing.T) {
	netnstest.NeedRoot(t)
	host := netnstest.New(t, "dpt-host")
	gw := netip.MustParseAddr("198.18.52.1")
	inst := map[string]string{"a": "198.18.52.10", "b": "198.18.52.11", "c": "198.18.52.12"}
	attach := func(name string) {
		t.Helper()
		err := netnstest.In(host, func() error {
			_, err := Attach(Attachment{ContainerID: "sb-" + name, NetNS: netnstest.Path("dpt-" + name), IfName: "eth0",
				Address: netip.PrefixFrom(netip.MustParseAddr(inst[name]), 24), Gateway: gw})
			return err
		})
		if err != nil {
			t.Fatalf("attach %s: %v", name, err)
		}
	}
	for _, name := range []string{"a", "b", "c"} {
		netnstest.New(t, "dpt-"+name)
		attach(name)
	}
	attach("a") // the runtime's retry of an ADD
	received := listenUDP(t, "dpt-b", 7000)
	serveTCP(t, "dpt-c", 7001, "c")

	if got, err := dialTCP("dpt-b", inst["c"]+":7001", ""); err != nil || got != "c" {
		t.Fatalf("b to c: %q, %v", got, err)
	}
	if got, err := dialTCP("dpt-a", inst["c"]+":7001", ""); err != nil || got != "c" {
		t.Fatalf("a (attached twice) to c: %q, %v", got, err)
	}
	sendUDP(t, "dpt-a", "", inst["b"]+":7000")
	poll.Eventually(t, 5*time.Second, "b receives a's datagram", func() error { return atLeast(received(inst["a"]), 1) })
	serveTCP(t, "dpt-host", 7002, "host")
	if got, err := dialTCP("dpt-a", gw.String()+":7002", ""); err != nil || got != "host" {
		t.Fatalf("a to its gateway: %q, %v", got, err)
	}

	// a takes c's address and one nobody has, and sends from them.
	netnstest.IP(t, "-n", "dpt-a", "addr", "add", inst["c"]+"/32", "dev", "eth0")
	netnstest.IP(t, "-n", "dpt-a", "addr", "add", "198.18.52.99/32", "dev", "eth0")
	for _, src := range []string{inst["c"], "198.18.52.99"} {
		for range 5 {
			sendUDP(t, "dpt-a", src, inst["b"]+":7000")
		}
		if _, err := dialTCP("dpt-a", inst["b"]+":7000", src); err == nil {
			t.Errorf("a connected from %s", src)
		}
	}
	sendUDP(t, "dpt-a", "", inst["b"]+":7000") // the last one sent: a's own
	poll.Eventually(t, 5*time.Second, "b receives a's second datagram", func() error { return atLeast(received(inst["a"]), 2) })
	if n, m := received(inst["c"]), received("198.18.52.99"); n != 0 || m != 0 {
		t.Errorf("b received %d datagrams from c's address and %d from 198.18.52.99, all sent by a", n, m)
	}
	if got, err := dialTCP("dpt-b", inst["c"]+":7001", ""); err != nil || got != "c" {
		t.Errorf("b to c once a claims c's address: %q, %v", got, err)
	}

	var links []netlink.Link
	_ = netnstest.In(host, func() error {
		for _, name := range []string{"a", "b", "c"} {
			if err := Detach("sb-" + name); err != nil {
				return err
			}
		}
		var err error
		links, err = netlink.LinkList()
		return err
	})
	for _, l := range links {
		if l.Type() == "veth" {
			t.Errorf("after detach: %s is left", l.Attrs().Name)
		}
	}
	if err := netnstest.In(host, func() error { return Detach("sb-a") }); err != nil {
		t.Errorf("a second detach: %v", err)
	}
}

func atLeast(n, want int) error {
	if n < want {
		return fmt.Errorf("%d received", n)
	}
	return nil
}

// listenUDP records the sources of datagrams to port in ns; the function
// it returns counts those from ip.
func listenUDP(t *testing.T, ns string, port int) func(ip string) int {
	return listenUDPOn(t, "udp4", ns, port)
}

// listenUDPOn is listenUDP on network udp4 or udp6.
func listenUDPOn(t *testing.T, network, ns string, port int) func(ip string) int {
	var pc net.PacketConn
	if err := netnstest.In(ns, func() (err error) { pc, err = net.ListenPacket(network, fmt.Sprintf(":%d", port)); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	var mu sync.Mutex
	from := map[string]int{}
	go func() {
		buf := make([]byte, 64)
		for {
			_, addr, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			mu.Lock()
			from[addr.(*net.UDPAddr).IP.String()]++
			mu.Unlock()
		}
	}()
	return func(ip string) int { mu.Lock(); defer mu.Unlock(); return from[ip] }
}

// sendUDP sends a datagram from ns (from src when not "") to addr.
func sendUDP(t *testing.T, ns, src, addr string) {
	t.Helper()
	err := netnstest.In(ns, func() error {
		d := net.Dialer{}
		if src != "" {
			d.LocalAddr = &net.UDPAddr{IP: net.ParseIP(src)}
		}
		c, err := d.Dial("udp", addr) // addr's family
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write([]byte("q"))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// sendUDPPayload sends payload in one datagram from ns to addr.
func sendUDPPayload(t *testing.T, ns, addr string, payload []byte) {
	t.Helper()
	err := netnstest.In(ns, func() error {
		c, err := net.Dial("udp4", addr)
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write(payload)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func serveTCP(t *testing.T, ns string, port int, reply string) {
	netnstest.ServeTCP(t, ns, port, reply)
}

func dialTCP(ns, addr, src string) (string, error) { return netnstest.DialTCP(ns, addr, src) }

func TestHostInterfaceName(t *testing.T) {
	a, b := HostInterfaceName("0123456789abcdef"), HostInterfaceName("0123456789abcdee")
	if len(a) != 15 || a == b || a[:len(InterfacePrefix)] != InterfacePrefix {
		t.Fatalf("names %q, %q", a, b)
	}
}

// An instance without IPv6 sends nothing of IPv6 (no link-local address,
// so no duplicate address detection, router solicitation or multicast
// listener report): the per-sandbox kernel work of autoconf is waste when
// the vSwitch has no IPv6. Its host end receives no packet at all while
// the instance is idle.
func TestInstanceWithoutIPv6SendsNothing(t *testing.T) {
	netnstest.NeedRoot(t)
	host := netnstest.New(t, "dpq-host")
	netnstest.New(t, "dpq-a")
	var hostEnd string
	err := netnstest.In(host, func() error {
		at, err := Attach(Attachment{ContainerID: "sb-q", NetNS: netnstest.Path("dpq-a"), IfName: "eth0",
			Address: netip.MustParsePrefix("198.18.53.10/24"), Gateway: netip.MustParseAddr("198.18.53.1")})
		if at != nil {
			hostEnd = at.HostInterface
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("ip", "-n", "dpq-a", "-6", "addr", "show", "dev", "eth0").CombinedOutput()
	if err != nil || strings.Contains(string(out), "inet6") {
		t.Errorf("the instance's eth0 has IPv6 addresses (%v):\n%s", err, out)
	}
	// Autoconf's first packets come within a second or two of the link
	// going up (DAD, then router solicitations every 4 s).
	poll.Consistently(t, 3*time.Second, "the instance sends nothing", func() error {
		var rx uint64
		err := netnstest.In(host, func() error {
			l, err := netlink.LinkByName(hostEnd)
			if err == nil {
				rx = l.Attrs().Statistics.RxPackets
			}
			return err
		})
		if err != nil {
			return err
		}
		if rx != 0 {
			return fmt.Errorf("the host end received %d packets from an idle instance", rx)
		}
		return nil
	})
}
