package v1

import (
	"fmt"
	"net/netip"
)

// ValidateVirtualService checks a virtual IP, its ports and backends.
func ValidateVirtualService(v *VirtualService) error {
	e := &errs{}
	s, p := &v.Spec, fpath("spec")
	e.dnsLabel(p.child("table"), s.Table, 63)
	e.labels(fpath("metadata.labels"), v.Metadata.Labels, "label")
	if !routableIPv4(s.IP) {
		e.add(p.child("ip"), "%q is not allowed; allowed: %s", s.IP, routableWhat)
	}
	if len(s.Ports) == 0 {
		e.required(p.child("ports"), "at least one port")
	}
	if len(s.Ports) > MaxVirtualPorts {
		e.add(p.child("ports"), "%d ports is too many; allowed: at most %d", len(s.Ports), MaxVirtualPorts)
	}
	e.oneOf(p.child("sessionAffinity"), string(s.SessionAffinity), "", string(AffinityNone), string(AffinityClientIP))
	if t := s.SessionAffinityTimeoutSeconds; t < 0 || t > MaxAffinityTimeout {
		e.add(p.child("sessionAffinityTimeoutSeconds"), "%d is not allowed; allowed: 1-%d, or 0 for %d", t, MaxAffinityTimeout, DefaultAffinityTimeout)
	}
	seen, names, backends := map[string]bool{}, map[string]bool{}, 0
	for i := range s.Ports {
		vp, pp := &s.Ports[i], p.child("ports").index(i)
		if vp.Name != "" {
			e.dnsLabel(pp.child("name"), vp.Name, 63)
			if names[vp.Name] {
				e.add(pp.child("name"), "%q is repeated; allowed: a name once", vp.Name)
			}
			names[vp.Name] = true
		}
		e.oneOf(pp.child("protocol"), string(vp.Protocol), string(ProtocolTCP), string(ProtocolUDP))
		e.port(pp.child("port"), vp.Port)
		key := fmt.Sprintf("%s/%d", vp.Protocol, vp.Port)
		if seen[key] {
			e.add(pp, "%s is repeated; allowed: a protocol and port once", key)
		}
		seen[key] = true
		backends += len(vp.Backends)
		validateBackends(e, pp.child("backends"), vp.Backends)
	}
	if backends > MaxBackends {
		e.add(p.child("ports"), "%d backends is too many; allowed: at most %d, all ports together", backends, MaxBackends)
	}
	return e.result()
}

func validateBackends(e *errs, p fpath, list []Backend) {
	seen := map[Backend]bool{}
	for i, b := range list {
		bp := p.index(i)
		if !routableIPv4(b.IP) {
			e.add(bp.child("ip"), "%q is not allowed; allowed: %s", b.IP, routableWhat)
		}
		e.port(bp.child("port"), b.Port)
		if seen[b] {
			e.add(bp, "%s:%d is repeated; allowed: a backend once per port", b.IP, b.Port)
		}
		seen[b] = true
	}
}

const routableWhat = "a global unicast IPv4 address (not 0.0.0.0/8, loopback, link-local such as 169.254.169.254, multicast, 240.0.0.0/4 or the broadcast address)"

var (
	thisNetwork = netip.MustParsePrefix("0.0.0.0/8")
	reserved    = netip.MustParsePrefix("240.0.0.0/4") // with 255.255.255.255
)

// routableIPv4 tells whether s is an IPv4 address a virtual IP or backend
// may be (Kubernetes' ValidateNonSpecialIP, and no class E).
func routableIPv4(s string) bool {
	a, err := netip.ParseAddr(s)
	return err == nil && a.Is4() && a.IsGlobalUnicast() && !thisNetwork.Contains(a) && !reserved.Contains(a)
}
