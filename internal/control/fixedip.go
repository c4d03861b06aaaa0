package control

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
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

// MaxKeptFixedIPs bounds the addresses a tenant's ended groups keep for
// their keys: past it, an ended group's address is freed (its key's next
// group gets another), so that no tenant holds a shared vSwitch's
// addresses with groups it deletes.
const MaxKeptFixedIPs = 64

// fixedReleaseOp is the write that keeps g's address for its key when g
// ends (rec is its record): without a group, until the retention ends; or,
// when its tenant keeps MaxKeptFixedIPs already, frees it (quarantined as
// any other when its host did not confirm).
func (s *Service) fixedReleaseOp(ctx context.Context, g *apiv1.ContainerGroup, rec *ipRecord, quarantine time.Duration) (store.Op, error) {
	kept, err := s.keptFixedIPs(ctx, g.Metadata.Tenant)
	if err != nil {
		return store.Op{}, err
	}
	if kept >= MaxKeptFixedIPs {
		if quarantine == 0 {
			return s.ips.DeleteOp(rec.Metadata.ID), nil
		}
		until := s.now().Add(quarantine)
		rec.Group, rec.Fixed, rec.ReleaseAfter = "", "", &until
		return s.ips.PutOp(rec)
	}
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

// keptFixedIPs counts the addresses tenant's ended groups keep.
func (s *Service) keptFixedIPs(ctx context.Context, tenant string) (int, error) {
	items, _, _, err := s.ips.List(ctx, storeOpts(0, 0, ""))
	if err != nil {
		return 0, fmt.Errorf("count the kept fixed IPs: %w", err)
	}
	n := 0
	for _, r := range items {
		if r.Group == "" && strings.HasPrefix(r.Fixed, tenant+"/") {
			n++
		}
	}
	return n, nil
}

// staleFixed is the record an earlier group of g's key kept that g does
// not take again (its vSwitch is not one g may use): deleted in g's
// placement, so that a key keeps one address at most.
func (st *placementState) staleFixed(g *apiv1.ContainerGroup, kept *ipRecord, now time.Time) *ipRecord {
	rec := st.fixed[fixedKey(g)]
	if fixedKey(g) == "" || kept != nil || rec == nil || rec.Group != "" {
		return nil
	}
	if rec.HeldUntil != nil && now.Before(*rec.HeldUntil) {
		return nil // its last host may still use it: the quarantine holds
	}
	return rec
}
