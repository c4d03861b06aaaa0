package addrpool

import (
	"net/netip"
	"strings"
	"testing"
)

func TestIPv6Pool(t *testing.T) {
	v4, err := NewPool("198.19.128.0/24", "")
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewIPv6Pool(v4, "2001:2:0:1::/64")
	if err != nil {
		t.Fatal(err)
	}
	if want := netip.MustParseAddr("2001:2:0:1::1"); p.Gateway != want {
		t.Errorf("gateway %s, want %s", p.Gateway, want)
	}
	for v4s, want := range map[string]string{"198.19.128.5": "2001:2:0:1::5", "198.19.128.254": "2001:2:0:1::fe"} {
		if got := p.Of(netip.MustParseAddr(v4s)); got.String() != want {
			t.Errorf("Of(%s) = %s, want %s", v4s, got, want)
		}
	}
	wide, _ := NewPool("198.19.0.0/16", "198.19.3.7")
	pw, err := NewIPv6Pool(wide, "fd00:1:2::/112")
	if err != nil {
		t.Fatal(err)
	}
	if got := pw.Of(netip.MustParseAddr("198.19.255.254")); got.String() != "fd00:1:2::fffe" {
		t.Errorf("Of = %s", got)
	}
	if pw.Gateway.String() != "fd00:1:2::307" {
		t.Errorf("gateway %s", pw.Gateway)
	}
	for cidr, why := range map[string]string{
		"198.19.0.0/24":         "not an IPv6 CIDR",
		"::ffff:198.19.0.0/120": "not an IPv6 CIDR",
		"2001:2::1/64":          "host bits",
		"2001:2::/40":           "between /48 and /112",
		"fd00:1:2::/113":        "between /48 and /112",
		"fe80::/64":             "unique-local (fc00::/7) or global unicast (2000::/3)",
		"ff02::/64":             "unique-local (fc00::/7) or global unicast (2000::/3)",
		"::/64":                 "unique-local (fc00::/7) or global unicast (2000::/3)",
		"64:ff9b::/96":          "unique-local (fc00::/7) or global unicast (2000::/3)",
		"4000::/64":             "unique-local (fc00::/7) or global unicast (2000::/3)",
		"2002:c613::/64":        "overlaps 2002::/16",
		"2001:db8:1::/64":       "overlaps 2001:db8::/32",
		"2001:0:1::/64":         "overlaps 2001::/32",
		"3fff:1::/64":           "overlaps 3fff::/20",
	} {
		if _, err := NewIPv6Pool(wide, cidr); err == nil || !strings.Contains(err.Error(), why) {
			t.Errorf("%s: %v, want an error with %q", cidr, err, why)
		}
	}
}
