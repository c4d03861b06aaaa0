package datapath

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"sigs.k8s.io/knftables"
)

// FirewallTable is the nftables table (family inet: IPv4 and IPv6) of
// network's security groups.
func FirewallTable(network string) string { return "eci-sg-" + network }

// SecurityGroup is a security group as a host enforces it.
type SecurityGroup struct {
	// Key names it ("<tenant>/<name>"); rules' Group name others by it.
	Key string
	// InnerAccept lets its members reach each other.
	InnerAccept bool
	Ingress     []Rule
	// Egress rules; nil: every destination.
	Egress []Rule
	// Members are every instance of the pool that names it.
	Members []Endpoint
}

// Rule allows a protocol (tcp, udp, icmp (ICMPv6 too), or "" for all), a
// port range (From 0: every port) from or to a CIDR (0.0.0.0/0: every IPv4
// address, ::/0 every IPv6 one) or a group's members (either family).
type Rule struct {
	Protocol string
	From, To int
	CIDR     netip.Prefix
	Group    string
}

// Endpoint is an instance as the host's packets show it: an address of
// it (IPv4 or IPv6: an instance with both is two) and its VPC's mark.
type Endpoint struct {
	Addr netip.Addr
	Mark uint32
}

// Protected is an instance of this host that names security groups.
type Protected struct {
	Endpoint
	Groups []string
}

// Firewall enforces the security groups of the host's instances in one
// nftables table, hooked at forward (every packet to or from an instance
// is routed): answers of allowed connections pass; a packet an instance
// sends must be allowed by the egress of one of its groups; a packet to an
// instance by the ingress (or inner access) of one of its groups. Each
// sync writes the whole table in one transaction.
type Firewall struct {
	NFT knftables.Interface
	// Network names the agent's network (its tunnels: TunnelGroup).
	Network string
}

// Sync writes the rules of groups for the host's protected instances.
func (f *Firewall) Sync(ctx context.Context, groups []SecurityGroup, local []Protected) error {
	byKey := map[string]*SecurityGroup{}
	for i := range groups {
		byKey[groups[i].Key] = &groups[i]
	}
	tx := f.NFT.NewTransaction()
	tx.Add(&knftables.Table{})
	tx.Delete(&knftables.Table{})
	tx.Add(&knftables.Table{Comment: knftables.PtrTo("eci: the security groups of the host's instances")})
	// A set for every group, and for every group a rule names (one that
	// is gone has no members).
	for _, g := range groups {
		addMemberSets(tx, g.Key)
		for _, m := range g.Members {
			tx.Add(&knftables.Element{Set: memberSet(g.Key, m.Addr.Is6()), Key: []string{fmt.Sprintf("%#x", m.Mark), m.Addr.String()}})
		}
		for _, r := range slices.Concat(g.Ingress, g.Egress) {
			if r.Group != "" && byKey[r.Group] == nil {
				addMemberSets(tx, r.Group)
			}
		}
	}
	for _, fam := range families {
		tx.Add(&knftables.Map{Name: "egress" + fam.suffix, Type: "mark . " + fam.addrType + " : verdict"})
		tx.Add(&knftables.Map{Name: "ingress" + fam.suffix, Type: "mark . " + fam.addrType + " : verdict"})
	}
	made := map[string]bool{}
	for _, p := range local {
		set := slices.Clone(p.Groups)
		slices.Sort(set)
		name := "p-" + shortHash(strings.Join(set, ","))
		if !made[name] {
			made[name] = true
			f.chains(tx, name, set, byKey)
		}
		key, suffix := []string{fmt.Sprintf("%#x", p.Mark), p.Addr.String()}, ""
		if p.Addr.Is6() {
			suffix = "6"
		}
		tx.Add(&knftables.Element{Map: "egress" + suffix, Key: key, Value: []string{"jump " + name + "-out"}})
		tx.Add(&knftables.Element{Map: "ingress" + suffix, Key: key, Value: []string{"goto " + name + "-in"}})
	}
	tx.Add(&knftables.Chain{Name: "forward", Type: knftables.PtrTo(knftables.FilterType), Hook: knftables.PtrTo(knftables.ForwardHook), Priority: knftables.PtrTo(knftables.FilterPriority)})
	iif, oif := fmt.Sprintf("iifname %q", InterfacePrefix+"*"), fmt.Sprintf("oifname %q", InterfacePrefix+"*")
	vpc := fmt.Sprintf("meta mark & %#x", markMask)
	outside := fmt.Sprintf("iifname != %q %s ", InterfacePrefix+"*", tunnelMatch("iif", f.Network, true))
	fromTunnel := tunnelMatch("iif", f.Network, false)
	for _, r := range []string{
		"ct state established,related accept",
		// A source that the host would not route back the way it came
		// (a member's address from the underlay) is no member: checked
		// where a packet enters the instances' network from outside, on
		// its way to an instance or into a tunnel. What comes out of a
		// tunnel was checked by the host it entered (its answers may take
		// another way back: a real node's pods reach an instance through
		// one host, which its answers leave without).
		outside + oif + " fib saddr . mark . iif oif missing drop",
		outside + tunnelMatch("oif", f.Network, false) + " fib saddr . mark . iif oif missing drop",
		// Nor does a tunnel bring this host's own instances' addresses or
		// its own: whoever sent them made them up.
		fromTunnel + ` fib saddr . mark oifname "` + InterfacePrefix + `*" drop`,
		fromTunnel + " fib saddr type local drop",
		iif + " " + vpc + " . ip saddr vmap @egress",
		oif + " " + vpc + " . ip daddr vmap @ingress",
		iif + " " + vpc + " . ip6 saddr vmap @egress6",
		oif + " " + vpc + " . ip6 daddr vmap @ingress6",
	} {
		tx.Add(&knftables.Rule{Chain: "forward", Rule: r})
	}
	if err := f.NFT.Run(ctx, tx); err != nil {
		return fmt.Errorf("security groups: %w", err)
	}
	return nil
}

