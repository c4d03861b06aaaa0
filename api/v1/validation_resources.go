package v1

import (
	"encoding/pem"
	"fmt"
	"math/big"
	"net/netip"
)

// The most one host may offer: far above any machine (about a million vCPU,
// 64 TiB, 100 000 groups, 1024 GPUs), far below overflowing a pool's sum.
const (
	MaxHostMilliCPU  = 1 << 20 * 1000
	MaxHostMemoryMiB = 64 << 20
	MaxHostPods      = 100000
	MaxHostGPU       = 1024
	// MaxRuntimeHandlers a host may offer.
	MaxRuntimeHandlers = 16
)

// ValidateHost checks a host an agent registers.
func ValidateHost(h *Host) error {
	e := &errs{}
	e.dnsLabel("metadata.name", h.Metadata.Name, 63)
	e.dnsLabel("spec.zone", h.Spec.Zone, 63)
	if h.Spec.GPUModel != "" {
		e.dnsLabel("spec.gpuModel", h.Spec.GPUModel, 63)
	}
	for name, r := range map[string]Resources{"capacity": h.Spec.Capacity, "allocatable": h.Spec.Allocatable} {
		p := fpath("spec").child(name)
		// Bounded, so that sums over a pool never overflow (a host token
		// must not make every node's capacity negative).
		if r.MilliCPU <= 0 || r.MilliCPU > MaxHostMilliCPU {
			e.add(p.child("milliCPU"), "%d is not allowed; allowed: 1 to %d millicores", r.MilliCPU, MaxHostMilliCPU)
		}
		if r.MemoryMiB <= 0 || r.MemoryMiB > MaxHostMemoryMiB {
			e.add(p.child("memoryMiB"), "%d is not allowed; allowed: 1 to %d MiB", r.MemoryMiB, MaxHostMemoryMiB)
		}
		if r.Pods <= 0 || r.Pods > MaxHostPods {
			e.add(p.child("pods"), "%d is not allowed; allowed: 1 to %d", r.Pods, MaxHostPods)
		}
		if r.GPU < 0 || r.GPU > MaxHostGPU {
			e.add(p.child("gpu"), "%d is not allowed; allowed: 0 to %d", r.GPU, MaxHostGPU)
		}
	}
	if len(h.Spec.RuntimeHandlers) > MaxRuntimeHandlers {
		e.add("spec.runtimeHandlers", "%d handlers is too many; allowed: at most %d", len(h.Spec.RuntimeHandlers), MaxRuntimeHandlers)
	}
	for i, rh := range h.Spec.RuntimeHandlers {
		e.dnsLabel(fpath("spec").child("runtimeHandlers").index(i), rh, 63)
	}
	a, c := h.Spec.Allocatable, h.Spec.Capacity
	if a.MilliCPU > c.MilliCPU || a.MemoryMiB > c.MemoryMiB || a.GPU > c.GPU || a.Pods > c.Pods {
		e.add("spec.allocatable", "must not exceed spec.capacity")
	}
	if t := h.Spec.TunnelIP; t != "" {
		if ip, err := netip.ParseAddr(t); err != nil || !ip.Is4() || !ip.IsGlobalUnicast() || ip == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
			e.add("spec.tunnelIP", "%q: allowed: a unicast IPv4 address of the host (not loopback, link-local or multicast)", t)
		}
	}
	if h.Spec.Address != "" {
		if _, err := netip.ParseAddrPort(h.Spec.Address); err != nil {
			e.add("spec.address", "%q is not an ip:port address", h.Spec.Address)
		}
		if block, _ := pem.Decode([]byte(h.Spec.StreamCA)); block == nil || block.Type != "CERTIFICATE" {
			e.add("spec.streamCA", "required with spec.address: the PEM certificate of the CA of the agent's stream server")
		}
		if len(h.Spec.StreamToken) < 32 {
			e.add("spec.streamToken", "required with spec.address: a secret of at least 32 characters")
		}
	}
	if wp := h.Spec.WarmPool; wp != nil {
		if wp.Size < 0 || wp.Size > MaxWarmPoolSize {
			e.add("spec.warmPool.size", "%d is not allowed; allowed: 0 to %d", wp.Size, MaxWarmPoolSize)
		}
		if len(wp.VSwitchIDs) > MaxWarmPoolVSwitches {
			e.add("spec.warmPool.vSwitchIds", "%d vSwitches is too many; allowed: at most %d", len(wp.VSwitchIDs), MaxWarmPoolVSwitches)
		}
		seen := map[string]bool{}
		for i, id := range wp.VSwitchIDs {
			p := fpath("spec").child("warmPool").child("vSwitchIds").index(i)
			switch {
			case seen[id]:
				e.add(p, "%q is repeated; allowed: each vSwitch once", id)
			case id == "" || len(id) > 63:
				e.add(p, "%q: allowed: a vSwitch id of 1 to 63 characters", id)
			}
			seen[id] = true
		}
	}
	if h.Spec.WarmPoolTarget != nil {
		e.add("spec.warmPoolTarget", "is the operator's (PATCH /v1/hosts/{name}, warmPoolTarget); an agent does not register it")
	}
	return e.result()
}

// MaxWarmPoolVSwitches bounds the vSwitches a host keeps a warm pool on.
const MaxWarmPoolVSwitches = 16

