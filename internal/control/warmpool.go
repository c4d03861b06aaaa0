package control

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/addrpool"
	"github.com/eci-dev/eci/internal/auth"
	"github.com/eci-dev/eci/internal/errdefs"
	"github.com/eci-dev/eci/internal/store"
)

// A host's warm pool (api/v1 warmpool.go, docs/fast-start.md): the
// addresses of its ready sandboxes are ipRecords with Warm set to the
// host, so that no other group gets them and a vSwitch counts them as
// taken. A placement on the host gives one to the group (the record
// becomes the group's in the placement's transaction); an address the
// pool no longer needs is quarantined like a lost group's (its sandbox
// may still hold it until the agent removes it).

// warmOwner starts the allocator's owner of a reserved address.
const warmOwner = "warm-pool:"

// SyncWarmPool keeps host name's reserved addresses at its pool's size on
// each of its vSwitches, records which have a ready sandbox, and returns
// them (the host's own token, or an admin).
func (s *Service) SyncWarmPool(ctx context.Context, p auth.Principal, name string, req apiv1.WarmPoolSync) (*apiv1.WarmPool, error) {
	if err := s.canSeeHost(p, name); err != nil {
		return nil, err
	}
	if n := apiv1.MaxWarmPoolSize * apiv1.MaxWarmPoolVSwitches; len(req.Ready) > n {
		return nil, fmt.Errorf("%w: %w", errdefs.ErrInvalidArgument, apiv1.FieldErrors{{Field: "ready", Message: fmt.Sprintf("%d addresses is too many; allowed: at most %d", len(req.Ready), n)}})
	}
	h, err := s.hosts.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	size := warmSize(h)
	vsws, err := s.warmVSwitches(ctx, h)
	if err != nil {
		return nil, err
	}
	var mine []*ipRecord
	for attempt := 0; ; attempt++ {
		var conds []store.Cond
		var ops []store.Op
		mine, conds, ops, err = s.warmChanges(ctx, name, size, vsws, req.Ready)
		if err != nil || len(ops) == 0 {
			break
		}
		if _, err = s.st.Commit(ctx, conds, ops); err == nil || !errdefs.IsConflict(err) || attempt == 4 {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("warm pool of host %s: %w", name, err)
	}
	out := &apiv1.WarmPool{Size: size, Reserved: []apiv1.WarmAddress{}}
	for _, r := range mine {
		out.Reserved = append(out.Reserved, apiv1.WarmAddress{VSwitchID: r.VSwitch, IP: r.IP})
	}
	if err := s.recordWarmStatus(ctx, name, size, out.Reserved, req.Ready); err != nil {
		return nil, err
	}
	return out, nil
}

// warmSize is host h's pool size on each vSwitch.
func warmSize(h *apiv1.Host) int {
	switch {
	case h.Spec.WarmPoolTarget != nil:
		return *h.Spec.WarmPoolTarget
	case h.Spec.WarmPool != nil:
		return h.Spec.WarmPool.Size
	}
	return 0
}

// warmVSwitches are the vSwitches host h keeps its pool on: the shared
// ones (no tenant's) of its zone without IPv6, those it names among them
// when it names some. A host's token never reserves a tenant's addresses.
func (s *Service) warmVSwitches(ctx context.Context, h *apiv1.Host) ([]*apiv1.VSwitch, error) {
	all, _, _, err := s.vsws.List(ctx, storeOpts(0, 0, ""))
	if err != nil {
		return nil, err
	}
	var named []string
	if h.Spec.WarmPool != nil {
		named = h.Spec.WarmPool.VSwitchIDs
	}
	var out []*apiv1.VSwitch
	for _, v := range all {
		if v.Spec.Zone != h.Spec.Zone || v.Spec.IPv6CIDR != "" || v.Metadata.Tenant != "" {
			continue
		}
		if len(named) == 0 || slices.Contains(named, v.Metadata.ID) {
			out = append(out, v)
		}
	}
	return out, nil
}

// warmChanges reads the addresses and returns host's reserved ones as they
// will be, and the writes that make them so: new ones reserved up to size
// on each vSwitch, the extra ones (those without a ready sandbox first)
// and those of vSwitches the pool left quarantined.
func (s *Service) warmChanges(ctx context.Context, host string, size int, vsws []*apiv1.VSwitch, ready []apiv1.WarmAddress) ([]*ipRecord, []store.Cond, []store.Op, error) {
	ips, _, _, err := s.ips.List(ctx, storeOpts(0, 0, ""))
	if err != nil {
		return nil, nil, nil, err
	}
	isReady := map[string]bool{}
	for _, a := range ready {
		isReady[ipID(a.VSwitchID, a.IP)] = true
	}
	byVSwitch := map[string][]*ipRecord{}
	for _, r := range ips {
		if r.Warm == host && r.ReleaseAfter == nil {
			byVSwitch[r.VSwitch] = append(byVSwitch[r.VSwitch], r)
		}
	}
	keep := map[string]int{}
	for _, v := range vsws {
		keep[v.Metadata.ID] = size
	}
	var mine []*ipRecord
	var conds []store.Cond
	var ops []store.Op
	release := func(r *ipRecord) error {
		cond, err := s.ips.Unchanged(r)
		if err != nil {
			return err
		}
		until := s.now().Add(s.warmQuarantine())
		cp := *r
		cp.ReleaseAfter = &until
		op, err := s.ips.PutOp(&cp)
		conds, ops = append(conds, cond), append(ops, op)
		return err
	}
	for vsw, recs := range byVSwitch {
		// Ready ones first, then by address: those kept.
		sort.Slice(recs, func(i, j int) bool {
			ri, rj := isReady[recs[i].Metadata.ID], isReady[recs[j].Metadata.ID]
			if ri != rj {
				return ri
			}
			return recs[i].IP < recs[j].IP
		})
		for i, r := range recs {
			if i < keep[vsw] {
				mine = append(mine, r)
				continue
			}
			if err := release(r); err != nil {
				return nil, nil, nil, err
			}
		}
	}
	for _, v := range vsws {
		need := size - len(byVSwitch[v.Metadata.ID])
		if need <= 0 {
			continue
		}
		added, c, o, err := s.reserve(v, host, need, ips)
		if err != nil {
			return nil, nil, nil, err
		}
		mine, conds, ops = append(mine, added...), append(conds, c...), append(ops, o...)
	}
	sort.Slice(mine, func(i, j int) bool { return mine[i].Metadata.ID < mine[j].Metadata.ID })
	return mine, conds, ops, nil
}

// warmQuarantine is how long an address a pool let go stays taken: a host
// lease (a fenced agent has removed its sandboxes), and at least as long
// as an agent takes to remove a sandbox whose address is no longer
// reserved (its grace, a sync, the removal: agent/warmpool.go).
func (s *Service) warmQuarantine() time.Duration { return max(s.opts.HostLeaseTTL, 45*time.Second) }

// warmShare is the part of a vSwitch's addresses the pools may hold: they
// stop reserving when fewer than a quarter would be left free.
const warmShare = 4

// reserve takes up to n free addresses of vSwitch v for host's pool (fewer
// when v has fewer free than a quarter of its addresses besides).
func (s *Service) reserve(v *apiv1.VSwitch, host string, n int, ips []*ipRecord) ([]*ipRecord, []store.Cond, []store.Op, error) {
	pool, err := addrpool.NewPool(v.Spec.CIDR, v.Spec.Gateway)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("vSwitch %s: %w", v.Metadata.ID, err)
	}
	alloc := addrpool.NewAllocator(pool)
	for _, r := range ips {
		if r.VSwitch != v.Metadata.ID {
			continue
		}
		if addr, err := netip.ParseAddr(r.IP); err == nil {
			alloc.Mark(addr, r.Group)
		}
	}
	var out []*ipRecord
	var conds []store.Cond
	var ops []store.Op
	for range n {
		if alloc.Free() <= pool.Size()/warmShare {
			break
		}
		ip, ok := alloc.Next()
		if !ok {
			break
		}
		alloc.Mark(ip, warmOwner+host)
		rec := &ipRecord{Metadata: apiv1.ObjectMeta{ID: ipID(v.Metadata.ID, ip.String()), CreatedAt: s.now()}, VSwitch: v.Metadata.ID, IP: ip.String(), Warm: host}
		op, err := s.ips.PutOp(rec)
		if err != nil {
			return nil, nil, nil, err
		}
		out, conds, ops = append(out, rec), append(conds, s.ips.Absent(rec.Metadata.ID)), append(ops, op)
	}
	return out, conds, ops, nil
}

