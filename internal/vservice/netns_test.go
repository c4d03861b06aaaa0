package vservice

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netns"
)

// A test network: network namespaces made with ip(8), named with the test's
// prefix, removed when the test ends. Addresses come from 198.18.0.0/15.

func ipCmd(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

func needRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces)")
	}
	if _, err := exec.LookPath("nft"); err != nil {
		t.Fatal("nft is not installed: hack/install-deps.sh installs it")
	}
}

// newNetns makes a network namespace and removes it when the test ends.
func newNetns(t testing.TB, name string) string {
	t.Helper()
	_ = exec.Command("ip", "netns", "del", name).Run()
	ipCmd(t, "netns", "add", name)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	ipCmd(t, "-n", name, "link", "set", "lo", "up")
	return name
}

// attach makes an instance namespace with address addr/24 on host's bridge
// br, its default route via gw.
func attach(t testing.TB, host, br, name, addr, gw string) string {
	t.Helper()
	ns := newNetns(t, name)
	hostSide := "v" + name
	if len(hostSide) > 15 {
		hostSide = hostSide[:15]
	}
	ipCmd(t, "-n", host, "link", "add", hostSide, "type", "veth", "peer", "name", "eth0", "netns", ns)
	ipCmd(t, "-n", host, "link", "set", hostSide, "master", br, "up")
	// As the agent's CNI bridge config does (hairpinMode): a connection an
	// instance makes to a virtual IP that leads back to itself is bridged
	// back out of the port it came in by.
	ipCmd(t, "-n", host, "link", "set", hostSide, "type", "bridge_slave", "hairpin", "on")
	ipCmd(t, "-n", ns, "addr", "add", addr+"/24", "dev", "eth0")
	ipCmd(t, "-n", ns, "link", "set", "eth0", "up")
	ipCmd(t, "-n", ns, "route", "add", "default", "via", gw)
	return ns
}

// inNetns runs fn on a thread in namespace name (sockets made there stay
// there; commands started there run there).
func inNetns(name string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// The thread is left to die, not returned to the pool in another
		// namespace: the goroutine ends without unlocking.
		target, err := netns.GetFromName(name)
		if err != nil {
			errc <- err
			return
		}
		defer target.Close()
		if err := netns.Set(target); err != nil {
			errc <- err
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// serveTCP answers every connection to port in ns with reply.
func serveTCP(t testing.TB, ns string, port int, reply string) {
	t.Helper()
	var l net.Listener
	if err := inNetns(ns, func() (err error) { l, err = net.Listen("tcp4", fmt.Sprintf(":%d", port)); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte(reply))
			c.Close()
		}
	}()
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

// dialTCP connects from ns to addr and returns what the server said.
func dialTCP(ns, addr string) (string, error) {
	var c net.Conn
	if err := inNetns(ns, func() (err error) { c, err = net.DialTimeout("tcp4", addr, 2*time.Second); return err }); err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	if err != nil && !errors.Is(err, net.ErrClosed) && n == 0 {
		return "", err
	}
	return string(buf[:n]), nil
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
