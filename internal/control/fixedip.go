package control

import (
	"fmt"
	"net/netip"
	"slices"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/store"
)

// A fixed IP (spec.fixedIpKey, a StatefulSet pod's eci-fixed-ip) is kept
// for its key: the address record of the key's group names the key
// (ipRecord.Fixed); when the group ends the record stays, without a group,
// until the retention ends (ReleaseAfter: the monitor frees it then, and
// until then it is taken for everyone else), and the key's next group gets
// it again. A group that ended without its host confirming holds it for
// the quarantine (HeldUntil) first: its host may still run the sandbox.

// DefaultFixedIPRetainHours is how long a fixed IP is kept after its
// group ends (eci-fixed-ip-retain-hour's default).
const DefaultFixedIPRetainHours = 48

// fixedKey is g's fixed-IP key, "" without one.
func fixedKey(g *apiv1.ContainerGroup) string {
	if g.Spec.FixedIPKey == "" {
		return ""
	}
	return g.Metadata.Tenant + "/" + g.Spec.FixedIPKey
}

// fixedAddress is the address kept for g's key, on a vSwitch g may use:
// invalid when none is kept (the first group of its key, or one whose
// address was given back); the reason g must wait when it is held still.
// cond is the condition its record's change needs.
func (st *placementState) fixedAddress(g *apiv1.ContainerGroup, usable []string, now time.Time) (vsw string, ip netip.Addr, cond *ipRecord, why string) {
	key := fixedKey(g)
	rec := st.fixed[key]
	if key == "" || rec == nil || !slices.Contains(usable, rec.VSwitch) {
		return "", netip.Addr{}, nil, ""
	}
	a, err := netip.ParseAddr(rec.IP)
	if err != nil {
		return "", netip.Addr{}, nil, ""
	}
	if rec.HeldUntil != nil && now.Before(*rec.HeldUntil) {
		return "", netip.Addr{}, nil, fmt.Sprintf("fixed IP %s is held until %s (the host of the group that had it may still use it)", a, rec.HeldUntil.Format(time.RFC3339))
	}
	if rec.Group != "" && rec.Group != g.Metadata.ID {
		return "", netip.Addr{}, nil, fmt.Sprintf("fixed IP %s is held by group %s of the same key", a, rec.Group)
	}
	return rec.VSwitch, a, rec, ""
}

// fixedReleaseOp is the write that keeps g's address for its key when g
// ends (rec is its record): without a group, until the retention ends.
func (s *Service) fixedReleaseOp(g *apiv1.ContainerGroup, rec *ipRecord, quarantine time.Duration) (store.Op, error) {
	hours := g.Spec.FixedIPRetainHours
	if hours == 0 {
		hours = DefaultFixedIPRetainHours
	}
	now := s.now()
	until := now.Add(time.Duration(hours) * time.Hour)
	rec.Group, rec.Fixed, rec.ReleaseAfter, rec.HeldUntil = "", fixedKey(g), &until, nil
	if quarantine > 0 {
		held := now.Add(quarantine)
		rec.HeldUntil = &held
		if until.Before(held) {
			rec.ReleaseAfter = &held
		}
	}
	return s.ips.PutOp(rec)
}

// ipWrite is the condition and write of g's address record at placement:
// a new record, or (a fixed IP kept for its key) the kept one taken again.
func (s *Service) ipWrite(g *apiv1.ContainerGroup, rec *ipRecord, kept *ipRecord) (store.Cond, store.Op, error) {
	rec.Fixed = fixedKey(g)
	put, err := s.ips.PutOp(rec)
	if err != nil {
		return store.Cond{}, store.Op{}, err
	}
	if kept == nil {
		return s.ips.Absent(rec.Metadata.ID), put, nil
	}
	cond, err := s.ips.Unchanged(kept)
	return cond, put, err
}

// markFixed notes a record's key in the placement state.
func (st *placementState) markFixed(r *ipRecord) {
	if r.Fixed != "" {
		st.fixed[r.Fixed] = r
	}
}