// recordWarmStatus writes the host's pool status when it changed.
func (s *Service) recordWarmStatus(ctx context.Context, name string, size int, reserved, ready []apiv1.WarmAddress) error {
	st := &apiv1.WarmPoolStatus{Size: size, Reserved: len(reserved)}
	for _, a := range ready {
		if slices.Contains(reserved, a) {
			st.Ready = append(st.Ready, a)
		}
	}
	h, err := s.hosts.Get(ctx, name)
	if err != nil {
		return err
	}
	if cur := h.Status.WarmPool; cur != nil && cur.Size == st.Size && cur.Reserved == st.Reserved && slices.Equal(cur.Ready, st.Ready) {
		return nil
	}
	_, err = s.hosts.Mutate(ctx, name, func(h *apiv1.Host) error {
		h.Status.WarmPool = st
		return nil
	})
	return err
}

// warmReady are the ready addresses of each host's pool, by host and
// vSwitch, from the hosts' status and the records (placer.go).
func (st *placementState) markWarm(r *ipRecord) {
	h := st.hosts[r.Warm]
	if h == nil || h.Status.WarmPool == nil || r.ReleaseAfter != nil {
		return
	}
	if !slices.Contains(h.Status.WarmPool.Ready, apiv1.WarmAddress{VSwitchID: r.VSwitch, IP: r.IP}) {
		return
	}
	if st.warm == nil {
		st.warm = map[string]map[string][]*ipRecord{}
	}
	if st.warm[r.Warm] == nil {
		st.warm[r.Warm] = map[string][]*ipRecord{}
	}
	st.warm[r.Warm][r.VSwitch] = append(st.warm[r.Warm][r.VSwitch], r)
}

