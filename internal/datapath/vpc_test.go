package datapath

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"sigs.k8s.io/knftables"

	"github.com/eci-dev/eci/internal/netnstest"
)

// vpcHost is a test host with its VPC isolation.
type vpcHost struct {
	ns  string
	iso *Isolation
}

func newVPCHost(t *testing.T, ns, network string) *vpcHost {
	t.Helper()
	h := &vpcHost{ns: netnstest.New(t, ns)}
	err := netnstest.In(ns, func() error {
		nft, err := knftables.New(InetFamily, IsolationTable(network))
		h.iso = &Isolation{NFT: nft, Network: network}
		if err != nil {
			return err
		}
		return HostSysctls()
	})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// attach makes instance name (a namespace of its own) of VPC vni on h, as
// the agent does: the link's mark first, then the link.
func (h *vpcHost) attach(t *testing.T, name string, vni int, ip, gw string) {
	t.Helper()
	h.attachWith(t, name, Attachment{Address: netip.PrefixFrom(netip.MustParseAddr(ip), 24), Gateway: netip.MustParseAddr(gw), VNI: vni})
}

// attachWith makes instance name with a's address, gateway, VPC and
// bandwidth.
func (h *vpcHost) attachWith(t *testing.T, name string, a Attachment) {
	t.Helper()
	netnstest.New(t, name)
	a.ContainerID, a.NetNS, a.IfName, a.MTU = "sb-"+name, netnstest.Path(name), "eth0", 1450
	err := netnstest.In(h.ns, func() error {
		if err := h.iso.Add(context.Background(), HostInterfaceName(a.ContainerID), a.VNI); err != nil {
			return err
		}
		_, err := Attach(a)
		return err
	})
	if err != nil {
		t.Fatalf("attach %s: %v", name, err)
	}
}

// newHostPair makes two hosts (<network>-h1, -h2) of network joined by an
// underlay (a veth pair ul0) with the addresses <net24>.1 and .2.
func newHostPair(t *testing.T, network, net24 string) ([]*vpcHost, []netip.Addr) {
	t.Helper()
	hosts := []*vpcHost{newVPCHost(t, network+"-h1", network), newVPCHost(t, network+"-h2", network)}
	netnstest.IP(t, "-n", hosts[0].ns, "link", "add", "ul0", "type", "veth", "peer", "name", "ul0", "netns", hosts[1].ns)
	under := []netip.Addr{netip.MustParseAddr(net24 + ".1"), netip.MustParseAddr(net24 + ".2")}
	for i, h := range hosts {
		netnstest.IP(t, "-n", h.ns, "addr", "add", under[i].String()+"/24", "dev", "ul0")
		netnstest.IP(t, "-n", h.ns, "link", "set", "ul0", "up")
	}
	return hosts, under
}

// Three VPCs on one host with the same addresses: each instance reaches
// its own VPC's neighbour at an address another VPC has too, nothing of the
// others; the host's own answers (its gateway's service) go back to the
// right one of two instances with one address; an agent that starts again
// rebuilds the marks from the kernel's routes alone.
func TestVPCsApartOnAHost(t *testing.T) {
	netnstest.NeedRoot(t)
	h := newVPCHost(t, "dpv-host", "dpv")
	const gw = "198.18.55.1"
	h.attach(t, "dpv-d1", DefaultVNI, "198.18.55.10", gw) // default VPC
	h.attach(t, "dpv-x1", 7, "198.18.55.10", gw)          // VPC 7, the same address
	h.attach(t, "dpv-x2", 7, "198.18.55.11", gw)
	h.attach(t, "dpv-y1", 8, "198.18.55.11", gw) // VPC 8, x2's address
	h.attach(t, "dpv-y2", 8, "198.18.55.12", gw)
	for name, reply := range map[string]string{"dpv-d1": "d1", "dpv-x1": "x1", "dpv-x2": "x2", "dpv-y1": "y1", "dpv-y2": "y2"} {
		serveTCP(t, name, 7200, reply)
	}
	serveTCP(t, h.ns, 7201, "host") // the gateway's service, on every address of the host

	check := func(when string) {
		t.Helper()
		for _, c := range []struct{ from, to, want string }{
			{"dpv-x1", "198.18.55.11", "x2"}, // not y1
			{"dpv-x2", "198.18.55.10", "x1"}, // not d1
			{"dpv-y1", "198.18.55.12", "y2"},
			{"dpv-y2", "198.18.55.11", "y1"}, // not x2
			{"dpv-x1", gw + ":7201", "host"},
			{"dpv-d1", gw + ":7201", "host"},
		} {
			to := c.to
			if !containsPort(to) {
				to += ":7200"
			}
			if got, err := dialTCP(c.from, to, ""); err != nil || got != c.want {
				t.Errorf("%s: %s to %s: %q, %v; want %q", when, c.from, to, got, err, c.want)
			}
		}
		for _, c := range []struct{ from, to string }{
			{"dpv-y1", "198.18.55.10"}, // x1 and d1 have it; VPC 8 does not
			{"dpv-d1", "198.18.55.11"}, // x2 and y1 have it; the default VPC does not
			{"dpv-x1", "198.18.55.12"}, // y2's
		} {
			if got, err := dialTCP(c.from, c.to+":7200", ""); err == nil {
				t.Errorf("%s: %s reached %s in another VPC: %q", when, c.from, c.to, got)
			}
		}
	}
	check("attached")

	// The agent starts again: its table is gone, Sync rebuilds it.
	err := netnstest.In(h.ns, func() error {
		tx := h.iso.NFT.NewTransaction()
		tx.Delete(&knftables.Table{})
		if err := h.iso.NFT.Run(context.Background(), tx); err != nil {
			return err
		}
		return h.iso.Sync(context.Background())
	})
	if err != nil {
		t.Fatal(err)
	}
	check("rebuilt")
}

func containsPort(s string) bool {
	_, err := netip.ParseAddrPort(s)
	return err == nil
}

// Two VPCs with the same addresses across two hosts: each VPC has its
// tunnel (its VNI), and an instance reaches the far instance of its own
// VPC, never the other VPC's at the same address.
func TestVPCsAcrossHosts(t *testing.T) {
	netnstest.NeedRoot(t)
	hosts, under := newHostPair(t, "dpw", "198.18.57")
	const gw = "198.18.58.1"
	hosts[0].attach(t, "dpw-x1", 7, "198.18.58.10", gw)
	hosts[1].attach(t, "dpw-x2", 7, "198.18.58.11", gw)
	hosts[0].attach(t, "dpw-y1", 8, "198.18.58.10", gw)
	hosts[1].attach(t, "dpw-y2", 8, "198.18.58.11", gw)
	far := map[int]netip.Addr{0: netip.MustParseAddr("198.18.58.11"), 1: netip.MustParseAddr("198.18.58.10")}
	for i, h := range hosts {
		err := netnstest.In(h.ns, func() error {
			for _, vni := range []int{7, 8} {
				o := &Overlay{Device: TunnelDevice("dpw", vni), VNI: vni, Local: under[i], MTU: 1450, Table: TableOf(vni)}
				if err := o.Ensure(); err != nil {
					return err
				}
				if err := o.Sync([]Remote{{IP: far[i], Host: under[1-i]}}); err != nil {
					return err
				}
			}
			h.iso.Tunnel = true
			if err := h.iso.Sync(context.Background()); err != nil { // the tunnels' marks
				return err
			}
			return h.iso.SetPeers(context.Background(), []netip.Addr{under[1-i]})
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for name, reply := range map[string]string{"dpw-x1": "x1", "dpw-x2": "x2", "dpw-y1": "y1", "dpw-y2": "y2"} {
		serveTCP(t, name, 7300, reply)
	}
	for _, c := range []struct{ from, to, want string }{
		{"dpw-x1", "198.18.58.11:7300", "x2"}, {"dpw-y1", "198.18.58.11:7300", "y2"},
		{"dpw-x2", "198.18.58.10:7300", "x1"}, {"dpw-y2", "198.18.58.10:7300", "y1"},
	} {
		if got, err := dialTCP(c.from, c.to, ""); err != nil || got != c.want {
			t.Errorf("%s to %s: %q, %v; want %q", c.from, c.to, got, err, c.want)
		}
	}

	// An instance of VPC 7 sends VXLAN frames of VPC 8 to its host's
	// tunnel port (its gateway and the tunnel IP): nothing is decapsulated.
	rx := func() uint64 {
		var n uint64
		_ = netnstest.In("dpw-h1", func() error {
			l, err := netlink.LinkByName(TunnelDevice("dpw", 8))
			if err == nil {
				n = l.Attrs().Statistics.RxPackets
			}
			return err
		})
		return n
	}
	time.Sleep(300 * time.Millisecond) // the connections above have ended
	before := rx()
	frame := vxlanFrame(8, TunnelMAC(under[0]), netip.MustParseAddr("198.18.58.11"), netip.MustParseAddr("198.18.58.10"))
	for _, dst := range []string{gw, under[0].String()} {
		for range 3 {
			sendUDPPayload(t, "dpw-x1", dst+":4789", frame)
		}
	}
	time.Sleep(200 * time.Millisecond)
	if after := rx(); after != before {
		t.Errorf("VPC 8's tunnel on h1 took %d frames an instance sent", after-before)
	}
}

// vxlanFrame is a VXLAN packet of vni carrying an IPv4/UDP datagram from
// src to dst, to the tunnel MAC mac.
func vxlanFrame(vni int, mac []byte, src, dst netip.Addr) []byte {
	ip := []byte{0x45, 0, 0, 28, 0, 1, 0, 0, 64, 17, 0, 0}
	ip = append(ip, src.AsSlice()...)
	ip = append(ip, dst.AsSlice()...)
	var sum uint32
	for i := 0; i < len(ip); i += 2 {
		sum += uint32(ip[i])<<8 | uint32(ip[i+1])
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	ip[10], ip[11] = byte(^sum>>8), byte(^sum)
	udp := []byte{0x30, 0x39, 0x1e, 0x90, 0, 8, 0, 0}
	frame := []byte{0x08, 0, 0, 0, byte(vni >> 16), byte(vni >> 8), byte(vni), 0}
	frame = append(frame, mac...)
	frame = append(frame, 0x02, 0, 0, 0, 0, 0x01, 0x08, 0x00)
	return append(append(frame, ip...), udp...)
}
