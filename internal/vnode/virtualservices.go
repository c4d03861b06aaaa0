package vnode

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	apiv1 "github.com/eci-dev/eci/api/v1"
)

// A Service and its EndpointSlices as the virtual IPs of the cluster's table
// (services.go writes them), with kube-proxy's semantics. Pure functions.

const (
	// LabelServiceNamespace and LabelServiceName name the Service a virtual
	// IP comes from.
	LabelServiceNamespace = labelPrefix + "service-namespace"
	LabelServiceName      = labelPrefix + "service-name"
	// labelServiceProxyName hands a Service to another proxy: kube-proxy
	// leaves it alone, and so does the vnode.
	labelServiceProxyName = "service.kubernetes.io/service-proxy-name"
)

var tableLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// tableName is the cluster's table of virtual IPs: the cluster id when it is
// a DNS label (at most 63 lowercase letters, digits and '-', a letter or
// digit at both ends), as the default (the node name) usually is. Any other
// id (a label value may hold capitals, '.' and '_') is lowercased, every
// other character turned into '-', cut to 54 characters, and '-' and the
// first 8 hex digits of the id's SHA-256 appended: always the same table for
// one id, and two ids that differ only in what was replaced get two. ""
// stays "" (no table).
func tableName(clusterID string) string {
	if clusterID == "" || (len(clusterID) <= 63 && tableLabel.MatchString(clusterID)) {
		return clusterID
	}
	sum := sha256.Sum256([]byte(clusterID))
	suffix := hex.EncodeToString(sum[:4])
	prefix := strings.Map(func(r rune) rune {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || r == '-' {
			return r
		}
		return '-'
	}, strings.ToLower(clusterID))
	prefix = strings.Trim(prefix[:min(len(prefix), 54)], "-")
	if prefix == "" {
		return suffix
	}
	return prefix + "-" + suffix
}

// virtualServices is what svc gives the table, as kube-proxy would serve it:
// one VirtualService per IPv4 ClusterIP (IPv6 ones are not served); none for
// headless and ExternalName Services, Services handed to another proxy, or
// Services without a TCP or UDP port (SCTP is not served). sls are the
// Service's EndpointSlices, sorted by name. notes say what was left out or
// cut.
func virtualServices(table, node string, svc *corev1.Service, sls []*discoveryv1.EndpointSlice) ([]apiv1.VirtualService, []string) {
	if svc.Spec.Type == corev1.ServiceTypeExternalName || svc.Labels[labelServiceProxyName] != "" {
		return nil, nil
	}
	ips := clusterIPv4s(svc)
	if len(ips) == 0 {
		return nil, nil
	}
	var notes []string
	local := svc.Spec.InternalTrafficPolicy != nil && *svc.Spec.InternalTrafficPolicy == corev1.ServiceInternalTrafficPolicyLocal
	spec := apiv1.VirtualServiceSpec{Table: table, SessionAffinity: apiv1.AffinityNone}
	for _, sp := range svc.Spec.Ports {
		proto := protocolOf(sp.Protocol)
		if proto != corev1.ProtocolTCP && proto != corev1.ProtocolUDP {
			notes = append(notes, fmt.Sprintf("port %q (%d/%s) left out: only TCP and UDP are served", sp.Name, sp.Port, proto))
			continue
		}
		spec.Ports = append(spec.Ports, apiv1.VirtualPort{Name: sp.Name, Protocol: apiv1.Protocol(proto), Port: sp.Port,
			Backends: backends(sp.Name, proto, sls, node, local)})
	}
	if len(spec.Ports) == 0 {
		return nil, append(notes, "no TCP or UDP port: no virtual IP")
	}
	if svc.Spec.SessionAffinity == corev1.ServiceAffinityClientIP {
		spec.SessionAffinity, spec.SessionAffinityTimeoutSeconds = apiv1.AffinityClientIP, apiv1.DefaultAffinityTimeout
		if c := svc.Spec.SessionAffinityConfig; c != nil && c.ClientIP != nil && c.ClientIP.TimeoutSeconds != nil {
			spec.SessionAffinityTimeoutSeconds = *c.ClientIP.TimeoutSeconds
		}
	}
	spec = canonical(spec)
	notes = append(notes, cut(&spec)...)
	meta := apiv1.ObjectMeta{Labels: map[string]string{LabelServiceNamespace: svc.Namespace, LabelServiceName: svc.Name}}
	out := make([]apiv1.VirtualService, 0, len(ips))
	for _, ip := range ips {
		s := canonical(spec) // a copy each
		s.IP = ip
		out = append(out, apiv1.VirtualService{Metadata: meta, Spec: s})
	}
	return out, notes
}

// clusterIPv4s are the Service's IPv4 ClusterIPs (spec.clusterIPs, or
// spec.clusterIP when a client left the list empty), never "None".
func clusterIPv4s(svc *corev1.Service) []string {
	ips := svc.Spec.ClusterIPs
	if len(ips) == 0 && svc.Spec.ClusterIP != "" {
		ips = []string{svc.Spec.ClusterIP}
	}
	var out []string
	for _, s := range ips {
		if a, err := netip.ParseAddr(s); err == nil && a.Is4() {
			out = append(out, a.String())
		}
	}
	return out
}

func protocolOf(p corev1.Protocol) corev1.Protocol {
	if p == "" {
		return corev1.ProtocolTCP
	}
	return p
}

// endpoint is an address and port of a Service port, with what kube-proxy
// reads of its conditions.
type endpoint struct {
	addr                            netip.Addr
	port                            int32
	ready, serving, terminating, on bool // on: on this node
}

