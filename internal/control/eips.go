package control

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/auth"
	"github.com/eci-dev/eci/internal/errdefs"
	"github.com/eci-dev/eci/internal/store"
)

// EIPs are stored one record per address (ID: apiv1.EIPID), so that no
// address is ever given twice: a record is made with the condition that
// none exists, or changed with the condition that it did not change.

// errNoFreeEIP: every address of the range is taken (409).
var errNoFreeEIP = fmt.Errorf("no free EIP: %w", errdefs.ErrConflict)

// eipsOff is the error of an EIP asked of a service without a range.
func eipsOff(field string) error {
	return fmt.Errorf("%w: %w", errdefs.ErrInvalidArgument, apiv1.FieldErrors{{Field: field,
		Message: "this service gives no EIPs (eci server --eip-range names the addresses it may give)"}})
}

// eipFree tells whether e may be bound or allocated again: unbound, or its
// group's host past the quarantine.
func (s *Service) eipFree(e *apiv1.EIP) bool {
	return e.Status.GroupID == "" || e.Status.ReleaseAfter != nil && !s.now().Before(*e.Status.ReleaseAfter)
}

// AllocateEIP gives a tenant (p's, or metadata.tenant's for the admin) the
// lowest free address of the range.
func (s *Service) AllocateEIP(ctx context.Context, p auth.Principal, e *apiv1.EIP) (*apiv1.EIP, error) {
	if err := p.Require("allocate EIPs", apiv1.TokenAdmin, apiv1.TokenTenant); err != nil {
		return nil, err
	}
	if err := apiv1.ValidateEIP(e); err != nil {
		return nil, fmt.Errorf("%w: %w", errdefs.ErrInvalidArgument, err)
	}
	tenant := e.Metadata.Tenant
	switch {
	case p.Kind == apiv1.TokenTenant:
		tenant = p.Tenant
	case tenant == "":
		tenant = s.opts.DefaultTenant
	default:
		if err := s.checkTenant(ctx, tenant, "a tenant's name (eci token create --tenant makes one)"); err != nil {
			return nil, err
		}
	}
	if !s.opts.EIPRange.IsValid() {
		return nil, eipsOff("metadata")
	}
	items, _, _, err := s.eips.List(ctx, storeOpts(0, 0, ""))
	if err != nil {
		return nil, err
	}
	if n := allocatedBy(items, tenant); n >= MaxEIPsPerTenant {
		return nil, fmt.Errorf("tenant %s has %d EIPs, the most one may allocate; release one (eci eips release): %w", tenant, n, errdefs.ErrPermissionDenied)
	}
	rec, cond, err := s.newEIP(ctx, items, tenant, e.Metadata.Name, "")
	if err != nil {
		return nil, err
	}
	put, err := s.eips.PutOp(rec)
	if err != nil {
		return nil, err
	}
	if _, err := s.st.Commit(ctx, []store.Cond{cond}, []store.Op{put}); err != nil {
		if errdefs.IsConflict(err) {
			return nil, fmt.Errorf("EIP %s was taken meanwhile; try again: %w", rec.Status.Address, err)
		}
		return nil, err
	}
	return rec, nil
}

// CheckEIPRange checks an EIP range for a server listening at listen
// (host:port): IPv4, /16 to /30, none of the addresses that are never an
// instance's (loopback, link-local, multicast, the server's own).
func CheckEIPRange(r netip.Prefix, listen string) error {
	bad := func(why string) error {
		return fmt.Errorf("--eip-range %s: %s; allowed: an IPv4 CIDR of /16 to /30 on the hosts' network, outside its router's, the hosts' and the server's addresses, such as 198.18.192.128/25", r, why)
	}
	switch {
	case !r.IsValid() || !r.Addr().Is4():
		return bad("not an IPv4 CIDR")
	case r.Bits() < 16 || r.Bits() > 30:
		return bad("its size")
	}
	for _, special := range []string{"127.0.0.0/8", "169.254.0.0/16", "224.0.0.0/3", "0.0.0.0/8"} {
		if netip.MustParsePrefix(special).Overlaps(r) {
			return bad("it overlaps " + special)
		}
	}
	if ap, err := netip.ParseAddrPort(listen); err == nil && r.Contains(ap.Addr()) {
		return bad("it holds the server's address " + ap.Addr().String())
	}
	return nil
}

