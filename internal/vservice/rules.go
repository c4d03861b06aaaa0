// Package vservice programs a host's virtual services (api/v1
// VirtualService) into nftables, as kube-proxy's nftables mode programs a
// node's Services: one table, verdict maps from a virtual IP, protocol and
// port to a chain per service port that picks a backend, a reject for ports
// with no backends, masquerade for an instance that reaches itself, one
// atomic transaction per change.
//
// Unlike a node's kube-proxy, a host serves several tenants' tables whose
// virtual IPs may overlap: the instance's source address says which table a
// packet is looked up in (a verdict map from instance address to the
// table's chain), so an instance reaches only its own table's virtual IPs.
package vservice

import (
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"sigs.k8s.io/knftables"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/datapath"
)

// TableName is the nftables table of virtual services (family ip); an
// agent's is TableFor its network.
const TableName = "eci-services"

// TableFor is the table of the agent whose network is named network (one
// per network, so that agents sharing a network namespace in tests keep to
// their own).
func TableFor(network string) string { return TableName + "-" + network }

// MasqueradeMark is the packet mark bit that asks for masquerade (an
// instance whose connection to a virtual IP was sent to itself), as
// kube-proxy's.
const MasqueradeMark = 0x4000

// Table is one tenant's table as a host serves it: the host's instances
// that reach it, and its virtual IPs.
type Table struct {
	// Key names the table uniquely on the host: "<tenant>/<table>".
	Key      string
	Clients  []Client
	Services []*apiv1.VirtualService
}

// Client is an instance of the host: its address in its VPC, whose packet
// mark (datapath.MarkOf: 0 for the default VPC) tells two VPCs' instances
// of one address apart.
type Client struct {
	Addr netip.Addr
	Mark uint32
}

// key is the client's key in the clients' maps.
func (c Client) key() []string { return []string{fmt.Sprintf("%#x", c.Mark), c.Addr.String()} }

// Compare orders clients by address, then mark.
func (c Client) Compare(o Client) int {
	if n := c.Addr.Compare(o.Addr); n != 0 {
		return n
	}
	return int(int64(c.Mark) - int64(o.Mark))
}

// vpcMarkMask is the part of the packet mark that names the VPC.
const vpcMarkMask = 0xffff0000

// Names of the fixed objects.
const (
	clientsNAT    = "clients-nat"    // instance address : goto the table's nat chain
	clientsFilter = "clients-filter" // instance address : goto the table's filter chain
	rejectChain   = "reject-no-backends"
	natPrerouting = "nat-prerouting"
	filterPrerout = "filter-prerouting"
	natPostrout   = "nat-postrouting"
	markMasq      = "mark-for-masquerade"
)

// ruleset is the desired content of the table: every chain with its rules,
// every map with its elements, and the affinity sets (whose dynamic
// elements are kept across syncs).
type ruleset struct {
	chains []chain
	maps   []mapping
	sets   []knftables.Set
}

type chain struct {
	knftables.Chain
	rules []string
}

// mapping is a map, or (set) a set, written with its elements.
type mapping struct {
	knftables.Map
	set      bool
	elements []knftables.Element
}

// object is the nftables object m is.
func (m *mapping) object() knftables.Object {
	if m.set {
		return &knftables.Set{Name: m.Name, Type: m.Type}
	}
	return &knftables.Map{Name: m.Name, Type: m.Type}
}

// element is e of m.
func (m *mapping) element(e knftables.Element) *knftables.Element {
	if m.set {
		e.Set = m.Name
	} else {
		e.Map = m.Name
	}
	return &e
}

// build computes the ruleset of tables.
func build(tables []Table) *ruleset {
	rs := &ruleset{}
	rs.base()
	clientNAT := mapping{Map: knftables.Map{Name: clientsNAT, Type: "mark . ipv4_addr : verdict"}}
	clientFilter := mapping{Map: knftables.Map{Name: clientsFilter, Type: "mark . ipv4_addr : verdict"}}
	for _, t := range tables {
		if len(t.Clients) == 0 {
			continue
		}
		nat, filter := rs.table(t)
		for _, c := range t.Clients {
			clientNAT.elements = append(clientNAT.elements, knftables.Element{Key: c.key(), Value: []string{"goto " + nat}})
			clientFilter.elements = append(clientFilter.elements, knftables.Element{Key: c.key(), Value: []string{"goto " + filter}})
		}
	}
	rs.maps = append(rs.maps, clientNAT, clientFilter)
	return rs
}

// base adds the hooked chains and the helpers every table shares. A
// packet is an instance's when it comes from an instance's interface
// (internal/datapath) with a VPC mark and address of the clients' maps;
// the host's strict reverse-path filter has dropped any whose address is
// not of the instance behind that interface.
func (rs *ruleset) base() {
	hooked := func(name string, typ knftables.BaseChainType, hook knftables.BaseChainHook, prio knftables.BaseChainPriority, rules ...string) {
		rs.chains = append(rs.chains, chain{Chain: knftables.Chain{Name: name, Type: &typ, Hook: &hook, Priority: &prio}, rules: rules})
	}
	iif := fmt.Sprintf("iifname %q", datapath.InterfacePrefix+"*")
	client := fmt.Sprintf("meta mark & %#x . ip saddr", vpcMarkMask)
	hooked(natPrerouting, knftables.NATType, knftables.PreroutingHook, knftables.DNATPriority,
		iif+" "+client+" vmap @"+clientsNAT)
	// New connections to a virtual port with no backends are refused as
	// they arrive, before routing (which could send them on, or answer
	// "unreachable" where the host has no route).
	hooked(filterPrerout, knftables.FilterType, knftables.PreroutingHook, knftables.DNATPriority+"-10",
		"ct state new "+iif+" "+client+" vmap @"+clientsFilter)
	hooked(natPostrout, knftables.NATType, knftables.PostroutingHook, knftables.SNATPriority,
		fmt.Sprintf("meta mark & %#x == 0 return", MasqueradeMark),
		fmt.Sprintf("meta mark set meta mark xor %#x", MasqueradeMark),
		"masquerade fully-random")
	rs.chains = append(rs.chains,
		chain{Chain: knftables.Chain{Name: rejectChain}, rules: []string{"reject"}},
		chain{Chain: knftables.Chain{Name: markMasq}, rules: []string{fmt.Sprintf("meta mark set meta mark or %#x", MasqueradeMark)}})
}

