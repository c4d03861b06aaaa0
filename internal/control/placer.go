package control

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/addrpool"
	"github.com/eci-dev/eci/internal/log"
	"github.com/eci-dev/eci/internal/scheduler"
	"github.com/eci-dev/eci/internal/store"
)

// RunPlacer places Scheduling groups until ctx ends. Run it on the leader only
// (several placers would be correct, because every decision is a conditional
// transaction, but would conflict).
func (s *Service) RunPlacer(ctx context.Context) error {
	ctx = log.With(ctx, "daemon", "placer")
	w := &waitingSet{groups: map[string]*apiv1.ContainerGroup{}}
	s.waiting = w // only the placer's passes read it
	go s.watchWaiting(ctx, w)
	ticker := time.NewTicker(s.opts.RetryInterval)
	defer ticker.Stop()
	for {
		// A pass places the waiting groups its list and watch hold; only
		// while they are not synced does it read every group (a full read
		// every RetryInterval cost a list of all groups: 4 s at 10,000).
		var err error
		if waiting, ok := w.list(); ok {
			err = s.place(ctx, waiting)
		} else {
			err = s.placeAll(ctx)
		}
		if err != nil && ctx.Err() == nil {
			log.G(ctx).Warn("placement pass", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		case <-s.kick:
		}
	}
}

// waitingSet is the Scheduling groups as the placer's list and watch last
// saw them: a pass, woken by a change or every RetryInterval, places these
// without reading every group.
type waitingSet struct {
	mu     sync.Mutex
	synced bool // listed, and watched since
	groups map[string]*apiv1.ContainerGroup
}

func waits(g *apiv1.ContainerGroup) bool {
	return g.Status.State == apiv1.StateScheduling && g.Metadata.DeletionRequestedAt == nil
}

func (w *waitingSet) reset(groups []*apiv1.ContainerGroup) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.groups, w.synced = map[string]*apiv1.ContainerGroup{}, true
	for _, g := range groups {
		if waits(g) {
			w.groups[g.Metadata.ID] = g
		}
	}
}

func (w *waitingSet) unsync() {
	w.mu.Lock()
	w.synced = false
	w.mu.Unlock()
}

func (w *waitingSet) update(g *apiv1.ContainerGroup, gone bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if gone || !waits(g) {
		delete(w.groups, g.Metadata.ID)
		return
	}
	w.groups[g.Metadata.ID] = g
}

// list is the waiting groups; ok is false until the set is synced.
func (w *waitingSet) list() (groups []*apiv1.ContainerGroup, ok bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.synced {
		return nil, false
	}
	for _, g := range w.groups {
		groups = append(groups, g)
	}
	return groups, true
}