// MaxEIPsPerTenant bounds the EIPs a tenant allocates (those of groups'
// own are bounded by its groups).
const MaxEIPsPerTenant = 20

// allocatedBy counts the EIPs of items tenant allocated.
func allocatedBy(items []*apiv1.EIP, tenant string) int {
	n := 0
	for _, e := range items {
		if e.Metadata.Tenant == tenant && !e.Status.AutoRelease {
			n++
		}
	}
	return n
}

// newEIP is a record for the lowest free address of the range (items: the
// EIPs stored), for tenant
// (bound to group, auto-released, when group is not ""), and the
// condition its write needs.
func (s *Service) newEIP(ctx context.Context, items []*apiv1.EIP, tenant, name, group string) (*apiv1.EIP, store.Cond, error) {
	byID := map[string]*apiv1.EIP{}
	for _, e := range items {
		byID[e.Metadata.ID] = e
	}
	// Never a host's own address: its agent would take what comes to it.
	hosts, _, _, err := s.hosts.List(ctx, storeOpts(0, 0, ""))
	if err != nil {
		return nil, store.Cond{}, err
	}
	taken := map[netip.Addr]bool{}
	for _, h := range hosts {
		if a, err := netip.ParseAddr(h.Spec.TunnelIP); err == nil {
			taken[a] = true
		}
	}
	r := s.opts.EIPRange.Masked()
	for a := r.Addr().Next(); r.Contains(a); a = a.Next() {
		if !r.Contains(a.Next()) {
			break // the range's last address (a broadcast) is never given
		}
		if taken[a] {
			continue
		}
		id := apiv1.EIPID(a)
		cur := byID[id]
		if cur != nil && !(cur.Status.AutoRelease && s.eipFree(cur)) {
			continue
		}
		rec := &apiv1.EIP{Metadata: apiv1.ObjectMeta{ID: id, Name: name, Tenant: tenant, CreatedAt: s.now()},
			Status: apiv1.EIPStatus{Address: a.String(), GroupID: group, AutoRelease: group != ""}}
		if rec.Metadata.Name == "" {
			rec.Metadata.Name = id
		}
		if cur == nil {
			return rec, s.eips.Absent(id), nil
		}
		cond, err := s.eips.Unchanged(cur) // an auto-released one, past its quarantine
		return rec, cond, err
	}
	return nil, store.Cond{}, fmt.Errorf("every EIP of %s is taken: %w", r, errNoFreeEIP)
}

// eipVisibleTo tells whether p may read e: the admin and hosts every one,
// a tenant its own.
func eipVisibleTo(e *apiv1.EIP, p auth.Principal) bool {
	return p.Kind != apiv1.TokenTenant || e.Metadata.Tenant == p.Tenant
}

// GetEIP reads an EIP p may see (one released with its group is gone).
func (s *Service) GetEIP(ctx context.Context, p auth.Principal, id string) (*apiv1.EIP, error) {
	e, err := s.eips.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if !eipVisibleTo(e, p) || e.Status.AutoRelease && s.eipFree(e) {
		return nil, fmt.Errorf("eips %q: %w", id, errdefs.ErrNotFound)
	}
	return e, nil
}

// ListEIPs lists the EIPs p may see.
func (s *Service) ListEIPs(ctx context.Context, p auth.Principal) ([]apiv1.EIP, error) {
	items, _, _, err := s.eips.List(ctx, storeOpts(0, 0, ""))
	if err != nil {
		return nil, err
	}
	out := []apiv1.EIP{}
	for _, e := range items {
		if eipVisibleTo(e, p) && !(e.Status.AutoRelease && s.eipFree(e)) {
			out = append(out, *e)
		}
	}
	return out, nil
}

// ReleaseEIP gives back an EIP that no group holds.
func (s *Service) ReleaseEIP(ctx context.Context, p auth.Principal, id string) error {
	if err := p.Require("release EIPs", apiv1.TokenAdmin, apiv1.TokenTenant); err != nil {
		return err
	}
	e, err := s.GetEIP(ctx, p, id)
	if err != nil {
		return err
	}
	if !s.eipFree(e) {
		return fmt.Errorf("EIP %s is bound to group %s: %w", id, e.Status.GroupID, errdefs.ErrConflict)
	}
	return s.eips.Delete(ctx, e)
}

