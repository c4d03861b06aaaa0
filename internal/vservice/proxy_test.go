package vservice

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"sigs.k8s.io/knftables"

	apiv1 "github.com/eci-dev/eci/api/v1"
)

func vip(table, ip string, affinity apiv1.SessionAffinity, ports ...apiv1.VirtualPort) *apiv1.VirtualService {
	return &apiv1.VirtualService{Spec: apiv1.VirtualServiceSpec{Table: table, IP: ip, SessionAffinity: affinity, Ports: ports}}
}

func tcp(port int32, backends ...apiv1.Backend) apiv1.VirtualPort {
	return apiv1.VirtualPort{Protocol: apiv1.ProtocolTCP, Port: port, Backends: backends}
}

func be(ip string, port int32) apiv1.Backend { return apiv1.Backend{IP: ip, Port: port} }

func addrs(list ...string) []Client {
	out := make([]Client, len(list))
	for i, s := range list {
		out[i] = Client{Addr: netip.MustParseAddr(s)}
	}
	return out
}

// Instances of two tables on one host, attached as the agent does, reach their own
// table's virtual IPs (the same address in both), spread over the ready
// backends, with a port without backends refused at once, ClientIP
// affinity, an instance reaching itself, UDP, and changes that take effect
// for the next connection.
func TestProxyOnARealHost(t *testing.T) {
	needRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	host := newNetns(t, "vst-host")
	c1 := attach(t, host, "vst-c1", "198.18.50.10", "198.18.50.1")
	s1 := attach(t, host, "vst-s1", "198.18.50.11", "198.18.50.1")
	s2 := attach(t, host, "vst-s2", "198.18.50.12", "198.18.50.1")
	c2 := attach(t, host, "vst-c2", "198.18.50.20", "198.18.50.1")
	serveTCP(t, s1, 8080, "s1")
	serveTCP(t, s2, 8080, "s2")
	serveUDP(t, s1, 5353, "u1")
	serveUDP(t, s2, 5353, "u2")

	var nft knftables.Interface
	if err := inNetns(host, func() (err error) { nft, err = knftables.New(knftables.IPv4Family, TableName); return err }); err != nil {
		t.Fatal(err)
	}
	p := New(nft)
	const shared = "198.19.200.10:80"
	tableA := Table{Key: "a/c1", Clients: addrs("198.18.50.10", "198.18.50.11"), Services: []*apiv1.VirtualService{
		vip("c1", "198.19.200.10", "", tcp(80, be("198.18.50.11", 8080), be("198.18.50.12", 8080))),
		vip("c1", "198.19.200.11", "", tcp(80)),
		vip("c1", "198.19.200.12", apiv1.AffinityClientIP, tcp(80, be("198.18.50.11", 8080), be("198.18.50.12", 8080))),
		vip("c1", "198.19.200.13", "", tcp(80, be("198.18.50.11", 8080))),
		vip("c1", "198.19.200.14", "", apiv1.VirtualPort{Protocol: apiv1.ProtocolUDP, Port: 53, Backends: []apiv1.Backend{be("198.18.50.11", 5353)}}),
	}}
	tableB := Table{Key: "b/c1", Clients: addrs("198.18.50.20"), Services: []*apiv1.VirtualService{
		vip("c1", "198.19.200.10", "", tcp(80, be("198.18.50.12", 8080))),
	}}
	if err := syncIn(ctx, host, p, []Table{tableA, tableB}); err != nil {
		t.Fatal(err)
	}

	seen := map[string]int{}
	for range 40 {
		got, err := dialTCP(c1, shared)
		if err != nil {
			t.Fatalf("tenant a to %s: %v", shared, err)
		}
		seen[got]++
	}
	if seen["s1"] == 0 || seen["s2"] == 0 || len(seen) != 2 {
		t.Errorf("tenant a's connections to %s went to %v; want both s1 and s2", shared, seen)
	}
	for range 10 {
		if got, err := dialTCP(c2, shared); err != nil || got != "s2" {
			t.Fatalf("tenant b to %s (its own table: s2 only): %q, %v", shared, got, err)
		}
	}
	// Tenant b has no 198.19.200.13: its packets are not translated (here
	// they have nowhere to go), and never reach a's backend.
	if got, err := dialTCP(c2, "198.19.200.13:80"); err == nil {
		t.Errorf("tenant b reached tenant a's virtual IP: %q", got)
	}

	start := time.Now()
	_, err := dialTCP(c1, "198.19.200.11:80")
	if !errors.Is(err, syscall.ECONNREFUSED) || time.Since(start) > time.Second {
		t.Errorf("a port without backends: %v after %s; want connection refused at once", err, time.Since(start))
	}

	// A port the virtual IP does not have is refused too, not routed on.
	if _, err := dialTCP(c1, "198.19.200.10:81"); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("a port the virtual IP does not have: %v; want connection refused", err)
	}

	first, err := dialTCP(c1, "198.19.200.12:80")
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		if got, err := dialTCP(c1, "198.19.200.12:80"); err != nil || got != first {
			t.Fatalf("ClientIP affinity: %q then %q (%v)", first, got, err)
		}
	}

	if got, err := dialTCP(s1, "198.19.200.13:80"); err != nil || got != "s1" {
		t.Errorf("s1 reaching itself through its virtual IP: %q, %v", got, err)
	}

	if got, from, err := askUDP(c1, "198.19.200.14:53"); err != nil || got != "u1" || from != "198.19.200.14:53" {
		t.Errorf("UDP through 198.19.200.14:53: %q from %s, %v", got, from, err)
	}
	// A UDP client that keeps one socket (one conntrack entry) follows a
	// backend change once the old backend's flows are deleted.
	udp, err := udpConn(c1, "198.19.200.14:53")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	if got, err := exchange(udp); err != nil || got != "u1" {
		t.Fatalf("UDP on a kept socket: %q, %v", got, err)
	}
	tableA.Services[4] = vip("c1", "198.19.200.14", "", apiv1.VirtualPort{Protocol: apiv1.ProtocolUDP, Port: 53, Backends: []apiv1.Backend{be("198.18.50.12", 5353)}})
	if err := syncIn(ctx, host, p, []Table{tableA, tableB}); err != nil {
		t.Fatal(err)
	}
	if got, err := exchange(udp); err != nil || got != "u2" {
		t.Errorf("UDP on a kept socket after its backend went: %q, %v; want u2 (the old flow deleted)", got, err)
	}

	// s1 is no longer ready: the next connections all go to s2.
	tableA.Services[0] = vip("c1", "198.19.200.10", "", tcp(80, be("198.18.50.12", 8080)))
	if err := syncIn(ctx, host, p, []Table{tableA, tableB}); err != nil {
		t.Fatal(err)
	}
	for range 10 {
		if got, err := dialTCP(c1, shared); err != nil || got != "s2" {
			t.Fatalf("after the change, tenant a to %s: %q, %v; want s2", shared, got, err)
		}
	}

	// Nothing changed: nothing is written. A new proxy (an agent's
	// restart) writes everything once, then nothing.
	if n, err := operationsIn(ctx, host, p, []Table{tableA, tableB}); err != nil || n != 0 {
		t.Errorf("a sync without changes would write %d operations (%v)", n, err)
	}
	p2 := New(nft)
	if err := syncIn(ctx, host, p2, []Table{tableA, tableB}); err != nil {
		t.Fatal(err)
	}
	if n, err := operationsIn(ctx, host, p2, []Table{tableA, tableB}); err != nil || n != 0 {
		t.Errorf("after a restart's sync, another would write %d operations (%v)", n, err)
	}

	// Table b goes (its last instance left): its chains are gone.
	if err := syncIn(ctx, host, p2, []Table{tableA}); err != nil {
		t.Fatal(err)
	}
	var chains []string
	if err := inNetns(host, func() (err error) { chains, err = nft.List(ctx, "chains"); return err }); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(strings.Join(chains, " "), "t-"+hash("b/c1")) {
		t.Errorf("table b's chains are left: %v", chains)
	}
	if _, err := dialTCP(c2, shared); err == nil {
		t.Error("tenant b still reaches 198.19.200.10 after its table went")
	}
}

func operationsIn(ctx context.Context, ns string, p *Proxy, tables []Table) (n int, err error) {
	err = inNetns(ns, func() error { n, err = p.Operations(ctx, tables); return err })
	return n, err
}
