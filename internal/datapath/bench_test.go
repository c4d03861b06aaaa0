package datapath

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eci-dev/eci/internal/netnstest"
)

// BenchmarkCrossHost: TCP throughput (512 MiB) and round trips (2,000 of
// one byte each way) between two instances on two hosts through their
// tunnel, against the same between the two hosts' own namespaces over the
// underlay (no eci) in the same run, three times each, alternating (the
// best throughput and the median of the round trips' p50 and p99 are
// reported). Hosts are network namespaces joined by a veth pair of MTU
// 1500 (the instances' links: 1450).
func BenchmarkCrossHost(b *testing.B) {
	netnstest.NeedRoot(b)
	h1, h2 := netnstest.New(b, "dpb-h1"), netnstest.New(b, "dpb-h2")
	netnstest.IP(b, "-n", h1, "link", "add", "ul0", "type", "veth", "peer", "name", "ul0", "netns", h2)
	under := map[string]netip.Addr{h1: netip.MustParseAddr("198.18.60.1"), h2: netip.MustParseAddr("198.18.60.2")}
	for _, h := range []string{h1, h2} {
		netnstest.IP(b, "-n", h, "addr", "add", under[h].String()+"/24", "dev", "ul0")
		netnstest.IP(b, "-n", h, "link", "set", "ul0", "up")
	}
	const gw = "198.18.61.1"
	inst := map[string]netip.Addr{"dpb-a": netip.MustParseAddr("198.18.61.10"), "dpb-b": netip.MustParseAddr("198.18.61.11")}
	hostOf := map[string]string{"dpb-a": h1, "dpb-b": h2}
	for name, ip := range inst {
		netnstest.New(b, name)
		if err := netnstest.In(hostOf[name], func() error {
			_, err := Attach(Attachment{ContainerID: "sb-" + name, NetNS: netnstest.Path(name), IfName: "eth0",
				Address: netip.PrefixFrom(ip, 24), Gateway: netip.MustParseAddr(gw), MTU: 1500 - VXLANOverhead})
			return err
		}); err != nil {
			b.Fatal(err)
		}
	}
	for h, far := range map[string]string{h1: "dpb-b", h2: "dpb-a"} {
		o := &Overlay{Device: "vx1-dpb", VNI: 1, Local: under[h], MTU: 1500 - VXLANOverhead}
		other := under[h1]
		if h == h1 {
			other = under[h2]
		}
		if err := netnstest.In(h, func() error {
			if err := o.Ensure(); err != nil {
				return err
			}
			return o.Sync([]Remote{{IP: inst[far], Host: other}})
		}); err != nil {
			b.Fatal(err)
		}
	}
	for i := 0; i < b.N; i++ {
		var rawMBs, eciMBs float64
		var raw50, raw99, eci50, eci99 []time.Duration
		for r := range 3 {
			paths := []func(){
				func() {
					mbs, rtt := measurePath(b, h2, h1, under[h2])
					rawMBs, raw50, raw99 = max(rawMBs, mbs), append(raw50, quantile(rtt, 0.5)), append(raw99, quantile(rtt, 0.99))
				},
				func() {
					mbs, rtt := measurePath(b, "dpb-b", "dpb-a", inst["dpb-b"])
					eciMBs, eci50, eci99 = max(eciMBs, mbs), append(eci50, quantile(rtt, 0.5)), append(eci99, quantile(rtt, 0.99))
				},
			}
			if r%2 == 1 {
				slices.Reverse(paths)
			}
			for _, p := range paths {
				p()
			}
		}
		b.ReportMetric(rawMBs, "raw-MB/s")
		b.ReportMetric(eciMBs, "eci-MB/s")
		b.ReportMetric(eciMBs/rawMBs, "throughput-ratio")
		b.ReportMetric(us(quantile(raw50, 0.5)), "raw-rtt-p50-us")
		b.ReportMetric(us(quantile(eci50, 0.5)), "eci-rtt-p50-us")
		b.ReportMetric(us(quantile(raw99, 0.5)), "raw-rtt-p99-us")
		b.ReportMetric(us(quantile(eci99, 0.5)), "eci-rtt-p99-us")
	}
}