// takeWarm gives a group placed on host, vSwitch vsw, one of the host's
// ready sandboxes there (nil: none).
func (st *placementState) takeWarm(host, vsw string) *ipRecord {
	recs := st.warm[host][vsw]
	if len(recs) == 0 {
		return nil
	}
	r := recs[0]
	st.warm[host][vsw] = recs[1:]
	return r
}

// warmCounts are host's ready sandboxes by vSwitch (the scheduler's view).
func (st *placementState) warmCounts(host string) map[string]int {
	if len(st.warm[host]) == 0 {
		return nil
	}
	out := map[string]int{}
	for vsw, recs := range st.warm[host] {
		out[vsw] = len(recs)
	}
	return out
}

// isWarmOwner tells whether an allocator's owner is a warm pool.
func isWarmOwner(owner string) bool { return strings.HasPrefix(owner, warmOwner) }

// releaseWarmOf quarantines the pool addresses of hosts that are lost (the
// monitor's): a host that never comes back must not hold them, and its
// agent, fenced, removed their sandboxes within the lease.
func (s *Service) releaseWarmOf(ctx context.Context, lost map[string]time.Time) error {
	if len(lost) == 0 {
		return nil
	}
	ips, _, _, err := s.ips.List(ctx, storeOpts(0, 0, ""))
	if err != nil {
		return fmt.Errorf("the lost hosts' warm pools: %w", err)
	}
	for _, r := range ips {
		if _, gone := lost[r.Warm]; !gone || r.ReleaseAfter != nil {
			continue
		}
		until := s.now().Add(s.warmQuarantine())
		r.ReleaseAfter = &until
		if err := s.ips.Update(ctx, r, nil); err != nil && !errdefs.IsConflict(err) && !errdefs.IsNotFound(err) {
			return fmt.Errorf("release the warm pool address %s of lost host %s: %w", r.IP, r.Warm, err)
		}
	}
	return nil
}