// watchWaiting keeps w as an informer does: a list, then a watch from the
// list's revision, again after the watch ends; it wakes the placer when a
// group waits.
func (s *Service) watchWaiting(ctx context.Context, w *waitingSet) {
	for ctx.Err() == nil {
		groups, rev, _, err := s.groups.List(ctx, storeOpts(0, 0, ""))
		if err == nil {
			w.reset(groups)
			s.wake()
			for ev := range s.groups.Watch(ctx, rev) {
				if ev.Err != nil {
					log.G(ctx).Warn("placer's watch of groups ended; listing again", "err", ev.Err)
					break
				}
				if ev.Object == nil {
					continue
				}
				w.update(ev.Object, ev.Type == apiv1.Deleted)
				if ev.Object.Status.State == apiv1.StateScheduling {
					s.wake()
				}
			}
		} else if ctx.Err() == nil {
			log.G(ctx).Warn("placer's list of groups", "err", err)
		}
		w.unsync()
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// placementState is what a pass places against, kept up to date with its own
// commits; a conflicting commit (someone else changed a host's usage or took
// an IP) reloads it.
type placementState struct {
	hosts   map[string]*apiv1.Host
	usage   map[string]*usageRecord
	tusage  map[string]*usageRecord
	tenants map[string]*apiv1.Tenant
	vsws    map[string]*apiv1.VSwitch
	alloc   map[string]*addrpool.Allocator
	ipv6    map[string]*addrpool.IPv6Pool         // the vSwitches with an ipv6Cidr (ipv6.go)
	fixed   map[string]*ipRecord                  // by fixed-IP key (fixedip.go)
	spot    map[string][]*apiv1.ContainerGroup    // live spot groups by host, read when needed (spot.go)
	warm    map[string]map[string][]*ipRecord     // ready sandboxes of warm pools by host and vSwitch (warmpool.go)
	images  map[string]map[string]scheduler.Image // the images each host holds (imagecachematch.go)
	data    map[string]map[string]int64           // the data caches each host holds (datacachehosts.go)
	caches  []*apiv1.ImageCache
}

// loadVSwitches reads the vSwitches into an empty state (no addresses marked).
func (s *Service) loadVSwitches(ctx context.Context) (*placementState, error) {
	st := &placementState{
		hosts: map[string]*apiv1.Host{}, usage: map[string]*usageRecord{}, tusage: map[string]*usageRecord{},
		tenants: map[string]*apiv1.Tenant{}, vsws: map[string]*apiv1.VSwitch{}, alloc: map[string]*addrpool.Allocator{},
		ipv6: map[string]*addrpool.IPv6Pool{}, fixed: map[string]*ipRecord{},
	}
	vsws, _, _, err := s.vsws.List(ctx, storeOpts(0, 0, ""))
	if err != nil {
		return nil, err
	}
	for _, v := range vsws {
		pool, err := addrpool.NewPool(v.Spec.CIDR, v.Spec.Gateway)
		if err != nil {
			return nil, fmt.Errorf("vSwitch %s: %w", v.Metadata.ID, err)
		}
		st.vsws[v.Metadata.ID], st.alloc[v.Metadata.ID] = v, addrpool.NewAllocator(pool)
		if st.ipv6[v.Metadata.ID], err = ipv6PoolOf(v, pool); err != nil {
			return nil, fmt.Errorf("vSwitch %s: %w", v.Metadata.ID, err)
		}
	}
	return st, nil
}

func (s *Service) loadPlacementState(ctx context.Context) (*placementState, error) {
	st, err := s.loadVSwitches(ctx)
	if err != nil {
		return nil, err
	}
	hosts, _, _, err := s.hosts.List(ctx, storeOpts(0, 0, ""))
	if err != nil {
		return nil, err
	}
	for _, h := range hosts {
		st.hosts[h.Metadata.Name] = h
	}
	usage, _, _, err := s.usage.List(ctx, storeOpts(0, 0, ""))
	if err != nil {
		return nil, err
	}
	for _, u := range usage {
		st.usage[u.Metadata.ID] = u
	}
	tusage, _, _, err := s.tusage.List(ctx, storeOpts(0, 0, ""))
	if err != nil {
		return nil, err
	}
	for _, u := range tusage {
		st.tusage[u.Metadata.ID] = u
	}
	if err := s.loadImages(ctx, st); err != nil {
		return nil, err
	}
	tenants, _, _, err := s.tenants.List(ctx, storeOpts(0, 0, ""))
	if err != nil {
		return nil, err
	}
	for _, t := range tenants {
		st.tenants[t.Metadata.ID] = t
	}
	ips, _, _, err := s.ips.List(ctx, storeOpts(0, 0, ""))
	if err != nil {
		return nil, err
	}
	for _, r := range ips {
		st.markFixed(r)
		if a, ok := st.alloc[r.VSwitch]; ok {
			if addr, err := netip.ParseAddr(r.IP); err == nil {
				owner := r.Group
				switch {
				case r.ReleaseAfter != nil:
					owner = quarantined + r.ReleaseAfter.Format(time.RFC3339)
				case r.Warm != "":
					owner = warmOwner + r.Warm
				}
				a.Mark(addr, owner)
				st.markWarm(r)
			}
		}
	}
	return st, nil
}

func (st *placementState) snapshot() scheduler.Snapshot {
	var snap scheduler.Snapshot
	for _, h := range st.hosts {
		host := scheduler.Host{
			Name: h.Metadata.Name, Zone: h.Spec.Zone,
			Allocatable:     resources(h.Spec.Allocatable),
			Schedulable:     h.Status.Ready && !h.Spec.Unschedulable && !h.Spec.Draining,
			RuntimeHandlers: h.Spec.RuntimeHandlers,
			Warm:            st.warmCounts(h.Metadata.Name),
			Images:          st.images[h.Metadata.Name],
			Data:            st.data[h.Metadata.Name],
		}
		if u, ok := st.usage[h.Metadata.Name]; ok {
			host.Allocated = resources(u.Used)
		}
		snap.Hosts = append(snap.Hosts, host)
	}
	sort.Slice(snap.Hosts, func(i, j int) bool { return snap.Hosts[i].Name < snap.Hosts[j].Name })
	for id, v := range st.vsws {
		snap.VSwitches = append(snap.VSwitches, scheduler.VSwitch{ID: id, Zone: v.Spec.Zone, FreeIPs: st.alloc[id].Free()})
	}
	return snap
}

func resources(r apiv1.Resources) scheduler.Resources {
	return scheduler.Resources{MilliCPU: r.MilliCPU, MemoryMiB: r.MemoryMiB, GPU: r.GPU, Pods: r.Pods}
}

// placeAll tries every Scheduling group, oldest first.
func (s *Service) placeAll(ctx context.Context) error {
	groups, _, _, err := s.groups.List(ctx, storeOpts(0, 0, ""))
	if err != nil {
		return err
	}
	return s.place(ctx, groups)
}

// place tries the Scheduling groups among groups, oldest first.
func (s *Service) place(ctx context.Context, groups []*apiv1.ContainerGroup) error {
	var waiting []*apiv1.ContainerGroup
	for _, g := range groups {
		if waits(g) {
			waiting = append(waiting, g)
		}
	}
	if len(waiting) == 0 {
		return nil
	}
	sort.Slice(waiting, func(i, j int) bool { return waiting[i].Metadata.CreatedAt.Before(waiting[j].Metadata.CreatedAt) })
	st, err := s.loadPlacementState(ctx)
	if err != nil {
		return err
	}
	b := newPlaceBatch()
	for _, g := range waiting {
		if ctx.Err() != nil {
			return nil
		}
		if st, err = s.placeWithRetry(ctx, st, g, b); err != nil {
			return err
		}
		if b.full() {
			if st, err = s.flushBatch(ctx, st, b); err != nil {
				return err
			}
		}
	}
	_, err = s.flushBatch(ctx, st, b)
	return err
}

func seedOf(id string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(id))
	return h.Sum64()
}

// placeOne places g, into b when not nil (placebatch.go), or records why it
// can't be placed.
func (s *Service) placeOne(ctx context.Context, st *placementState, g *apiv1.ContainerGroup, b *placeBatch) error {
	candidates, err := sizeCandidates(&g.Spec)
	if err != nil {
		return s.scheduleFailed(ctx, g, "InvalidSize", err.Error())
	}
	usable := st.usable(g.Metadata.Tenant, g.Spec.VSwitchIDs)
	if len(usable) == 0 {
		return s.unschedulable(ctx, g, fmt.Sprintf("no capacity: no vSwitch of tenant %s or shared among %v", g.Metadata.Tenant, g.Spec.VSwitchIDs))
	}
	if usable, err = s.dualStack(ctx, st, g, usable); usable == nil {
		return err
	}
	req := scheduler.Request{
		Sizes: candidates, GPU: g.Spec.GPU, RuntimeHandler: g.Spec.RuntimeHandler, VSwitchIDs: usable,
		Ordered: g.Spec.ScheduleStrategy == apiv1.VSwitchOrdered, Seed: seedOf(g.Metadata.ID),
		Warm: apiv1.Warmable(&g.Spec), Images: groupImages(&g.Spec), Tenant: g.Metadata.Tenant, DataCaches: groupDataCaches(&g.Spec),
	}
	var wantIP netip.Addr
	vsw, fixedIP, kept, why := st.fixedAddress(g, usable, s.now())
	if why != "" {
		return b.settled(func() error { return s.unschedulable(ctx, g, why) })
	}
	if kept != nil {
		wantIP, req.VSwitchIDs, req.Ordered = fixedIP, []string{vsw}, true
	} else if g.Spec.PrivateIPAddress != "" {
		wantIP = netip.MustParseAddr(g.Spec.PrivateIPAddress)
		vsw, refused, err := s.privateAddress(ctx, st, g, wantIP, usable, b)
		if refused || err != nil {
			return err
		}
		req.VSwitchIDs, req.Ordered = []string{vsw}, true
	}
	d, err := scheduler.Place(st.snapshot(), req, s.opts.Policy)
	var nc *scheduler.NoCapacityError
	if errors.As(err, &nc) {
		return b.settled(func() error { return s.unschedulable(ctx, g, nc.Error()+s.preemptFor(ctx, st, g, req)) })
	}
	if err != nil {
		return err
	}
	if why := st.overQuota(g, d.Size); why != "" {
		return b.settled(func() error { return s.unschedulable(ctx, g, why) })
	}
	ip := wantIP
	var warm *ipRecord
	if req.Warm {
		if warm = st.takeWarm(d.Host, d.VSwitch); warm != nil {
			ip, _ = netip.ParseAddr(warm.IP)
		}
	}
	if !ip.IsValid() {
		var ok bool
		if ip, ok = st.alloc[d.VSwitch].Next(); !ok {
			return b.settled(func() error {
				return s.unschedulable(ctx, g, fmt.Sprintf("no capacity: vSwitch %s has no free IP", d.VSwitch))
			})
		}
	}
	eip, eipCond, why, err := s.bindEIP(ctx, g)
	if err != nil {
		return err
	}
	if why != "" {
		return b.settled(func() error { return s.unschedulable(ctx, g, "no EIP: "+why) })
	}
	return s.commitPlacement(ctx, st, b, g, d, placedIP{ip, kept, st.staleFixed(g, kept, s.now()), warm}, eip, eipCond)
}

// privateAddress finds the vSwitch of g's privateIpAddress ip among
// usable, or refuses g (refused: it waits or failed) when ip is not free.
func (s *Service) privateAddress(ctx context.Context, st *placementState, g *apiv1.ContainerGroup, ip netip.Addr, usable []string, b *placeBatch) (vsw string, refused bool, err error) {
	vsw, owner, err := st.findAddress(ip, usable)
	switch {
	case err != nil:
		return "", true, s.scheduleFailed(ctx, g, "InvalidPrivateIP", err.Error())
	case strings.HasPrefix(owner, quarantined):
		until := strings.TrimPrefix(owner, quarantined)
		return "", true, b.settled(func() error {
			return s.unschedulable(ctx, g, fmt.Sprintf("privateIpAddress %s is being released until %s (the host of the group that had it may still use it)", ip, until))
		})
	case owner != "" && owner != g.Metadata.ID:
		return "", true, b.settled(func() error {
			return s.scheduleFailed(ctx, g, "PrivateIPInUse", fmt.Sprintf("privateIpAddress %s is in use by %s", ip, s.ownerName(ctx, owner, g.Metadata.Tenant)))
		})
	}
	return vsw, false, nil
}

// placedIP is a group's address at placement, the kept record of its
// fixed IP that it takes again (nil: a new record), and one its key kept
// elsewhere that goes (nil: none).
type placedIP struct {
	addr        netip.Addr
	kept, stale *ipRecord
	// warm is the record of a host's warm pool the group takes (its
	// sandbox is ready there: warmpool.go).
	warm *ipRecord
}

// commitPlacement writes the group (Pending, on its host, with its IP), the
// host's usage and the IP key in one transaction that fails if any of them
// changed since the state was read: b's (placebatch.go) when not nil, else
// its own. The state has the placement at once.
func (s *Service) commitPlacement(ctx context.Context, st *placementState, b *placeBatch, g *apiv1.ContainerGroup, d scheduler.Decision, pip placedIP, eip *apiv1.EIP, eipCond store.Cond) error {
	if pip.stale != nil || pip.kept != nil || eip != nil {
		if !b.empty() {
			return errBatchFirst
		}
		b = nil // committed alone
	}
	ip := pip.addr
	add := apiv1.Resources{MilliCPU: d.Size.MilliCPU, MemoryMiB: d.Size.MemoryMiB, GPU: g.Spec.GPU, Pods: 1}
	hostCmps, hostPut, hostNext, err := usageChangeIn(b, s.usage, d.Host, st.usage[d.Host], add)
	if err != nil {
		return err
	}
	tenantCmps, tenantPut, tenantNext, err := usageChangeIn(b, s.tusage, g.Metadata.Tenant, st.tusage[g.Metadata.Tenant], add)
	if err != nil {
		return err
	}
	placed, err := s.placedGroup(st, g, d, ip)
	if err != nil {
		return err
	}
	rec := &ipRecord{Metadata: apiv1.ObjectMeta{ID: ipID(d.VSwitch, ip.String())}, VSwitch: d.VSwitch, IP: ip.String(), Group: g.Metadata.ID}
	ipCond, putIP, err := s.ipWrite(g, rec, cmp.Or(pip.kept, pip.warm)) // the record it takes over, if any
	if err != nil {
		return err
	}
	conds, ops, err := s.extraWrites(placed, pip, eip, eipCond)
	if err != nil {
		return err
	}
	conds = append(append(append(conds, ipCond), hostCmps...), tenantCmps...)
	ops = append(ops, hostPut, tenantPut, putIP)
	groupCmp, err := s.groups.Unchanged(g)
	if err != nil {
		return err
	}
	putGroup, err := s.groups.PutOp(placed)
	if err != nil {
		return err
	}
	conds, ops = append(conds, groupCmp), append(ops, putGroup)
	msg := fmt.Sprintf("placed on %s (%s, vSwitch %s, IP %s) at %s", d.Host, d.Zone, d.VSwitch, ipText(&placed.Status), d.Size)
	first := g.Status.ScheduledAt == nil
	if first {
		// Placed for the first time: its events are new, and join the
		// placement's transaction.
		evs, err := s.firstPlacementEvents(placed, msg)
		if err != nil {
			return err
		}
		ops = append(ops, evs...)
	}
	done := func(rev int64) {
		st.stampUsage(d.Host, g.Metadata.Tenant, rev)
		if s.waiting != nil {
			// Placed: the next pass need not wait for the watch to know it.
			s.waiting.update(placed, true)
		}
		if !first { // a series that may exist: counted
			s.recordEvent(ctx, "ContainerGroup", g.Metadata.ID, g.Metadata.Tenant, apiv1.EventNormal, "Scheduled", msg, "server")
		}
		s.cacheHit(ctx, placed, first)
	}
	var rev int64
	if b == nil {
		if rev, err = s.st.Commit(ctx, conds, ops); err != nil {
			return err
		}
	} else if err := b.add(g, conds, ops, []string{s.usage.Key(d.Host), s.tusage.Key(g.Metadata.Tenant)}, done); err != nil {
		return err
	}
	st.usage[d.Host], st.tusage[g.Metadata.Tenant] = hostNext, tenantNext
	st.alloc[d.VSwitch].Mark(ip, g.Metadata.ID)
	if b == nil {
		done(rev)
	}
	return nil
}

// extraWrites are a placement's writes beyond its group, address and usage:
// the stale record of its fixed IP removed, its EIP bound (placed gets it).
func (s *Service) extraWrites(placed *apiv1.ContainerGroup, pip placedIP, eip *apiv1.EIP, eipCond store.Cond) ([]store.Cond, []store.Op, error) {
	var conds []store.Cond
	var ops []store.Op
	if pip.stale != nil {
		cond, err := s.ips.Unchanged(pip.stale)
		if err != nil {
			return nil, nil, err
		}
		conds, ops = append(conds, cond), append(ops, s.ips.DeleteOp(pip.stale.Metadata.ID))
	}
	if eip != nil {
		placed.Status.EIPAddress, placed.Status.EIPID = eip.Status.Address, eip.Metadata.ID
		put, err := s.eips.PutOp(eip)
		if err != nil {
			return nil, nil, err
		}
		conds, ops = append(conds, eipCond), append(ops, put)
	}
	return conds, ops, nil
}

// placedGroup is g placed by d at ip.
func (s *Service) placedGroup(st *placementState, g *apiv1.ContainerGroup, d scheduler.Decision, ip netip.Addr) (*apiv1.ContainerGroup, error) {
	placed := *g
	if err := applyEvent(&placed.Status, evPlaced, "Scheduled", fmt.Sprintf("placed on %s in %s", d.Host, d.Zone), s.now()); err != nil {
		return nil, fmt.Errorf("place %s: %w", g.Metadata.ID, err)
	}
	placed.Status.Host, placed.Status.Zone, placed.Status.VSwitchID, placed.Status.IP = d.Host, d.Zone, d.VSwitch, ip.String()
	placed.Status.IPv6Address = st.ipv6Of(g, d.VSwitch, ip)
	placed.Status.InstanceSpec, placed.Status.MilliCPU, placed.Status.MemoryMiB = d.Size.String(), d.Size.MilliCPU, d.Size.MemoryMiB
	placed.Status.SchedulingAttempts++
	placed.Status.MatchedImageCache = ""
	if c := st.matchCache(g, d.Host); c != nil {
		placed.Status.MatchedImageCache = c.Metadata.ID
	}
	placed.Status.GPUModel = ""
	if h := st.hosts[d.Host]; h != nil && g.Spec.GPU > 0 {
		placed.Status.GPUModel = h.Spec.GPUModel
	}
	placed.Status.Allocated = true
	return &placed, nil
}

// findAddress finds the allowed vSwitch that holds addr and who uses addr.
func (st *placementState) findAddress(addr netip.Addr, ids []string) (string, string, error) {
	for _, id := range ids {
		a, ok := st.alloc[id]
		if !ok || !a.Pool().Prefix.Contains(addr) {
			continue
		}
		if err := a.Pool().Check(addr); err != nil {
			return "", "", err
		}
		owner, _ := a.Owner(addr)
		return id, owner, nil
	}
	return "", "", fmt.Errorf("privateIpAddress %s is not inside any allowed vSwitch (%v)", addr, ids)
}

// quarantined starts the owner of an address being released (releaseOps).
const quarantined = "released-after:"

// usable are the vSwitches a group of tenant may get an address from: those
// it names (in its order), or every one, that are the tenant's or shared.
func (st *placementState) usable(tenant string, named []string) []string {
	var out []string
	if len(named) > 0 {
		for _, id := range named {
			if v, ok := st.vsws[id]; ok && usableBy(v, tenant) {
				out = append(out, id)
			}
		}
		return out
	}
	for id, v := range st.vsws {
		if usableBy(v, tenant) {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}