// measurePath is the throughput (MB/s) of 512 MiB from client to a server
// in server at ip, and 2,000 round trips of one byte.
func measurePath(b *testing.B, server, client string, ip netip.Addr) (float64, []time.Duration) {
	b.Helper()
	var l net.Listener
	if err := netnstest.In(server, func() (err error) { l, err = net.Listen("tcp4", ":7400"); return err }); err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				mode, _ := r.ReadByte()
				if mode == 'p' { // ping-pong: echo each byte
					buf := make([]byte, 1)
					for {
						if _, err := io.ReadFull(r, buf); err != nil {
							return
						}
						if _, err := c.Write(buf); err != nil {
							return
						}
					}
				}
				_, _ = io.Copy(io.Discard, r)
			}()
		}
	}()
	dial := func() net.Conn {
		var c net.Conn
		if err := netnstest.In(client, func() (err error) {
			c, err = net.DialTimeout("tcp4", netip.AddrPortFrom(ip, 7400).String(), 2*time.Second)
			return err
		}); err != nil {
			b.Fatal(err)
		}
		return c
	}
	const size = 512 << 20
	c := dial()
	start := time.Now()
	_, _ = c.Write([]byte{'t'})
	if _, err := io.Copy(c, bytes.NewReader(make([]byte, size))); err != nil {
		b.Fatal(err)
	}
	_ = c.(*net.TCPConn).CloseWrite()
	mbs := float64(size) / (1 << 20) / time.Since(start).Seconds()
	c.Close()

	c = dial()
	defer c.Close()
	_, _ = c.Write([]byte{'p'})
	rtts := make([]time.Duration, 0, 2000)
	buf := []byte{1}
	for range 2000 {
		t0 := time.Now()
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			b.Fatal(err)
		}
		rtts = append(rtts, time.Since(t0))
	}
	return mbs, rtts
}

// BenchmarkAttach: the network setup of 50 sandboxes, one after another,
// as the agent makes it (Attach: a routed veth pair) against the CNI
// bridge plugin with host-local addresses (the single-host bridge before
// this data path, its plugins run as containerd runs them), in the same
// run.
func BenchmarkAttach(b *testing.B) {
	netnstest.NeedRoot(b)
	host := netnstest.New(b, "dpa-host")
	if _, err := os.Stat("/usr/lib/cni/bridge"); err != nil {
		b.Fatal("the CNI plugins are not installed: hack/install-deps.sh installs them")
	}
	ipamDir := b.TempDir()
	conf, _ := json.Marshal(map[string]any{"cniVersion": "1.0.0", "name": "dpa", "type": "bridge", "bridge": "dpabr0", "isGateway": true,
		"ipam": map[string]any{"type": "host-local", "dataDir": ipamDir, "ranges": [][]map[string]string{{{"subnet": "198.18.63.0/24"}}}}})
	for i := 0; i < b.N; i++ {
		var eci, bridge []time.Duration
		for n := range 50 {
			ns := netnstest.New(b, fmt.Sprintf("dpa-e%d", n))
			err := netnstest.In(host, func() error {
				t0 := time.Now()
				_, err := Attach(Attachment{ContainerID: ns, NetNS: netnstest.Path(ns), IfName: "eth0",
					Address: netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, 62, byte(10 + n)}), 24), Gateway: netip.MustParseAddr("198.18.62.1")})
				eci = append(eci, time.Since(t0))
				return err
			})
			if err != nil {
				b.Fatal(err)
			}
			ns = netnstest.New(b, fmt.Sprintf("dpa-b%d", n))
			cmd := exec.Command("ip", "netns", "exec", host, "/usr/lib/cni/bridge")
			cmd.Env = []string{"CNI_COMMAND=ADD", "CNI_CONTAINERID=" + ns, "CNI_NETNS=" + netnstest.Path(ns), "CNI_IFNAME=eth0", "CNI_PATH=/usr/lib/cni", "PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
			cmd.Stdin = bytes.NewReader(conf)
			t0 := time.Now()
			out, err := cmd.CombinedOutput()
			bridge = append(bridge, time.Since(t0))
			if err != nil {
				b.Fatalf("bridge plugin: %v: %s", err, strings.TrimSpace(string(out)))
			}
		}
		b.ReportMetric(ms(quantile(eci, 0.5)), "eci-p50-ms")
		b.ReportMetric(ms(quantile(eci, 0.99)), "eci-p99-ms")
		b.ReportMetric(ms(quantile(bridge, 0.5)), "bridge-p50-ms")
		b.ReportMetric(ms(quantile(bridge, 0.99)), "bridge-p99-ms")
	}
}

func quantile(d []time.Duration, q float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }
func ms(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 }
