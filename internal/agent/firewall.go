package agent

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"sigs.k8s.io/knftables"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/client"
	"github.com/eci-dev/eci/internal/datapath"
)

// firewallWait bounds how long a group's start waits for its security
// groups' rules.
const firewallWait = 5 * time.Second

// firewall enforces the security groups of the host's instances
// (datapath.Firewall): it watches every tenant's security groups and reads
// the address book (the members, wherever they run, and this host's
// instances that name groups), and writes the whole table on every change,
// at most every 100 ms.
type firewall struct {
	fw    *datapath.Firewall
	self  string
	book  *addressBook
	vniOf func(context.Context, string) (int, error)

	sgs *mirror[apiv1.SecurityGroup] // by key "<tenant>/<name>"

	mu       sync.Mutex
	enforced map[datapath.Endpoint]bool // this host's protected instances, as last synced
	// oldDropped: the table of family ip of an agent of before IPv6 is
	// gone (after the first sync).
	oldDropped bool
	syncedCh   chan struct{} // closed and replaced after every sync
	changed    chan struct{}
}

func newFirewall(network, self string, book *addressBook, vniOf func(context.Context, string) (int, error)) (*firewall, error) {
	nft, err := knftables.New(datapath.InetFamily, datapath.FirewallTable(network))
	if err != nil {
		return nil, fmt.Errorf("security groups need nftables (nft 1.0.1 or later): %w", err)
	}
	f := &firewall{fw: &datapath.Firewall{NFT: nft, Network: network}, self: self, book: book, vniOf: vniOf,
		sgs: newMirror[apiv1.SecurityGroup](nil), enforced: map[datapath.Endpoint]bool{},
		syncedCh: make(chan struct{}), changed: make(chan struct{}, 1)}
	book.subscribe(f.kick)
	f.sgs.subscribe(f.kick)
	return f, nil
}

func (f *firewall) kick() {
	notify(f.changed)
}

// watch keeps the copy of every security group.
func (f *firewall) watch(ctx context.Context, c *client.Client) {
	c.InformSecurityGroups(ctx, f.sgs.handler(ctx, "the security groups", func(g *apiv1.SecurityGroup) string { return g.Metadata.ID }))
}

// run syncs until ctx ends.
func (f *firewall) run(ctx context.Context) {
	syncLoop(ctx, "security groups", f.changed, 5*time.Minute, func(ctx context.Context, _ bool) error { return f.sync(ctx) })
}

// sync writes the rules; nothing before both the security groups and the
// addresses were listed (the table an earlier run left stays meanwhile).
func (f *firewall) sync(ctx context.Context) error {
	addrs, booked := f.book.snapshot()
	sgs, listed := f.sgs.snapshot()
	if !booked || !listed {
		return nil
	}
	members := map[string][]datapath.Endpoint{}
	var local []datapath.Protected
	for _, a := range addrs {
		if len(a.SecurityGroups) == 0 {
			continue
		}
		ip, err := netip.ParseAddr(a.IP)
		if err != nil {
			continue
		}
		vni, err := f.vniOf(ctx, a.VSwitchID)
		if err != nil {
			if a.Host == f.self {
				// Never a table without one of this host's instances:
				// the last one stays until the vSwitch is read.
				return fmt.Errorf("the VPC of %s: %w", a.IP, err)
			}
			continue // a vSwitch gone (none is while it has addresses)
		}
		for _, addr := range []netip.Addr{ip, bookIPv6(a)} {
			if !addr.IsValid() {
				continue
			}
			ep := datapath.Endpoint{Addr: addr, Mark: datapath.MarkOf(vni)}
			for _, k := range a.SecurityGroups {
				members[k] = append(members[k], ep)
			}
			if a.Host == f.self {
				local = append(local, datapath.Protected{Endpoint: ep, Groups: a.SecurityGroups})
			}
		}
	}
	groups := make([]datapath.SecurityGroup, 0, len(sgs))
	for _, g := range sgs {
		groups = append(groups, toDatapath(g, members[g.Metadata.ID]))
	}
	slices.SortFunc(groups, func(a, b datapath.SecurityGroup) int { return strings.Compare(a.Key, b.Key) })
	if err := f.fw.Sync(ctx, groups, local); err != nil {
		return err
	}
	if !f.oldDropped {
		// The table of family ip an agent of before IPv6 left filtered
		// until now (the new one is in).
		if err := datapath.DropIPv4Table(ctx, datapath.FirewallTable(f.fw.Network)); err != nil {
			return err
		}
		f.oldDropped = true
	}
	enforced := map[datapath.Endpoint]bool{}
	for _, p := range local {
		enforced[p.Endpoint] = true
	}
	f.mu.Lock()
	f.enforced = enforced
	close(f.syncedCh)
	f.syncedCh = make(chan struct{})
	f.mu.Unlock()
	return nil
}

// toDatapath is g as the host enforces it, with its members.
func toDatapath(g *apiv1.SecurityGroup, members []datapath.Endpoint) datapath.SecurityGroup {
	rules := func(in []apiv1.SecurityRule) []datapath.Rule {
		var out []datapath.Rule
		for _, r := range in {
			dr := datapath.Rule{Protocol: strings.ToLower(r.Protocol)}
			if dr.Protocol == "all" {
				dr.Protocol = ""
			}
			if from, to, ok := apiv1.ParsePortRange(r.PortRange); ok {
				dr.From, dr.To = from, to
			}
			if r.GroupID != "" {
				dr.Group = g.Metadata.Tenant + "/" + r.GroupID
			} else if p, err := netip.ParsePrefix(r.CIDR); err == nil {
				dr.CIDR = p
			} else {
				continue // validated by the server: never here
			}
			out = append(out, dr)
		}
		return out
	}
	return datapath.SecurityGroup{Key: g.Metadata.ID, InnerAccept: g.Spec.InnerAccessPolicy != apiv1.InnerDrop,
		Ingress: rules(g.Spec.Ingress), Egress: rules(g.Spec.Egress), Members: members}
}

// await waits until g's security groups are enforced for its address (or
// firewallWait passes, or ctx ends), so that its containers never run
// unfiltered. It tells whether they are.
func (f *firewall) await(ctx context.Context, g *apiv1.ContainerGroup) bool {
	ip, err := netip.ParseAddr(g.Status.IP)
	if len(g.Spec.SecurityGroupIDs) == 0 || err != nil {
		return true
	}
	vni, err := f.vniOf(ctx, g.Status.VSwitchID)
	if err != nil {
		return false
	}
	ep := datapath.Endpoint{Addr: ip, Mark: datapath.MarkOf(vni)}
	deadline := time.NewTimer(firewallWait)
	defer deadline.Stop()
	f.kick()
	for {
		f.mu.Lock()
		ok, next := f.enforced[ep], f.syncedCh
		f.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-next:
		case <-deadline.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
}