// table adds one table's chains and maps and returns its nat and filter
// chains.
func (rs *ruleset) table(t Table) (nat, filter string) {
	id := hash(t.Key)
	nat, filter = "t-"+id, "t-"+id+"-filter"
	svcMap := mapping{Map: knftables.Map{Name: "t-" + id + "-ips", Type: "ipv4_addr . inet_proto . inet_service : verdict"}}
	rejMap := mapping{Map: knftables.Map{Name: "t-" + id + "-no-backends", Type: "ipv4_addr . inet_proto . inet_service : verdict"}}
	// The table's ports with backends, and its virtual IPs: any other port
	// of a virtual IP is refused, not routed on untranslated.
	served := mapping{Map: knftables.Map{Name: "t-" + id + "-served", Type: "ipv4_addr . inet_proto . inet_service"}, set: true}
	vips := mapping{Map: knftables.Map{Name: "t-" + id + "-vips", Type: "ipv4_addr"}, set: true}
	for _, vs := range t.Services {
		vips.elements = append(vips.elements, knftables.Element{Key: []string{vs.Spec.IP}})
		for _, port := range vs.Spec.Ports {
			key := []string{vs.Spec.IP, strings.ToLower(string(port.Protocol)), strconv.Itoa(int(port.Port))}
			if len(port.Backends) == 0 {
				rejMap.elements = append(rejMap.elements, knftables.Element{Key: key, Value: []string{"goto " + rejectChain}})
				continue
			}
			svc := rs.servicePort(t.Key, &vs.Spec, port)
			svcMap.elements = append(svcMap.elements, knftables.Element{Key: key, Value: []string{"goto " + svc}})
			served.elements = append(served.elements, knftables.Element{Key: key})
		}
	}
	rs.maps = append(rs.maps, svcMap, rejMap, served, vips)
	rs.chains = append(rs.chains,
		chain{Chain: knftables.Chain{Name: nat}, rules: []string{"ip daddr . meta l4proto . th dport vmap @" + svcMap.Name}},
		chain{Chain: knftables.Chain{Name: filter}, rules: []string{
			"ip daddr . meta l4proto . th dport vmap @" + rejMap.Name,
			"ip daddr . meta l4proto . th dport @" + served.Name + " return",
			"ip daddr @" + vips.Name + " goto " + rejectChain,
		}})
	return nat, filter
}

// servicePort adds the chain of one virtual port, which picks a backend
// (the client's affine one first), and a chain per backend; it returns the
// port's chain.
func (rs *ruleset) servicePort(table string, s *apiv1.VirtualServiceSpec, port apiv1.VirtualPort) string {
	proto := strings.ToLower(string(port.Protocol))
	portKey := fmt.Sprintf("%s|%s|%s|%d", table, s.IP, proto, port.Port)
	name := "s-" + hash(portKey)
	affinity := s.SessionAffinity == apiv1.AffinityClientIP
	timeout := time.Duration(s.SessionAffinityTimeoutSeconds) * time.Second
	if timeout == 0 {
		timeout = apiv1.DefaultAffinityTimeout * time.Second
	}
	backends := slices.Clone(port.Backends)
	slices.SortFunc(backends, func(a, b apiv1.Backend) int {
		return strings.Compare(fmt.Sprintf("%s:%d", a.IP, a.Port), fmt.Sprintf("%s:%d", b.IP, b.Port))
	})
	var rules, picks []string
	for i, b := range backends {
		ep := "e-" + hash(fmt.Sprintf("%s|%s:%d", portKey, b.IP, b.Port))
		epRules := []string{fmt.Sprintf("ip saddr %s jump %s", b.IP, markMasq)}
		if affinity {
			// The timeout is part of the name: a set's timeout can't be
			// changed, a new one replaces it.
			set := "a-" + hash(fmt.Sprintf("%s|%s:%d|%s", portKey, b.IP, b.Port, timeout))
			rs.sets = append(rs.sets, knftables.Set{Name: set, Type: "ipv4_addr",
				Flags: []knftables.SetFlag{knftables.DynamicFlag, knftables.TimeoutFlag}, Timeout: &timeout})
			rules = append(rules, fmt.Sprintf("ip saddr @%s goto %s", set, ep))
			epRules = append(epRules, fmt.Sprintf("update @%s { ip saddr }", set))
		}
		epRules = append(epRules, fmt.Sprintf("meta l4proto %s dnat to %s:%d", proto, b.IP, b.Port))
		rs.chains = append(rs.chains, chain{Chain: knftables.Chain{Name: ep}, rules: epRules})
		picks = append(picks, fmt.Sprintf("%d : goto %s", i, ep))
	}
	rules = append(rules, fmt.Sprintf("numgen random mod %d vmap { %s }", len(picks), strings.Join(picks, " , ")))
	rs.chains = append(rs.chains, chain{Chain: knftables.Chain{Name: name}, rules: rules})
	return name
}

// hash is a short, stable name part for a key (nftables names are bounded).
func hash(key string) string {
	sum := sha256.Sum256([]byte(key))
	return strings.ToLower(base32.StdEncoding.EncodeToString(sum[:10]))
}
