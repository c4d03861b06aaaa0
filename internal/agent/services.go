package agent

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"sigs.k8s.io/knftables"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/client"
	"github.com/eci-dev/eci/internal/datapath"
	"github.com/eci-dev/eci/internal/log"
	"github.com/eci-dev/eci/internal/vservice"
)

// The host's virtual services: the agent watches every tenant's virtual IPs
// (VirtualService) and programs, through internal/vservice, the tables its
// groups name (spec.serviceTable) for their addresses. A group's containers
// start once its address is served (or after serviceWait).

// serviceWait bounds how long a group's start waits for its table's rules.
const serviceWait = 5 * time.Second

// fullResync is how often the whole nftables table is written again from
// what the kernel has (a table changed behind the agent's back is mended).
const fullResync = 5 * time.Minute

type services struct {
	proxy *vservice.Proxy
	// vniOf is a vSwitch's VPC from the agent's cache, false when it is
	// not there yet (a group's attach puts it there before its start).
	vniOf func(vswitch string) (int, bool)

	vips *mirror[apiv1.VirtualService] // by id: "<tenant>/<table>_<ip>"

	mu       sync.Mutex
	served   map[vservice.Client]string // instance -> its table, as last synced
	changed  chan struct{}
	syncedCh chan struct{} // closed and replaced after every successful sync
	stats    ServiceSyncStats
}

// ServiceSyncStats counts the syncs of a host's virtual services that wrote
// something, and their time (for benchmarks and metrics).
type ServiceSyncStats struct {
	Syncs int
	Total time.Duration
}

// ServiceSyncs is what the agent's syncs of virtual services took so far.
func (a *Agent) ServiceSyncs() ServiceSyncStats {
	if a.svcs == nil {
		return ServiceSyncStats{}
	}
	a.svcs.mu.Lock()
	defer a.svcs.mu.Unlock()
	return a.svcs.stats
}

// newServices is the agent's virtual services over the nftables table of
// its network (vservice.TableFor). The host routes every packet of an
// instance (internal/datapath): netfilter sees them all, no bridge hook is
// needed.
func newServices(ctx context.Context, network string, vniOf func(string) (int, bool)) (*services, error) {
	nft, err := knftables.New(knftables.IPv4Family, vservice.TableFor(network))
	if err != nil {
		return nil, fmt.Errorf("virtual services need nftables (nft 1.0.1 or later): %w", err)
	}
	s := &services{
		proxy: vservice.New(nft), vniOf: vniOf, vips: newMirror(validVIP(ctx)),
		served: map[vservice.Client]string{}, changed: make(chan struct{}, 1), syncedCh: make(chan struct{}),
	}
	s.vips.subscribe(s.kick)
	return s, nil
}

// kick asks for a sync.
func (s *services) kick() {
	notify(s.changed)
}

// watch keeps the agent's copy of every tenant's virtual IPs.
func (s *services) watch(ctx context.Context, c *client.Client) {
	c.InformVirtualServices(ctx, "", s.vips.handler(ctx, "virtual services", func(v *apiv1.VirtualService) string { return v.Metadata.ID }))
}

// validVIP is the check of what the agent writes into its rules (the
// server validated it already); a virtual IP it refuses is dropped.
func validVIP(ctx context.Context) func(*apiv1.VirtualService) bool {
	return func(v *apiv1.VirtualService) bool {
		if err := apiv1.ValidateVirtualService(v); err != nil {
			log.G(ctx).Warn("virtual services: ignored", "id", v.Metadata.ID, "err", err)
			return false
		}
		return true
	}
}

// minSyncInterval spaces syncs (kube-proxy's minSyncPeriod): changes that
// come faster are written together, so that one tenant's churn can't keep
// nft busy for the host's others.
const minSyncInterval = 250 * time.Millisecond

// run syncs the table whenever the virtual IPs or the groups change: every
// change that arrives during a sync, or within minSyncInterval of the last,
// is in the next one. A failed sync is tried again after 1 s, doubling up
// to a minute. groups is the server's groups on this host, and whether
// that view is complete (before, a sync would drop the instances not
// replayed yet).
func (s *services) run(ctx context.Context, groups func() ([]*apiv1.ContainerGroup, bool)) {
	full := time.NewTicker(fullResync)
	defer full.Stop()
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	backoff, failing := time.Second, false
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.changed:
			if failing {
				continue // the retry's sync will have it
			}
		case <-retry.C:
		case <-full.C:
			s.proxy.Forget()
		}
		start := time.Now()
		all, complete := groups()
		err := s.sync(ctx, all, complete)
		var flows *vservice.FlowsError
		switch {
		case errors.As(err, &flows):
			log.G(ctx).Warn("virtual services", "err", err)
			failing, backoff = false, time.Second
		case err != nil:
			log.G(ctx).Warn("virtual services: sync", "err", err, "retry", backoff)
			retry.Reset(backoff)
			failing, backoff = true, min(2*backoff, time.Minute)
		default:
			failing, backoff = false, time.Second
		}
		sleep(ctx, minSyncInterval-time.Since(start))
	}
}