// chains adds the egress and ingress chains of instances naming set: the
// egress one returns (to the ingress check) when one group allows, else
// drops; the ingress one accepts when one group allows, else drops. Inner
// access lets members reach each other both ways. A group that does not
// exist (deleted, or not seen yet) allows nothing either way.
func (f *Firewall) chains(tx *knftables.Transaction, name string, set []string, byKey map[string]*SecurityGroup) {
	out, in := name+"-out", name+"-in"
	tx.Add(&knftables.Chain{Name: out})
	tx.Add(&knftables.Chain{Name: in})
	vpc := fmt.Sprintf("meta mark & %#x", markMask)
	allOut := false
	for _, key := range set {
		g := byKey[key]
		if g == nil {
			continue // a group that is gone (or not seen yet) allows nothing
		}
		if len(g.Egress) == 0 {
			allOut = true
			continue
		}
		if g.InnerAccept {
			for _, fam := range families {
				tx.Add(&knftables.Rule{Chain: out, Rule: vpc + " . " + fam.proto + " daddr @" + memberSet(g.Key, fam.suffix != "") + " return"})
			}
		}
		for _, r := range g.Egress {
			for _, m := range ruleText(r, "daddr", vpc) {
				tx.Add(&knftables.Rule{Chain: out, Rule: strings.TrimSpace(m + " return")})
			}
		}
	}
	if allOut {
		tx.Add(&knftables.Rule{Chain: out, Rule: "return"})
	} else {
		tx.Add(&knftables.Rule{Chain: out, Rule: "drop"})
	}
	for _, key := range set {
		g := byKey[key]
		if g == nil {
			continue
		}
		if g.InnerAccept {
			for _, fam := range families {
				tx.Add(&knftables.Rule{Chain: in, Rule: vpc + " . " + fam.proto + " saddr @" + memberSet(g.Key, fam.suffix != "") + " accept"})
			}
		}
		for _, r := range g.Ingress {
			for _, m := range ruleText(r, "saddr", vpc) {
				tx.Add(&knftables.Rule{Chain: in, Rule: strings.TrimSpace(m + " accept")})
			}
		}
	}
	tx.Add(&knftables.Rule{Chain: in, Rule: "drop"})
}

// family is what an inet table's rules say of IPv4 or IPv6: the address's
// protocol word, its type, and the suffix of the maps and sets of it.
type family struct{ proto, addrType, suffix string }

var families = []family{{"ip", "ipv4_addr", ""}, {"ip6", "ipv6_addr", "6"}}

// ruleText is r's matches (one per family for a group's members: either
// matches): the peer (the packet's saddr or daddr) and the protocol and
// ports.
func ruleText(r Rule, peer, vpc string) []string {
	var peers []string
	switch {
	case r.Group != "":
		for _, fam := range families {
			peers = append(peers, vpc+" . "+fam.proto+" "+peer+" @"+memberSet(r.Group, fam.suffix != ""))
		}
	case r.CIDR.IsValid() && r.CIDR.Bits() > 0:
		proto := "ip "
		if r.CIDR.Addr().Is6() {
			proto = "ip6 "
		}
		peers = append(peers, proto+peer+" "+r.CIDR.Masked().String())
	case r.CIDR.IsValid() && r.CIDR.Addr().Is6():
		peers = append(peers, "meta nfproto ipv6")
	case r.CIDR.IsValid():
		peers = append(peers, "meta nfproto ipv4")
	default:
		peers = append(peers, "") // every packet
	}
	var parts []string
	switch r.Protocol {
	case "tcp", "udp":
		parts = append(parts, "meta l4proto "+r.Protocol)
		if r.From > 0 {
			parts = append(parts, fmt.Sprintf("th dport %d-%d", r.From, r.To))
		}
	case "icmp":
		parts = append(parts, "meta l4proto { icmp, ipv6-icmp }")
	}
	out := make([]string, len(peers))
	for i, p := range peers {
		out[i] = strings.TrimSpace(p + " " + strings.Join(parts, " "))
	}
	return out
}

// addMemberSets adds the sets of a group's members' (mark, address), one
// per family.
func addMemberSets(tx *knftables.Transaction, key string) {
	for _, fam := range families {
		tx.Add(&knftables.Set{Name: memberSet(key, fam.suffix != ""), Type: "mark . " + fam.addrType})
	}
}

// memberSet is the set of a group's members' (mark, address) of IPv4, or
// of IPv6.
func memberSet(key string, v6 bool) string {
	if v6 {
		return "m6-" + shortHash(key)
	}
	return "m-" + shortHash(key)
}

func shortHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])[:16]
}
