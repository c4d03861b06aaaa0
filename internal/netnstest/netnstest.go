// Package netnstest makes test networks out of network namespaces made with
// ip(8): named with the test's prefix, removed when the test ends, with
// addresses from 198.18.0.0/15. Tests of the data path (internal/datapath)
// and of virtual services (internal/vservice) build their hosts and
// instances with it.
package netnstest

import (
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

// IP runs ip(8) with args and fails the test if it fails.
func IP(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// NeedRoot skips a test that can't make namespaces.
func NeedRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces)")
	}
}

// New makes network namespace name (with its loopback up) and removes it
// when the test ends; it returns name.
func New(t testing.TB, name string) string {
	t.Helper()
	_ = exec.Command("ip", "netns", "del", name).Run()
	IP(t, "netns", "add", name)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	IP(t, "-n", name, "link", "set", "lo", "up")
	return name
}

// Path is where namespace name is mounted.
func Path(name string) string { return "/var/run/netns/" + name }

// In runs fn on a thread in namespace name (sockets made there stay there;
// commands started there run there; /proc/sys/net is that namespace's).
func In(name string, fn func() error) error {
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

// ServeTCP answers every connection to port in namespace ns with reply,
// until the test ends.
func ServeTCP(t testing.TB, ns string, port int, reply string) {
	t.Helper()
	serve(t, ns, port, func(net.Conn) string { return reply })
}

// ServePeer answers every connection to port in namespace ns with the
// address it came from (what a NAT made of its source), until the test
// ends.
func ServePeer(t testing.TB, ns string, port int) {
	t.Helper()
	serve(t, ns, port, func(c net.Conn) string { return c.RemoteAddr().(*net.TCPAddr).IP.String() })
}

func serve(t testing.TB, ns string, port int, reply func(net.Conn) string) {
	t.Helper()
	ServeConns(t, ns, port, func(c net.Conn) {
		_, _ = c.Write([]byte(reply(c)))
		c.Close()
	})
}

// ServeConns hands every connection to port in namespace ns to handle, in
// the accepting goroutine (handle may start its own), until the test ends.
func ServeConns(t testing.TB, ns string, port int, handle func(net.Conn)) {
	t.Helper()
	serveOn(t, ns, "tcp4", port, handle)
}

// ServeTCP6 answers every connection to port (over IPv6) in namespace ns
// with reply, until the test ends.
func ServeTCP6(t testing.TB, ns string, port int, reply string) {
	t.Helper()
	serveOn(t, ns, "tcp6", port, func(c net.Conn) {
		_, _ = c.Write([]byte(reply))
		c.Close()
	})
}

func serveOn(t testing.TB, ns, network string, port int, handle func(net.Conn)) {
	t.Helper()
	var l net.Listener
	if err := In(ns, func() (err error) { l, err = net.Listen(network, fmt.Sprintf(":%d", port)); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			handle(c)
		}
	}()
}

// DialTCP connects from namespace ns (from src when not "") to addr (IPv4
// or IPv6: [address]:port) within 2 s and returns what the server said.
func DialTCP(ns, addr, src string) (string, error) {
	var c net.Conn
	err := In(ns, func() (err error) {
		d := net.Dialer{Timeout: 2 * time.Second}
		if src != "" {
			d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
		}
		c, err = d.Dial("tcp", addr) // addr's family
		return err
	})
	if err != nil {
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