// sync writes the tables of groups' addresses; nothing before the first list
// of virtual IPs and of groups were replayed (an empty table would refuse
// every port; a partial list of groups would drop the others' addresses).
func (s *services) sync(ctx context.Context, groups []*apiv1.ContainerGroup, complete bool) error {
	vips, listed := s.vips.snapshot()
	if !listed || !complete {
		return nil
	}
	s.mu.Lock()
	tables, served := s.tables(groups, vips)
	s.mu.Unlock()
	start := time.Now()
	wrote, err := s.proxy.Sync(ctx, tables)
	var flows *vservice.FlowsError
	if err != nil && !errors.As(err, &flows) {
		return err
	}
	s.mu.Lock()
	if wrote {
		s.stats.Syncs++
		s.stats.Total += time.Since(start)
	}
	s.served = served
	close(s.syncedCh)
	s.syncedCh = make(chan struct{})
	s.mu.Unlock()
	return err // nil, or the flows not deleted (tried again next time)
}

// tables are the tables the groups name, with their addresses and virtual
// IPs (s.mu held).
func (s *services) tables(groups []*apiv1.ContainerGroup, vips map[string]*apiv1.VirtualService) ([]vservice.Table, map[vservice.Client]string) {
	byKey := map[string]*vservice.Table{}
	served := map[vservice.Client]string{}
	// One address of a VPC, one table: when two groups of the view hold one
	// (a group gone and its address's next owner, while the view catches
	// up), the newer write wins.
	owner := map[vservice.Client]*apiv1.ContainerGroup{}
	for _, g := range groups {
		c, ok := s.client(g)
		if !ok || !g.Status.Allocated {
			continue
		}
		if o := owner[c]; o == nil || olderVersion(o.Metadata.ResourceVersion, g.Metadata.ResourceVersion) {
			owner[c] = g
		}
	}
	for addr, g := range owner {
		if g.Spec.ServiceTable == "" {
			continue
		}
		key := g.Metadata.Tenant + "/" + g.Spec.ServiceTable
		t := byKey[key]
		if t == nil {
			t = &vservice.Table{Key: key}
			byKey[key] = t
		}
		t.Clients = append(t.Clients, addr)
		served[addr] = key
	}
	for _, v := range vips {
		if t := byKey[v.Metadata.Tenant+"/"+v.Spec.Table]; t != nil {
			t.Services = append(t.Services, v)
		}
	}
	out := make([]vservice.Table, 0, len(byKey))
	for _, k := range slices.Sorted(maps.Keys(byKey)) {
		t := byKey[k]
		slices.SortFunc(t.Clients, vservice.Client.Compare)
		slices.SortFunc(t.Services, func(a, b *apiv1.VirtualService) int { return strings.Compare(a.Metadata.ID, b.Metadata.ID) })
		out = append(out, *t)
	}
	return out, served
}

// await waits until g's address is served with its table (or serviceWait
// passes, or ctx ends), so that its containers start with their Services
// reachable. It tells whether the address is served.
func (s *services) await(ctx context.Context, g *apiv1.ContainerGroup) bool {
	if _, err := netip.ParseAddr(g.Status.IP); g.Spec.ServiceTable == "" || err != nil {
		return true
	}
	want := g.Metadata.Tenant + "/" + g.Spec.ServiceTable
	deadline := time.NewTimer(serviceWait)
	defer deadline.Stop()
	s.kick()
	for {
		s.mu.Lock()
		addr, known := s.client(g) // its vSwitch may be read meanwhile
		ok, next := known && s.served[addr] == want, s.syncedCh
		s.mu.Unlock()
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

// client is g as its host's rules see it: its address and its VPC's mark
// (false when it has no address, or its vSwitch is not known yet).
func (s *services) client(g *apiv1.ContainerGroup) (vservice.Client, bool) {
	addr, err := netip.ParseAddr(g.Status.IP)
	if err != nil {
		return vservice.Client{}, false
	}
	vni, ok := datapath.DefaultVNI, true
	if s.vniOf != nil {
		vni, ok = s.vniOf(g.Status.VSwitchID)
	}
	return vservice.Client{Addr: addr, Mark: datapath.MarkOf(vni)}, ok
}

// removeServicesTable deletes network's table of virtual services, if any.
func removeServicesTable(ctx context.Context, network string) {
	nft, err := knftables.New(knftables.IPv4Family, vservice.TableFor(network))
	if err != nil {
		return // no nftables: no table either
	}
	if _, err := nft.List(ctx, "chains"); err != nil {
		return // none
	}
	tx := nft.NewTransaction()
	tx.Delete(&knftables.Table{})
	if err := nft.Run(ctx, tx); err != nil {
		log.G(ctx).Warn("virtual services are off; the table of an earlier run stays", "table", vservice.TableFor(network), "err", err)
	}
}
