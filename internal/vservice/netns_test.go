package vservice

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"testing"
	"time"

	"github.com/eci-dev/eci/internal/datapath"
	"github.com/eci-dev/eci/internal/netnstest"
)

// A test network: network namespaces made with ip(8), named with the test's
// prefix, removed when the test ends. Addresses come from 198.18.0.0/15.

func ipCmd(t testing.TB, args ...string) { t.Helper(); netnstest.IP(t, args...) }

func needRoot(t testing.TB) {
	t.Helper()
	netnstest.NeedRoot(t)
	if _, err := exec.LookPath("nft"); err != nil {
		t.Fatal("nft is not installed: hack/install-deps.sh installs it")
	}
}

func newNetns(t testing.TB, name string) string { t.Helper(); return netnstest.New(t, name) }

func inNetns(name string, fn func() error) error { return netnstest.In(name, fn) }

func serveTCP(t testing.TB, ns string, port int, reply string) {
	netnstest.ServeTCP(t, ns, port, reply)
}

func dialTCP(ns, addr string) (string, error) { return netnstest.DialTCP(ns, addr, "") }

// attach makes an instance namespace with address addr/24 attached to host
// as the agent attaches a sandbox (internal/datapath: a routed veth pair,
// the gateway gw on the host's end).
func attach(t testing.TB, host, name, addr, gw string) string {
	t.Helper()
	ns := newNetns(t, name)
	err := inNetns(host, func() error {
		_, err := datapath.Attach(datapath.Attachment{ContainerID: name, NetNS: netnstest.Path(name), IfName: "eth0",
			Address: netip.PrefixFrom(netip.MustParseAddr(addr), 24), Gateway: netip.MustParseAddr(gw)})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return ns
}

// serveUDP answers every datagram to port in ns with reply.
func serveUDP(t testing.TB, ns string, port int, reply string) {
	t.Helper()
	var pc net.PacketConn
	if err := inNetns(ns, func() (err error) { pc, err = net.ListenPacket("udp4", fmt.Sprintf(":%d", port)); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 512)
		for {
			_, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo([]byte(reply), from)
		}
	}()
}

// askUDP sends a datagram from ns to addr and returns the answer and where
// it came from.
func askUDP(ns, addr string) (string, string, error) {
	var c net.Conn
	if err := inNetns(ns, func() (err error) { c, err = net.Dial("udp4", addr); return err }); err != nil {
		return "", "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("q")); err != nil {
		return "", "", err
	}
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	if err != nil {
		return "", "", err
	}
	// A connected UDP socket only takes datagrams from addr: an answer
	// means it came back from the virtual IP.
	return string(buf[:n]), c.RemoteAddr().String(), nil
}

// udpConn is a UDP socket of ns connected to addr (one source port: one
// conntrack entry for as long as it is used).
func udpConn(ns, addr string) (c net.Conn, err error) {
	err = inNetns(ns, func() error { c, err = net.Dial("udp4", addr); return err })
	return c, err
}

// exchange sends a datagram on c and returns the answer.
func exchange(c net.Conn) (string, error) {
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("q")); err != nil {
		return "", err
	}
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	return string(buf[:n]), err
}

// syncIn runs p.Sync on a thread in ns (nft runs there).
func syncIn(ctx context.Context, ns string, p *Proxy, tables []Table) error {
	return inNetns(ns, func() error { _, err := p.Sync(ctx, tables); return err })
}
