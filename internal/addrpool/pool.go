// Package addrpool hands out the IPv4 addresses of a vSwitch. A Pool is a vSwitch's
// usable range (the CIDR without its network, gateway and broadcast addresses);
// an Allocator tracks which addresses are taken and picks the next free one
// round-robin, so a released address is not reused at once. Uniqueness across
// servers is not this package's job: the server writes one etcd key per
// address in the placement transaction, which fails if the key exists.
package addrpool

import (
	"errors"
	"fmt"
	"net/netip"
)

// MaxPoolBits bounds a vSwitch to a /16 (65,534 usable addresses).
const MaxPoolBits = 16

// Pool is the usable range of one vSwitch.
type Pool struct {
	Prefix  netip.Prefix
	Gateway netip.Addr
	first   netip.Addr
	last    netip.Addr
	size    int
}

// NewPool parses an IPv4 CIDR between /16 and /29 and an optional gateway (the
// first address by default).
func NewPool(cidr, gateway string) (*Pool, error) {
	prefix, err := netip.ParsePrefix(cidr)
	if err != nil || !prefix.Addr().Is4() {
		return nil, fmt.Errorf("cidr %q is not an IPv4 CIDR such as 198.19.128.0/24", cidr)
	}
	if prefix != prefix.Masked() {
		return nil, fmt.Errorf("cidr %q has host bits set; did you mean %s?", cidr, prefix.Masked())
	}
	if prefix.Bits() < MaxPoolBits || prefix.Bits() > 29 {
		return nil, fmt.Errorf("cidr %q: the prefix length must be between /%d and /29", cidr, MaxPoolBits)
	}
	p := &Pool{Prefix: prefix}
	network := prefix.Addr()
	broadcast := lastAddr(prefix)
	p.Gateway = network.Next()
	if gateway != "" {
		gw, err := netip.ParseAddr(gateway)
		if err != nil || !prefix.Contains(gw) || gw == network || gw == broadcast {
			return nil, fmt.Errorf("gateway %q is not a host address of %s", gateway, cidr)
		}
		p.Gateway = gw
	}
	p.first, p.last = network.Next(), broadcast.Prev()
	p.size = 1<<(32-prefix.Bits()) - 3 // network, broadcast, gateway
	return p, nil
}

func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3]) | host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// Size is how many addresses groups can get.
func (p *Pool) Size() int { return p.size }

// ErrNotUsable is returned for an address groups can't have.
var ErrNotUsable = errors.New("address not usable")

// Check says why addr can't be given to a group, or nil.
func (p *Pool) Check(addr netip.Addr) error {
	switch {
	case !p.Prefix.Contains(addr):
		return fmt.Errorf("%s is outside %s: %w", addr, p.Prefix, ErrNotUsable)
	case addr == p.Prefix.Addr():
		return fmt.Errorf("%s is the network address of %s: %w", addr, p.Prefix, ErrNotUsable)
	case addr == lastAddr(p.Prefix):
		return fmt.Errorf("%s is the broadcast address of %s: %w", addr, p.Prefix, ErrNotUsable)
	case addr == p.Gateway:
		return fmt.Errorf("%s is the gateway of %s: %w", addr, p.Prefix, ErrNotUsable)
	}
	return nil
}

// Allocator tracks the taken addresses of one pool. Not safe for concurrent use.
type Allocator struct {
	pool   *Pool
	used   map[netip.Addr]string
	cursor netip.Addr
}

// NewAllocator returns an allocator with nothing taken.
func NewAllocator(p *Pool) *Allocator {
	return &Allocator{pool: p, used: map[netip.Addr]string{}, cursor: p.first.Prev()}
}

// Pool returns the allocator's pool.
func (a *Allocator) Pool() *Pool { return a.pool }

// Mark records addr as taken by owner.
func (a *Allocator) Mark(addr netip.Addr, owner string) { a.used[addr] = owner }

// Release frees addr.
func (a *Allocator) Release(addr netip.Addr) { delete(a.used, addr) }

// Owner tells who holds addr.
func (a *Allocator) Owner(addr netip.Addr) (string, bool) {
	o, ok := a.used[addr]
	return o, ok
}

// Free is how many addresses are left.
func (a *Allocator) Free() int { return a.pool.size - len(a.used) }

// Next returns the next free address after the last one handed out (it does
// not mark it: the caller marks it once its transaction commits).
func (a *Allocator) Next() (netip.Addr, bool) {
	if a.Free() <= 0 {
		return netip.Addr{}, false
	}
	addr := a.cursor
	for i := 0; i <= a.pool.size+2; i++ {
		addr = addr.Next()
		if !addr.IsValid() || addr.Compare(a.pool.last) > 0 {
			addr = a.pool.first
		}
		if addr == a.pool.Gateway {
			continue
		}
		if _, taken := a.used[addr]; !taken {
			a.cursor = addr
			return addr, true
		}
	}
	return netip.Addr{}, false
}
