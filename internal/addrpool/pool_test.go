package addrpool

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestNewPool(t *testing.T) {
	p, err := NewPool("198.19.128.0/24", "")
	if err != nil {
		t.Fatal(err)
	}
	if p.Size() != 253 || p.Gateway.String() != "198.19.128.1" {
		t.Fatalf("size %d gateway %s", p.Size(), p.Gateway)
	}
	for cidr, says := range map[string]string{
		"198.19.128.1/24": "host bits", "198.0.0.0/8": "between /16 and /29", "198.19.0.0/30": "between /16 and /29",
		"2001:db8::/64": "IPv4", "x": "IPv4",
	} {
		if _, err := NewPool(cidr, ""); err == nil || !strings.Contains(err.Error(), says) {
			t.Errorf("NewPool(%q) = %v; want an error saying %q", cidr, err, says)
		}
	}
	if _, err := NewPool("198.19.128.0/24", "198.19.129.1"); err == nil {
		t.Error("a gateway outside the CIDR was accepted")
	}
}

func TestCheck(t *testing.T) {
	p, _ := NewPool("198.19.128.0/29", "")
	for addr, says := range map[string]string{
		"198.19.128.0": "network", "198.19.128.7": "broadcast", "198.19.128.1": "gateway", "198.19.129.2": "outside",
	} {
		err := p.Check(netip.MustParseAddr(addr))
		if !errors.Is(err, ErrNotUsable) || !strings.Contains(err.Error(), says) {
			t.Errorf("Check(%s) = %v; want %q", addr, err, says)
		}
	}
	if err := p.Check(netip.MustParseAddr("198.19.128.2")); err != nil {
		t.Error(err)
	}
}

// Next hands out every usable address once, round-robin, then reports
// exhaustion; a released address comes back only after the others.
func TestNextRoundRobin(t *testing.T) {
	p, _ := NewPool("198.19.128.0/29", "")
	a := NewAllocator(p)
	var got []string
	for {
		addr, ok := a.Next()
		if !ok {
			break
		}
		a.Mark(addr, "g")
		got = append(got, addr.String())
	}
	want := "198.19.128.2 198.19.128.3 198.19.128.4 198.19.128.5 198.19.128.6"
	if strings.Join(got, " ") != want {
		t.Fatalf("handed out %v, want %s", got, want)
	}
	if a.Free() != 0 {
		t.Fatalf("free %d", a.Free())
	}
	a.Release(netip.MustParseAddr("198.19.128.3"))
	a.Release(netip.MustParseAddr("198.19.128.6"))
	first, _ := a.Next()
	if first.String() != "198.19.128.3" {
		t.Fatalf("after releasing .3 and .6, next is %s, want .3 (round robin from the cursor)", first)
	}
}
