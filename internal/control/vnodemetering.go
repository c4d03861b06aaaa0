package control

import (
	"context"
	"fmt"
	"strconv"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/auth"
	"github.com/eci-dev/eci/internal/errdefs"
	"github.com/eci-dev/eci/internal/store"
)

// A virtual node is billed as one 2 vCPU / 8 GiB instance while it is Ready
// (docs/spec.md section 10; docs/billing.md): while its heartbeats come,
// at most VNodeGrace apart. Its record holds the interval it is in; a
// heartbeat after a longer silence closes that interval (billed to the
// last heartbeat) into a usage record, in the same transaction, and opens
// a new one. Readers take the records first and the usage records after,
// and an interval found in both counts once.

// VNodeGrace is the longest silence between heartbeats of one Ready
// interval (the vnode sends one every 30 s); MaxVirtualNodes bounds the
// nodes of one tenant that are Ready at once.
const (
	VNodeGrace      = 90 * time.Second
	MaxVirtualNodes = 100
)

// vnodeRecord is a virtual node's current interval.
type vnodeRecord struct {
	// Metadata.ID is tenant/name; Name the node's name.
	Metadata apiv1.ObjectMeta  `json:"metadata"`
	Tags     map[string]string `json:"tags,omitempty"`
	Start    time.Time         `json:"start"`
	LastSeen time.Time         `json:"lastSeen"`
}

func (v *vnodeRecord) Meta() *apiv1.ObjectMeta { return &v.Metadata }

// usage is the interval as a usage record, billed to its last heartbeat.
func (v *vnodeRecord) usage() apiv1.UsageRecord {
	name := "vnode/" + v.Metadata.Name
	return apiv1.UsageRecord{
		Metadata: apiv1.ObjectMeta{ID: name + "@" + strconv.FormatInt(v.Start.Unix(), 10), Tenant: v.Metadata.Tenant, CreatedAt: v.LastSeen},
		Name:     name, Tags: v.Tags, VirtualNode: v.Metadata.Name, InstanceSpec: "vnode",
		MilliCPU: apiv1.VirtualNodeMilliCPU, MemoryMiB: apiv1.VirtualNodeMemoryMiB,
		Start: v.Start, RunningAt: &v.Start, End: v.LastSeen,
	}
}

// VirtualNodeHeartbeat records that the caller's virtual node name is Ready.
func (s *Service) VirtualNodeHeartbeat(ctx context.Context, p auth.Principal, name string, hb apiv1.VirtualNodeHeartbeat) error {
	if err := p.Require("report a virtual node", apiv1.TokenTenant); err != nil {
		return err
	}
	if err := apiv1.ValidateVirtualNodeHeartbeat(name, &hb); err != nil {
		return fmt.Errorf("%w: %w", errdefs.ErrInvalidArgument, err)
	}
	id := p.Tenant + "/" + name
	for attempt := 0; attempt < 5; attempt++ {
		now := s.now()
		cur, err := s.vnodes.Get(ctx, id)
		if errdefs.IsNotFound(err) {
			if n, cerr := s.vnodes.Count(ctx, p.Tenant+"/"); cerr != nil || n >= MaxVirtualNodes {
				if cerr != nil {
					return cerr
				}
				return fmt.Errorf("tenant %s has %d virtual nodes Ready, the most it may (%d): %w", p.Tenant, n, MaxVirtualNodes, errdefs.ErrPermissionDenied)
			}
			rec := &vnodeRecord{Metadata: apiv1.ObjectMeta{ID: id, Name: name, Tenant: p.Tenant, CreatedAt: now}, Tags: hb.Tags, Start: now, LastSeen: now}
			err = s.vnodes.Create(ctx, rec, nil)
		} else if err == nil {
			err = s.renewVNode(ctx, cur, hb.Tags, now)
		}
		if !errdefs.IsConflict(err) && !errdefs.IsAlreadyExists(err) {
			return err
		}
	}
	return fmt.Errorf("virtual node %s: too many concurrent heartbeats: %w", name, errdefs.ErrConflict)
}

// renewVNode extends cur's interval to now, or closes it into a usage
// record and opens a new one when the node was silent past VNodeGrace.
func (s *Service) renewVNode(ctx context.Context, cur *vnodeRecord, tags map[string]string, now time.Time) error {
	var more []store.Op
	if now.Sub(cur.LastSeen) > VNodeGrace {
		op, err := s.vnodeUsageOps(cur)
		if err != nil {
			return err
		}
		more = append(more, op...)
		cur.Start = now
	}
	cur.LastSeen, cur.Tags = now, tags
	return s.vnodes.Update(ctx, cur, nil, more...)
}

// closeSilentVNodes turns the intervals of nodes silent past VNodeGrace
// into usage records and removes their records (the monitor's garbage
// collection; a node that comes back starts a new record).
func (s *Service) closeSilentVNodes(ctx context.Context, now time.Time) error {
	recs, _, _, err := s.vnodes.List(ctx, store.ListOptions{})
	if err != nil {
		return err
	}
	for _, v := range recs {
		if now.Sub(v.LastSeen) <= VNodeGrace {
			continue
		}
		op, err := s.vnodeUsageOps(v)
		if err != nil {
			return err
		}
		if err := s.vnodes.Delete(ctx, v, op...); err != nil && !errdefs.IsConflict(err) {
			return err
		}
	}
	return nil
}

// vnodeUsageOps write v's interval as a usage record, unless it lasted
// not a whole second.
func (s *Service) vnodeUsageOps(v *vnodeRecord) ([]store.Op, error) {
	if v.LastSeen.Unix() == v.Start.Unix() {
		return nil, nil
	}
	u := v.usage()
	u.Metadata.ID = usageKey(v.Metadata.Tenant, u.Metadata.ID)
	u.Metadata.CreatedAt = s.now() // written now (usagefold.go waits from it)
	op, err := s.records.PutOp(&u)
	if err != nil {
		return nil, err
	}
	return []store.Op{op}, nil
}

// vnodeUsage is the open intervals of the nodes p may see.
func (s *Service) vnodeUsage(ctx context.Context, p auth.Principal) ([]apiv1.UsageRecord, error) {
	prefix := ""
	if !p.IsAdmin() {
		prefix = p.Tenant + "/"
	}
	recs, _, _, err := s.vnodes.List(ctx, store.ListOptions{Prefix: prefix})
	if err != nil {
		return nil, err
	}
	out := make([]apiv1.UsageRecord, 0, len(recs))
	for _, v := range recs {
		u := v.usage()
		u.Open = true
		out = append(out, u)
	}
	return out, nil
}
