package control

import (
	"context"
	"fmt"
	"strconv"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/errdefs"
	"github.com/eci-dev/eci/internal/store"
)

// releaseOps returns the conditions and operations that give back what g holds
// (its share of the host's usage, its IP), to commit with the change of g
// itself. Nothing when g holds nothing. With quarantine, the IP is not free
// at once: its host may still run the group's sandbox (it did not confirm
// the end: a lost host, a forced delete), and only after quarantine is it
// certain the host stopped it (an agent that can't renew its lease fences
// itself within the lease; one that can sees the change at once). Until
// then the address stays taken (the monitor frees it).
func (s *Service) releaseOps(ctx context.Context, g *apiv1.ContainerGroup, quarantine time.Duration) ([]store.Cond, []store.Op, error) {
	if !g.Status.Allocated {
		return nil, nil, nil
	}
	var cmps []store.Cond
	var ops []store.Op
	if g.Status.IP != "" && g.Status.VSwitchID != "" {
		id := ipID(g.Status.VSwitchID, g.Status.IP)
		rec, err := s.ips.Get(ctx, id)
		switch {
		case err == nil && rec.Group == g.Metadata.ID && fixedKey(g) != "":
			op, err := s.fixedReleaseOp(ctx, g, rec, quarantine)
			if err != nil {
				return nil, nil, err
			}
			ops = append(ops, op)
		case err == nil && rec.Group == g.Metadata.ID && quarantine > 0:
			until := s.now().Add(quarantine)
			rec.ReleaseAfter = &until
			op, err := s.ips.PutOp(rec)
			if err != nil {
				return nil, nil, err
			}
			ops = append(ops, op)
		case err == nil && rec.Group == g.Metadata.ID:
			ops = append(ops, s.ips.DeleteOp(id))
		case err != nil && !errdefs.IsNotFound(err):
			return nil, nil, err
		}
	}
	var until *time.Time
	if quarantine > 0 {
		t := s.now().Add(quarantine)
		until = &t
	}
	eipOps, err := s.releaseEIPOps(ctx, g, until)
	if err != nil {
		return nil, nil, err
	}
	ops = append(ops, eipOps...)
	take := apiv1.Resources{}.Sub(g.Held())
	for _, u := range []struct {
		coll *store.Collection[usageRecord, *usageRecord]
		id   string
	}{{s.usage, g.Status.Host}, {s.tusage, g.Metadata.Tenant}} {
		if u.id == "" {
			continue
		}
		cur, err := u.coll.Get(ctx, u.id)
		if errdefs.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		cmp, op, _, err := usageChange(u.coll, u.id, cur, take)
		if err != nil {
			return nil, nil, err
		}
		cmps, ops = append(cmps, cmp), append(ops, op)
	}
	return cmps, ops, nil
}

// usageChange returns the condition and operation that add delta to the usage
// record id (cur, or nil when it does not exist yet), and the new record.
func usageChange(coll *store.Collection[usageRecord, *usageRecord], id string, cur *usageRecord, delta apiv1.Resources) (store.Cond, store.Op, *usageRecord, error) {
	cmp := coll.Absent(id)
	if cur != nil {
		var err error
		if cmp, err = coll.Unchanged(cur); err != nil {
			return store.Cond{}, store.Op{}, nil, err
		}
	}
	next := usageNext(id, cur, delta)
	op, err := coll.PutOp(next)
	return cmp, op, next, err
}

// usageNext is usage record id (cur, or nil when there is none) with delta
// added.
func usageNext(id string, cur *usageRecord, delta apiv1.Resources) *usageRecord {
	next := &usageRecord{Metadata: apiv1.ObjectMeta{ID: id, Name: id}}
	if cur != nil {
		next.Metadata, next.Used = cur.Metadata, cur.Used
	}
	next.Used.MilliCPU += delta.MilliCPU
	next.Used.MemoryMiB += delta.MemoryMiB
	next.Used.GPU += delta.GPU
	next.Used.Pods += delta.Pods
	return next
}

// transition applies mutate to group id and stores it, retrying on concurrent
// changes; mutate returns false to leave the group as it is. When the group
// reaches a terminal state (its agent's report, HostLost, ScheduleFailed) what
// it holds is released in the same transaction. mutate changes the state
// only through applyEvent (statemachine.go), which sets the timestamps.
func (s *Service) transition(ctx context.Context, id string, mutate func(g *apiv1.ContainerGroup) bool) (*apiv1.ContainerGroup, error) {
	return s.transitionWith(ctx, id, 0, mutate)
}

// transitionWith is transition with the IP of a group that ends kept for
// quarantine (releaseOps).
func (s *Service) transitionWith(ctx context.Context, id string, quarantine time.Duration, mutate func(g *apiv1.ContainerGroup) bool) (*apiv1.ContainerGroup, error) {
	for attempt := 0; attempt < 20; attempt++ {
		g, err := s.groups.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		wasEnded := g.Status.State.Terminal()
		if !mutate(g) {
			return g, nil
		}
		var cmps []store.Cond
		var ops []store.Op
		if !wasEnded && g.Status.State.Terminal() {
			stripSecrets(g)
			ops = append(ops, s.endedOps(g)...)
		}
		released := false
		if g.Status.State.Terminal() && g.Status.Allocated {
			rcmps, rops, err := s.releaseOps(ctx, g, quarantine)
			if err != nil {
				return nil, err
			}
			cmps, ops = rcmps, append(ops, rops...)
			g.Status.Allocated, released = false, true
		}
		unchanged, err := s.groups.Unchanged(g)
		if err != nil {
			return nil, err
		}
		put, err := s.groups.PutOp(g)
		if err != nil {
			return nil, err
		}
		rev, err := s.st.Commit(ctx, append(cmps, unchanged), append(ops, put))
		if errdefs.IsConflict(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		g.Metadata.ResourceVersion = strconv.FormatInt(rev, 10)
		if !wasEnded && g.Status.State.Terminal() {
			s.uncount(g.Metadata.Tenant)
		}
		if released {
			s.wake()
		}
		return g, nil
	}
	return nil, fmt.Errorf("update %s: too many concurrent changes: %w", id, errdefs.ErrConflict)
}
