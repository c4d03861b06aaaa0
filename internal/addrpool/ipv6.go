package addrpool

import (
	"fmt"
	"net/netip"
)

// IPv6 bounds of a vSwitch's ipv6Cidr.
const (
	MinIPv6Bits = 48
	MaxIPv6Bits = 120
)

// unicast are the IPv6 ranges a vSwitch may take its range from:
// unique-local (fc00::/7) and global unicast (2000::/3) addresses.
var unicast = []netip.Prefix{netip.MustParsePrefix("fc00::/7"), netip.MustParsePrefix("2000::/3")}

// special are the ranges of those no vSwitch may use: the IETF protocol
// assignments' Teredo (2001::/32), ORCHID (2001:10::/28, 2001:20::/28),
// documentation (2001:db8::/32, 3fff::/20) and 6to4 (2002::/16). (The
// benchmarking range 2001:2::/48 is allowed: the tests use it.)
var special = []netip.Prefix{
	netip.MustParsePrefix("2001::/32"),
	netip.MustParsePrefix("2001:10::/28"),
	netip.MustParsePrefix("2001:20::/28"),
	netip.MustParsePrefix("2001:db8::/32"),
	netip.MustParsePrefix("2002::/16"),
	netip.MustParsePrefix("3fff::/20"),
}

// IPv6Pool is a vSwitch's IPv6 CIDR over its IPv4 pool: an address of the
// IPv4 pool has the IPv6 address at the same offset, so that a group's
// IPv6 address is held (and released, quarantined, kept) with its IPv4 one
// and needs no record of its own.
type IPv6Pool struct {
	Prefix  netip.Prefix
	Gateway netip.Addr
	v4      *Pool
}

// NewIPv6Pool parses cidr (a /48 to /120 of unique-local or global unicast
// addresses, with at least as many host bits as v4's prefix) over v4.
func NewIPv6Pool(v4 *Pool, cidr string) (*IPv6Pool, error) {
	prefix, err := netip.ParsePrefix(cidr)
	if err != nil || !prefix.Addr().Is6() || prefix.Addr().Is4In6() {
		return nil, fmt.Errorf("ipv6Cidr %q is not an IPv6 CIDR such as fd00:ec1:1::/64", cidr)
	}
	if prefix != prefix.Masked() {
		return nil, fmt.Errorf("ipv6Cidr %q has host bits set; did you mean %s?", cidr, prefix.Masked())
	}
	if hostBits := 32 - v4.Prefix.Bits(); prefix.Bits() < MinIPv6Bits || prefix.Bits() > 128-hostBits || prefix.Bits() > MaxIPv6Bits {
		return nil, fmt.Errorf("ipv6Cidr %q: the prefix length must be between /%d and /%d (the IPv4 cidr %s has %d host bits)",
			cidr, MinIPv6Bits, min(MaxIPv6Bits, 128-hostBits), v4.Prefix, hostBits)
	}
	if !unicast[0].Contains(prefix.Addr()) && !unicast[1].Contains(prefix.Addr()) {
		return nil, fmt.Errorf("ipv6Cidr %q: allowed: unique-local (fc00::/7) or global unicast (2000::/3) addresses", cidr)
	}
	for _, s := range special {
		if s.Overlaps(prefix) {
			return nil, fmt.Errorf("ipv6Cidr %q overlaps %s, which no vSwitch may use; allowed: unique-local (fc00::/7) or global unicast addresses", cidr, s)
		}
	}
	p := &IPv6Pool{Prefix: prefix, v4: v4}
	p.Gateway = p.Of(v4.Gateway)
	return p, nil
}

// Of is the IPv6 address of a (an address of the IPv4 pool): the IPv6
// CIDR's at a's offset in the IPv4 CIDR.
func (p *IPv6Pool) Of(a netip.Addr) netip.Addr {
	off := a.As4()
	net4 := p.v4.Prefix.Addr().As4()
	var o uint32
	for i := range 4 {
		o = o<<8 | uint32(off[i]-net4[i]) // no borrow: a is inside the prefix
	}
	b := p.Prefix.Addr().As16()
	for i := 15; i >= 12; i-- {
		b[i] |= byte(o)
		o >>= 8
	}
	return netip.AddrFrom16(b)
}
