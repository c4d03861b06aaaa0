package datapath

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/eci-dev/eci/internal/netnstest"
)

// Two hosts joined by an underlay: instances of one vSwitch on each reach
// each other through the hosts' tunnels (TCP, UDP, a transfer of 4 MiB
// through links whose MTU leaves room for the tunnel); a remote the sync
// drops is reached no more; an instance of a host the server does not name
// is not routed.
func TestOverlayJoinsTwoHosts(t *testing.T) {
	netnstest.NeedRoot(t)
	h1, h2 := netnstest.New(t, "dpo-h1"), netnstest.New(t, "dpo-h2")
	netnstest.IP(t, "-n", h1, "link", "add", "ul0", "type", "veth", "peer", "name", "ul0", "netns", h2)
	under := map[string]netip.Addr{h1: netip.MustParseAddr("198.18.53.1"), h2: netip.MustParseAddr("198.18.53.2")}
	for _, h := range []string{h1, h2} {
		netnstest.IP(t, "-n", h, "addr", "add", under[h].String()+"/24", "dev", "ul0")
		netnstest.IP(t, "-n", h, "link", "set", "ul0", "up")
	}
	gw := netip.MustParseAddr("198.18.54.1")
	inst := map[string]netip.Addr{"a": netip.MustParseAddr("198.18.54.10"), "b": netip.MustParseAddr("198.18.54.11"), "c": netip.MustParseAddr("198.18.54.12")}
	hostOf := map[string]string{"a": h1, "b": h2, "c": h2}
	overlays := map[string]*Overlay{}
	for _, h := range []string{h1, h2} {
		overlays[h] = &Overlay{Device: "vx-dpo", VNI: 1, Local: under[h], MTU: 1500 - VXLANOverhead}
		if err := netnstest.In(h, overlays[h].Ensure); err != nil {
			t.Fatal(err)
		}
	}
	for name, ip := range inst {
		netnstest.New(t, "dpo-"+name)
		err := netnstest.In(hostOf[name], func() error {
			_, err := Attach(Attachment{ContainerID: "sb-" + name, NetNS: netnstest.Path("dpo-" + name), IfName: "eth0",
				Address: netip.PrefixFrom(ip, 24), Gateway: gw, MTU: 1500 - VXLANOverhead})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	// Each host routes the other's instances; c is left out of h1's view.
	sync := func(h string, remotes ...Remote) {
		t.Helper()
		if err := netnstest.In(h, func() error { return overlays[h].Sync(remotes) }); err != nil {
			t.Fatal(err)
		}
	}
	sync(h1, Remote{IP: inst["b"], Host: under[h2]}, Remote{IP: inst["a"], Host: under[h1]})
	sync(h2, Remote{IP: inst["a"], Host: under[h1]})
	sync(h2, Remote{IP: inst["a"], Host: under[h1]}) // nothing to change

	serveTCP(t, "dpo-b", 7100, "b")
	serveTCP(t, "dpo-c", 7100, "c")
	if got, err := dialTCP("dpo-a", inst["b"].String()+":7100", ""); err != nil || got != "b" {
		t.Fatalf("a (h1) to b (h2): %q, %v", got, err)
	}
	received := listenUDP(t, "dpo-b", 7101)
	sendUDP(t, "dpo-a", "", inst["b"].String()+":7101")
	if err := eventually(func() error { return atLeast(received(inst["a"].String()), 1) }); err != nil {
		t.Fatalf("b receives a's datagram through the tunnel: %v", err)
	}
	if n, err := transfer(t, "dpo-b", "dpo-a", inst["b"], 7102, 4<<20); err != nil || n != 4<<20 {
		t.Fatalf("4 MiB from a to b: %d bytes, %v", n, err)
	}
	if _, err := dialTCP("dpo-a", inst["c"].String()+":7100", ""); err == nil {
		t.Error("a reached c, which h1's view does not route")
	}
	var routes []netlink.Route
	_ = netnstest.In(h1, func() error {
		var err error
		routes, err = netlink.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Protocol: RouteProtocol}, netlink.RT_FILTER_PROTOCOL)
		return err
	})
	if len(routes) != 2 { // a's link, b through the tunnel (a's own host left out)
		t.Errorf("h1's routes: %v", routes)
	}
	sync(h1)
	if _, err := dialTCP("dpo-a", inst["b"].String()+":7100", ""); err == nil {
		t.Error("a reached b after h1's view dropped it")
	}
	_ = netnstest.In(h1, func() error {
		n, _ := netlink.NeighList(0, netlink.FAMILY_V4)
		for _, e := range n {
			if e.IP.Equal(inst["b"].AsSlice()) {
				t.Errorf("h1 keeps a neighbour entry of b: %v", e)
			}
		}
		return nil
	})
	if err := netnstest.In(h1, overlays[h1].Remove); err != nil {
		t.Fatal(err)
	}
}

func eventually(cond func() error) error {
	var err error
	for range 50 {
		if err = cond(); err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return err
}

// transfer sends size bytes from client to a server in server (at ip:port)
// and returns how many the server read.
func transfer(t *testing.T, server, client string, ip netip.Addr, port, size int) (int64, error) {
	network := "tcp4"
	if ip.Is6() {
		network = "tcp6"
	}
	var l net.Listener
	if err := netnstest.In(server, func() (err error) { l, err = net.Listen(network, fmt.Sprintf(":%d", port)); return err }); err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	got := make(chan int64, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			got <- -1
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(20 * time.Second))
		n, _ := io.Copy(io.Discard, c)
		got <- n
	}()
	var c net.Conn
	if err := netnstest.In(client, func() (err error) {
		c, err = net.DialTimeout(network, netip.AddrPortFrom(ip, uint16(port)).String(), 2*time.Second)
		return err
	}); err != nil {
		return 0, err
	}
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.Copy(c, bytes.NewReader(make([]byte, size))); err != nil {
		c.Close()
		return 0, err
	}
	c.Close()
	return <-got, nil
}