// backends of the Service port named name, as kube-proxy picks them: the
// EndpointSlice port of that name and protocol gives the port (so named
// targetPorts, which the EndpointSlice controller resolved per pod); an
// endpoint counts once (the first slice by name that has it), by its first
// address; the ready ones (ready unset counts as ready), else the serving
// and terminating ones. local (internalTrafficPolicy Local) keeps the
// endpoints on node, with the same fallback among them; none left: no
// backends.
func backends(name string, proto corev1.Protocol, sls []*discoveryv1.EndpointSlice, node string, local bool) []apiv1.Backend {
	var eps []endpoint
	seen := map[netip.AddrPort]bool{}
	for _, sl := range sls {
		port, ok := slicePort(sl, name, proto)
		if !ok || sl.AddressType != discoveryv1.AddressTypeIPv4 {
			continue
		}
		for _, ep := range sl.Endpoints {
			if len(ep.Addresses) == 0 {
				continue
			}
			a, err := netip.ParseAddr(ep.Addresses[0])
			if err != nil || !a.Is4() || seen[netip.AddrPortFrom(a, uint16(port))] {
				continue
			}
			seen[netip.AddrPortFrom(a, uint16(port))] = true
			c := ep.Conditions
			eps = append(eps, endpoint{addr: a, port: port,
				ready: c.Ready == nil || *c.Ready, serving: c.Serving == nil || *c.Serving, terminating: c.Terminating != nil && *c.Terminating,
				on: ep.NodeName != nil && *ep.NodeName == node})
		}
	}
	if local {
		eps = slices.DeleteFunc(eps, func(e endpoint) bool { return !e.on })
	}
	picked := slices.DeleteFunc(slices.Clone(eps), func(e endpoint) bool { return !e.ready })
	if len(picked) == 0 {
		picked = slices.DeleteFunc(eps, func(e endpoint) bool { return !e.serving || !e.terminating })
	}
	var out []apiv1.Backend
	for _, e := range picked {
		out = append(out, apiv1.Backend{IP: e.addr.String(), Port: e.port})
	}
	return out
}

// slicePort is the port of the slice's port named name of protocol proto.
func slicePort(sl *discoveryv1.EndpointSlice, name string, proto corev1.Protocol) (int32, bool) {
	for _, p := range sl.Ports {
		pn, pp := "", corev1.ProtocolTCP
		if p.Name != nil {
			pn = *p.Name
		}
		if p.Protocol != nil {
			pp = protocolOf(*p.Protocol)
		}
		if pn == name && pp == proto && p.Port != nil && *p.Port > 0 && *p.Port <= 65535 {
			return *p.Port, true
		}
	}
	return 0, false
}

// canonical is a copy of s in the one form it is compared in: ports by
// protocol and port, backends by address and port, no empty lists, the
// affinity and its timeout as the API defaults them.
func canonical(s apiv1.VirtualServiceSpec) apiv1.VirtualServiceSpec {
	s.Ports = slices.Clone(s.Ports)
	for i := range s.Ports {
		s.Ports[i].Backends = slices.Clone(s.Ports[i].Backends)
		slices.SortFunc(s.Ports[i].Backends, compareBackends)
		if len(s.Ports[i].Backends) == 0 {
			s.Ports[i].Backends = nil
		}
	}
	slices.SortFunc(s.Ports, func(a, b apiv1.VirtualPort) int {
		return cmp.Or(cmp.Compare(a.Protocol, b.Protocol), cmp.Compare(a.Port, b.Port))
	})
	if len(s.Ports) == 0 {
		s.Ports = nil
	}
	switch s.SessionAffinity {
	case "", apiv1.AffinityNone:
		s.SessionAffinity, s.SessionAffinityTimeoutSeconds = apiv1.AffinityNone, 0
	case apiv1.AffinityClientIP:
		if s.SessionAffinityTimeoutSeconds == 0 {
			s.SessionAffinityTimeoutSeconds = apiv1.DefaultAffinityTimeout
		}
	}
	return s
}

func compareBackends(a, b apiv1.Backend) int {
	x, errX := netip.ParseAddr(a.IP)
	y, errY := netip.ParseAddr(b.IP)
	if errX != nil || errY != nil {
		return cmp.Or(strings.Compare(a.IP, b.IP), cmp.Compare(a.Port, b.Port))
	}
	return cmp.Or(x.Compare(y), cmp.Compare(a.Port, b.Port))
}

// cut keeps s within the API's limits, deterministically (s is canonical):
// the first MaxVirtualPorts ports by protocol and port, and MaxBackends
// backends all ports together, each port keeping its lowest addresses up to
// a fair share (a port with fewer than its share leaves the rest to the
// others).
func cut(s *apiv1.VirtualServiceSpec) (notes []string) {
	if n := len(s.Ports); n > apiv1.MaxVirtualPorts {
		s.Ports = s.Ports[:apiv1.MaxVirtualPorts]
		notes = append(notes, fmt.Sprintf("%d ports cut to the %d a virtual IP takes (the first by protocol and port)", n, apiv1.MaxVirtualPorts))
	}
	total := 0
	for _, p := range s.Ports {
		total += len(p.Backends)
	}
	if total <= apiv1.MaxBackends {
		return notes
	}
	order := make([]int, len(s.Ports))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(len(s.Ports[a].Backends), len(s.Ports[b].Backends)) })
	left := apiv1.MaxBackends
	for n, i := range order {
		share := left / (len(order) - n)
		if len(s.Ports[i].Backends) > share {
			s.Ports[i].Backends = s.Ports[i].Backends[:share:share]
		}
		left -= len(s.Ports[i].Backends)
	}
	return append(notes, fmt.Sprintf("%d backends cut to the %d a virtual IP takes, all ports together (each port keeps its lowest addresses, a fair share)", total, apiv1.MaxBackends))
}