// ValidateWarmPoolTarget checks an operator's warm pool size (HostUpdate).
func ValidateWarmPoolTarget(n int) error {
	if n < -1 || n > MaxWarmPoolSize {
		return FieldErrors{{Field: "warmPoolTarget", Message: fmt.Sprintf("%d is not allowed; allowed: 0 to %d, or -1 for the agent's own size", n, MaxWarmPoolSize)}}
	}
	return nil
}

// ValidateVSwitch checks a vSwitch (the CIDRs' lengths and ranges are
// checked by the IPAM, internal/addrpool).
func ValidateVSwitch(v *VSwitch) error {
	e := &errs{}
	e.dnsLabel("metadata.name", v.Metadata.Name, 63)
	e.dnsLabel("spec.zone", v.Spec.Zone, 63)
	if v.Spec.CIDR == "" {
		e.required("spec.cidr", "an IPv4 CIDR such as 198.19.128.0/24")
	}
	if v.Spec.VPCID != "" {
		e.dnsLabel("spec.vpcId", v.Spec.VPCID, 63)
	}
	if c := v.Spec.IPv6CIDR; c != "" {
		if p, err := netip.ParsePrefix(c); err != nil || !p.Addr().Is6() || p.Addr().Is4In6() {
			e.add("spec.ipv6Cidr", "%q: allowed: an IPv6 CIDR such as fd00:1:2::/64 (a /48 to /120 of unique-local or global unicast addresses), or none for IPv4 only", c)
		}
	}
	return e.result()
}

// ValidateRouteEntry checks a route entry to add: a name, a destination
// that is neither everything (a NAT gateway is the way out) nor a host, and
// a unicast next hop.
func ValidateRouteEntry(r *RouteEntry) error {
	e := &errs{}
	e.dnsLabel("metadata.name", r.Metadata.Name, 63)
	if d, err := netip.ParsePrefix(r.Spec.Destination); err != nil || !d.Addr().Is4() || d.Bits() == 0 {
		e.add("spec.destination", "%q: allowed: an IPv4 CIDR other than 0.0.0.0/0, such as a node's pod CIDR 198.18.10.0/24", r.Spec.Destination)
	}
	if h, err := netip.ParseAddr(r.Spec.NextHop); err != nil || !h.Is4() || !h.IsGlobalUnicast() {
		e.add("spec.nextHop", "%q: allowed: a unicast IPv4 address on the hosts' network (the node's)", r.Spec.NextHop)
	}
	return e.result()
}

// ValidateVPC checks a VPC to create.
func ValidateVPC(v *VPC) error {
	e := &errs{}
	e.dnsLabel("metadata.name", v.Metadata.Name, 63)
	if v.Metadata.Name == DefaultVPC {
		e.add("metadata.name", "%q is the default VPC's, which is never stored", DefaultVPC)
	}
	if v.Metadata.Tenant != "" {
		e.dnsLabel("metadata.tenant", v.Metadata.Tenant, 63)
	}
	if v.Spec.CIDR != "" {
		if p, err := netip.ParsePrefix(v.Spec.CIDR); err != nil || !p.Addr().Is4() || p.Bits() > 29 {
			e.add("spec.cidr", "%q: allowed: an IPv4 CIDR of /29 or larger, such as 198.19.0.0/16", v.Spec.CIDR)
		}
	}
	return e.result()
}

// ValidateEIP checks an EIP to allocate: an optional name and tenant.
func ValidateEIP(v *EIP) error {
	e := &errs{}
	if v.Metadata.Name != "" {
		e.dnsLabel("metadata.name", v.Metadata.Name, 63)
	}
	if v.Metadata.Tenant != "" {
		e.dnsLabel("metadata.tenant", v.Metadata.Tenant, 63)
	}
	return e.result()
}

// ValidateTenant checks a tenant.
func ValidateTenant(t *Tenant) error {
	e := &errs{}
	e.dnsLabel("metadata.name", t.Metadata.Name, 63)
	q := t.Spec.Quota
	e.nonNegative("spec.quota.milliCPU", q.MilliCPU)
	e.nonNegative("spec.quota.memoryMiB", q.MemoryMiB)
	e.nonNegative("spec.quota.gpu", int64(q.GPU))
	e.nonNegative("spec.quota.groups", int64(q.Groups))
	if l := t.Spec.SpendingLimit; l != nil {
		if r, ok := new(big.Rat).SetString(l.Amount); !ok || len(l.Amount) > 32 || !IsDecimal(l.Amount) || r.Sign() <= 0 {
			e.add("spec.spendingLimit.amount", "%q: allowed: a decimal number above 0, of at most 32 characters (250.00)", l.Amount)
		}
		if l.Period != "" && l.Period != "day" && l.Period != "month" {
			e.add("spec.spendingLimit.period", "%q: allowed: day, month", l.Period)
		}
	}
	return e.result()
}

// ValidateToken checks a token request.
func ValidateToken(t *Token) error {
	e := &errs{}
	switch t.Spec.Kind {
	case TokenTenant:
		e.dnsLabel("spec.tenant", t.Spec.Tenant, 63)
		if t.Spec.Host != "" {
			e.add("spec.host", "only Host tokens name a host")
		}
	case TokenHost:
		e.dnsLabel("spec.host", t.Spec.Host, 63)
		if t.Spec.Tenant != "" {
			e.add("spec.tenant", "only Tenant tokens name a tenant")
		}
	default:
		e.oneOf("spec.kind", string(t.Spec.Kind), string(TokenTenant), string(TokenHost))
	}
	return e.result()
}
