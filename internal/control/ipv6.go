package control

import (
	"context"
	"fmt"
	"net/netip"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/addrpool"
	"github.com/eci-dev/eci/internal/errdefs"
)

// IPv6 dual stack: a vSwitch with spec.ipv6Cidr gives a group with
// spec.enableIpv6 the address of its ipv6Cidr at the offset of the group's
// IPv4 address in its cidr (addrpool.IPv6Pool), in the placement's write
// (status.ipv6Address). The IPv6 address has no record of its own: it is
// held, released, quarantined and kept (a fixed IP) with the IPv4 one,
// and a vSwitch's ipv6Cidr overlaps no other of its VPC, so two groups
// never get the same one.

// ipv6PoolOf is v's IPv6 pool over its IPv4 pool, nil when v has no
// ipv6Cidr.
func ipv6PoolOf(v *apiv1.VSwitch, pool *addrpool.Pool) (*addrpool.IPv6Pool, error) {
	if v.Spec.IPv6CIDR == "" {
		return nil, nil
	}
	return addrpool.NewIPv6Pool(pool, v.Spec.IPv6CIDR)
}

// newVSwitchIPv6 checks the IPv6 of a vSwitch v to create over its IPv4
// pool: its ipv6Cidr (addrpool's rules), an ipv6Gateway (the server's to
// set: only the one it would set is accepted, as a client that sends back
// what it read does), and no overlap with the ipv6Cidr of another vSwitch
// of its VPC vpc (among existing). nil when v has no ipv6Cidr.
func newVSwitchIPv6(v *apiv1.VSwitch, pool *addrpool.Pool, vpc string, existing []*apiv1.VSwitch) (*addrpool.IPv6Pool, error) {
	invalid := func(field, msg string, args ...any) error {
		return fmt.Errorf("%w: %w", errdefs.ErrInvalidArgument, apiv1.FieldErrors{{Field: field, Message: fmt.Sprintf(msg, args...)}})
	}
	if v.Spec.IPv6CIDR == "" {
		if v.Spec.IPv6Gateway != "" {
			return nil, invalid("spec.ipv6Gateway", "%q without spec.ipv6Cidr: allowed: none (the server sets it from the ipv6Cidr)", v.Spec.IPv6Gateway)
		}
		return nil, nil
	}
	p6, err := ipv6PoolOf(v, pool)
	if err != nil {
		return nil, invalid("spec.ipv6Cidr", "%s", err)
	}
	if gw := v.Spec.IPv6Gateway; gw != "" {
		if a, err := netip.ParseAddr(gw); err != nil || a != p6.Gateway {
			return nil, invalid("spec.ipv6Gateway", "%q: allowed: none, or %s (the server sets it: the ipv6Cidr's address at the gateway's offset in the cidr)", gw, p6.Gateway)
		}
	}
	for _, other := range existing {
		if vpcID(other) != vpc || other.Spec.IPv6CIDR == "" {
			continue
		}
		if op, err := netip.ParsePrefix(other.Spec.IPv6CIDR); err == nil && op.Overlaps(p6.Prefix) {
			return nil, invalid("spec.ipv6Cidr", "%s overlaps vSwitch %s (%s) of the same VPC", p6.Prefix, other.Metadata.ID, other.Spec.IPv6CIDR)
		}
	}
	return p6, nil
}

// dualStack narrows usable (the vSwitches g may use) to those with IPv6
// when g asks for it (spec.enableIpv6); g's other vSwitches are returned
// as they are. nil when g can't be placed on any: it is recorded (failed
// when its privateIpAddress is in a vSwitch without IPv6, which never
// gets one; waiting otherwise, until a vSwitch with IPv6 is made) and the
// error is the record's. A fixed IP kept on a vSwitch without IPv6 is not
// taken again: as for a vSwitch g does not name, g gets another address
// (staleFixed).
func (s *Service) dualStack(ctx context.Context, st *placementState, g *apiv1.ContainerGroup, usable []string) ([]string, error) {
	if !g.Spec.EnableIPv6 {
		return usable, nil
	}
	if a, err := netip.ParseAddr(g.Spec.PrivateIPAddress); err == nil {
		if vsw, _, err := st.findAddress(a, usable); err == nil && st.ipv6[vsw] == nil {
			return nil, s.scheduleFailed(ctx, g, "InvalidPrivateIP",
				fmt.Sprintf("privateIpAddress %s is in vSwitch %s, which has no IPv6 (ipv6Cidr): with enableIpv6, allowed: an address of a vSwitch with IPv6", a, vsw))
		}
	}
	var out []string
	for _, id := range usable {
		if st.ipv6[id] != nil {
			out = append(out, id)
		}
	}
	if len(out) == 0 {
		return nil, s.unschedulable(ctx, g, fmt.Sprintf("no vSwitch with IPv6 (ipv6Cidr) among %v, which enableIpv6 needs", usable))
	}
	return out, nil
}

// ipv6Of is the IPv6 address of g placed with ip on vSwitch vsw: "" when
// g does not ask for one (dualStack placed it on a vSwitch with IPv6 when
// it does).
func (st *placementState) ipv6Of(g *apiv1.ContainerGroup, vsw string, ip netip.Addr) string {
	p6 := st.ipv6[vsw]
	if !g.Spec.EnableIPv6 || p6 == nil {
		return ""
	}
	return p6.Of(ip).String()
}

// ipText is a placed group's addresses as events show them.
func ipText(st *apiv1.ContainerGroupStatus) string {
	if st.IPv6Address == "" {
		return st.IP
	}
	return st.IP + ", " + st.IPv6Address
}
