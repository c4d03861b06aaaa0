package datapath

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/eci-dev/eci/internal/netnstest"
)

// timedTransfer moves n bytes between namespace ns and addr (a server of
// serveBytes): up sends them from ns, else ns receives them. It returns
// how long that took.
func timedTransfer(ns, addr string, n int, up bool) (time.Duration, error) {
	var took time.Duration
	err := netnstest.In(ns, func() error {
		c, err := net.DialTimeout("tcp4", addr, 2*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
		start := time.Now()
		dir := byte('d')
		if up {
			dir = 'u'
		}
		if _, err := c.Write([]byte{dir}); err != nil {
			return err
		}
		if up {
			if _, err := c.Write(make([]byte, n)); err != nil {
				return err
			}
			ack := make([]byte, 1)
			if _, err := io.ReadFull(c, ack); err != nil { // the server has it all
				return err
			}
		} else if got, err := io.Copy(io.Discard, c); err != nil || got != int64(n) {
			return fmt.Errorf("received %d bytes of %d: %v", got, n, err)
		}
		took = time.Since(start)
		return nil
	})
	return took, err
}

// serveBytes serves transfer in namespace ns: 'u' reads n bytes and
// answers one, 'd' sends n bytes.
func serveBytes(t *testing.T, ns string, port, n int) {
	t.Helper()
	netnstest.ServeConns(t, ns, port, func(c net.Conn) {
		go func() {
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(30 * time.Second))
			dir := make([]byte, 1)
			if _, err := io.ReadFull(c, dir); err != nil {
				return
			}
			if dir[0] == 'u' {
				if _, err := io.CopyN(io.Discard, c, int64(n)); err == nil {
					_, _ = c.Write([]byte{1})
				}
				return
			}
			_, _ = c.Write(make([]byte, n))
		}()
	})
}

// An instance limited to 4 Mbit/s each way takes at least 1.4 s to send or
// receive 1 MiB (2.1 s at the rate; the bound leaves room for the
// buckets' bursts), one without limits well under a second; its egress
// shaper goes with it, and one left by an instance gone is swept.
func TestBandwidthOnAHost(t *testing.T) {
	netnstest.NeedRoot(t)
	h := newVPCHost(t, "dpb-host", "dpb")
	const gw = "198.18.62.1"
	h.attachWith(t, "dpb-slow", Attachment{Address: netip.MustParsePrefix("198.18.62.10/24"), Gateway: netip.MustParseAddr(gw), Bandwidth: Bandwidth{Ingress: 4e6, Egress: 4e6}})
	h.attach(t, "dpb-fast", DefaultVNI, "198.18.62.11", gw)
	serveBytes(t, h.ns, 7400, 1<<20)
	for _, up := range []bool{true, false} {
		slow, err := timedTransfer("dpb-slow", gw+":7400", 1<<20, up)
		if err != nil {
			t.Fatalf("up %v: %v", up, err)
		}
		fast, err := timedTransfer("dpb-fast", gw+":7400", 1<<20, up)
		if err != nil {
			t.Fatalf("up %v: %v", up, err)
		}
		t.Logf("1 MiB, up %v: %v limited to 4 Mbit/s, %v without limits", up, slow, fast)
		if slow < 1400*time.Millisecond {
			t.Errorf("up %v: the limited instance moved 1 MiB in %v (%.1f Mbit/s)", up, slow, 8.0/slow.Seconds())
		}
		if fast > time.Second {
			t.Errorf("up %v: the instance without limits took %v", up, fast)
		}
	}
	shaper := shaperName(HostInterfaceName("sb-dpb-slow"))
	err := netnstest.In(h.ns, func() error {
		if _, err := netlink.LinkByName(shaper); err != nil {
			return fmt.Errorf("the egress shaper: %w", err)
		}
		if err := Detach("sb-dpb-slow"); err != nil {
			return err
		}
		if _, err := netlink.LinkByName(shaper); err == nil {
			return fmt.Errorf("%s outlived its instance's detach", shaper)
		}
		// One left by an instance whose link went without a detach.
		if err := netlink.LinkAdd(&netlink.Ifb{LinkAttrs: netlink.LinkAttrs{Name: ShaperPrefix + "0123456789a"}}); err != nil {
			return err
		}
		if err := SweepShapers(); err != nil {
			return err
		}
		if _, err := netlink.LinkByName(ShaperPrefix + "0123456789a"); err == nil {
			return fmt.Errorf("a stale shaper outlived the sweep")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
