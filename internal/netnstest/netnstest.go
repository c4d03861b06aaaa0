// Package netnstest makes test networks out of network namespaces made with
// ip(8): named with the test's prefix, removed when the test ends, with
// addresses from 198.18.0.0/15. Tests of the data path (internal/datapath)
// and of virtual services (internal/vservice) build their hosts and
// instances with it.
package netnstest

import (
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

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
