package v1

import (
	"net/netip"
	"strconv"
	"strings"
)

// ValidateSecurityGroup checks a security group to write.
func ValidateSecurityGroup(g *SecurityGroup) error {
	e := &errs{}
	e.dnsLabel("metadata.name", g.Metadata.Name, 63)
	e.labels("metadata.labels", g.Metadata.Labels, "label")
	switch g.Spec.InnerAccessPolicy {
	case "", InnerAccept, InnerDrop:
	default:
		e.add("spec.innerAccessPolicy", "%q is not a policy; allowed: Accept (the default) or Drop", g.Spec.InnerAccessPolicy)
	}
	for _, d := range []struct {
		dir   string
		rules []SecurityRule
	}{{"ingress", g.Spec.Ingress}, {"egress", g.Spec.Egress}} {
		p, rules := fpath("spec").child(d.dir), d.rules
		if len(rules) > MaxSecurityRules {
			e.add(p, "%d rules is too many; allowed: at most %d", len(rules), MaxSecurityRules)
			continue
		}
		for i, r := range rules {
			validateSecurityRule(e, p.index(i), r)
		}
	}
	return e.result()
}

func validateSecurityRule(e *errs, p fpath, r SecurityRule) {
	switch r.Protocol {
	case "TCP", "UDP":
		if r.PortRange != "" {
			if _, _, ok := ParsePortRange(r.PortRange); !ok {
				e.add(p.child("portRange"), "%q: allowed: from/to, ports 1 to 65535, from <= to (80/80 is one port)", r.PortRange)
			}
		}
	case "ICMP", "ALL":
		if r.PortRange != "" {
			e.add(p.child("portRange"), "only TCP and UDP rules have ports")
		}
	default:
		e.add(p.child("protocol"), "%q is not a protocol; allowed: TCP, UDP, ICMP or ALL", r.Protocol)
	}
	switch {
	case r.CIDR != "" && r.GroupID != "":
		e.add(p.child("groupId"), "give cidr or groupId, not both")
	case r.CIDR != "":
		if pfx, err := netip.ParsePrefix(r.CIDR); err != nil || pfx.Addr().Is4In6() {
			e.add(p.child("cidr"), "%q: allowed: an IPv4 or IPv6 CIDR such as 198.18.0.0/15 or fd00::/8 (0.0.0.0/0: any IPv4 address, ::/0: any IPv6 address)", r.CIDR)
		}
	case r.GroupID != "":
		e.dnsLabel(p.child("groupId"), r.GroupID, 63)
	default:
		e.required(p.child("cidr"), "a CIDR, or groupId: a security group of the tenant")
	}
}

// ParsePortRange reads "from/to".
func ParsePortRange(s string) (from, to int, ok bool) {
	a, b, found := strings.Cut(s, "/")
	if !found {
		return 0, 0, false
	}
	from, err1 := strconv.Atoi(a)
	to, err2 := strconv.Atoi(b)
	if err1 != nil || err2 != nil || from < 1 || to > 65535 || from > to {
		return 0, 0, false
	}
	return from, to, true
}