// checkEIP checks a new group's EIP: the service gives them, and the one
// it names is its tenant's.
func (s *Service) checkEIP(ctx context.Context, tenant string, spec *apiv1.ContainerGroupSpec) error {
	if spec.EIPID == "" && !spec.WithEIP {
		return nil
	}
	if !s.opts.EIPRange.IsValid() {
		if spec.WithEIP {
			return eipsOff("spec.withEip")
		}
		return eipsOff("spec.eipId")
	}
	if spec.EIPID == "" {
		return nil
	}
	e, err := s.eips.Get(ctx, spec.EIPID)
	if errdefs.IsNotFound(err) || err == nil && (e.Metadata.Tenant != tenant || e.Status.AutoRelease) {
		return fmt.Errorf("%w: %w", errdefs.ErrInvalidArgument, apiv1.FieldErrors{{Field: "spec.eipId",
			Message: fmt.Sprintf("%q is not an EIP of tenant %s; allowed: one eci eips lists", spec.EIPID, tenant)}})
	}
	return err
}

// bindEIP is the EIP record g gets when it is placed (nil when it asks
// for none), with the condition its write needs; a reason when it can't
// have it now.
func (s *Service) bindEIP(ctx context.Context, g *apiv1.ContainerGroup) (*apiv1.EIP, store.Cond, string, error) {
	switch {
	case g.Spec.WithEIP:
		items, _, _, err := s.eips.List(ctx, storeOpts(0, 0, ""))
		if err != nil {
			return nil, store.Cond{}, "", err
		}
		rec, cond, err := s.newEIP(ctx, items, g.Metadata.Tenant, "", g.Metadata.ID)
		if errors.Is(err, errNoFreeEIP) {
			return nil, cond, err.Error(), nil
		}
		return rec, cond, "", err
	case g.Spec.EIPID != "":
		e, err := s.eips.Get(ctx, g.Spec.EIPID)
		if errdefs.IsNotFound(err) {
			return nil, store.Cond{}, fmt.Sprintf("EIP %s was released", g.Spec.EIPID), nil
		}
		if err != nil {
			return nil, store.Cond{}, "", err
		}
		// Checked again here, not only at creation: the EIP may have been
		// released and its address (its id) given to another tenant since.
		if e.Metadata.Tenant != g.Metadata.Tenant || e.Status.AutoRelease {
			return nil, store.Cond{}, fmt.Sprintf("EIP %s was released", g.Spec.EIPID), nil
		}
		if e.Status.GroupID != g.Metadata.ID && !s.eipFree(e) {
			return nil, store.Cond{}, fmt.Sprintf("EIP %s is bound to another group", g.Spec.EIPID), nil
		}
		cond, err := s.eips.Unchanged(e)
		e.Status.GroupID, e.Status.ReleaseAfter = g.Metadata.ID, nil
		return e, cond, "", err
	}
	return nil, store.Cond{}, "", nil
}

// releaseEIPOps are the writes that give back g's EIP: kept bound until
// the quarantine ends when its host did not confirm the end, else freed
// (one allocated for g deleted).
func (s *Service) releaseEIPOps(ctx context.Context, g *apiv1.ContainerGroup, until *time.Time) ([]store.Op, error) {
	if g.Status.EIPID == "" {
		return nil, nil
	}
	e, err := s.eips.Get(ctx, g.Status.EIPID)
	if errdefs.IsNotFound(err) {
		return nil, nil
	}
	if err != nil || e.Status.GroupID != g.Metadata.ID {
		return nil, err
	}
	switch {
	case until != nil:
		e.Status.ReleaseAfter = until
	case e.Status.AutoRelease:
		return []store.Op{s.eips.DeleteOp(e.Metadata.ID)}, nil
	default:
		e.Status.GroupID, e.Status.ReleaseAfter = "", nil
	}
	op, err := s.eips.PutOp(e)
	if err != nil {
		return nil, err
	}
	return []store.Op{op}, nil
}
