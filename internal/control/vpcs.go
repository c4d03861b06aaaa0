package control

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/auth"
	"github.com/eci-dev/eci/internal/errdefs"
	"github.com/eci-dev/eci/internal/store"
)

// vniRecord reserves a VNI for one VPC (ID: the VNI), written in the
// VPC's creation: no two VPCs ever share one.
type vniRecord struct {
	Metadata apiv1.ObjectMeta `json:"metadata"`
	VPC      string           `json:"vpc"`
}

func (r *vniRecord) Meta() *apiv1.ObjectMeta { return &r.Metadata }

// defaultVPC is the VPC of the vSwitches that name none (never stored).
func defaultVPC() *apiv1.VPC {
	return &apiv1.VPC{Metadata: apiv1.ObjectMeta{ID: apiv1.DefaultVPC, Name: apiv1.DefaultVPC}, Status: apiv1.VPCStatus{VNI: apiv1.DefaultVNI}}
}

// vpcVisibleTo tells whether p may read (and its vSwitches use) v: the
// admin and hosts every VPC, a tenant its own and the shared ones.
func vpcVisibleTo(v *apiv1.VPC, p auth.Principal) bool {
	return p.Kind != apiv1.TokenTenant || v.Metadata.Tenant == "" || v.Metadata.Tenant == p.Tenant
}

// CreateVPC makes a VPC with the lowest free VNI (admin only; a tenant's
// when metadata.tenant names one).
func (s *Service) CreateVPC(ctx context.Context, p auth.Principal, v *apiv1.VPC) (*apiv1.VPC, error) {
	if err := p.Require("create VPCs", apiv1.TokenAdmin); err != nil {
		return nil, err
	}
	if err := apiv1.ValidateVPC(v); err != nil {
		return nil, fmt.Errorf("%w: %w", errdefs.ErrInvalidArgument, err)
	}
	if t := v.Metadata.Tenant; t != "" {
		if err := s.checkTenant(ctx, t, "a tenant's name, or none for a VPC every tenant may use"); err != nil {
			return nil, err
		}
	}
	cidr := ""
	if p, err := netip.ParsePrefix(v.Spec.CIDR); err == nil {
		cidr = p.Masked().String() // validated above
	}
	for attempt := 0; attempt < 20; attempt++ {
		vnis, _, _, err := s.vnis.List(ctx, storeOpts(0, 0, ""))
		if err != nil {
			return nil, err
		}
		used := map[int]bool{apiv1.DefaultVNI: true}
		for _, r := range vnis {
			n, _ := strconv.Atoi(r.Metadata.ID)
			used[n] = true
		}
		vni := 0
		for n := apiv1.DefaultVNI + 1; n <= apiv1.MaxVNI; n++ {
			if !used[n] {
				vni = n
				break
			}
		}
		if vni == 0 {
			return nil, fmt.Errorf("every VNI up to %d is taken (delete a VPC): %w", apiv1.MaxVNI, errdefs.ErrConflict)
		}
		obj := &apiv1.VPC{
			Metadata: apiv1.ObjectMeta{ID: v.Metadata.Name, Name: v.Metadata.Name, Tenant: v.Metadata.Tenant, Labels: v.Metadata.Labels, CreatedAt: s.now()},
			Spec:     apiv1.VPCSpec{CIDR: cidr},
			Status:   apiv1.VPCStatus{VNI: vni},
		}
		rec := &vniRecord{Metadata: apiv1.ObjectMeta{ID: strconv.Itoa(vni)}, VPC: obj.Metadata.ID}
		putVNI, err := s.vnis.PutOp(rec)
		if err != nil {
			return nil, err
		}
		if _, err := s.vpcs.Get(ctx, obj.Metadata.ID); err == nil {
			return nil, fmt.Errorf("VPC %s exists: %w", obj.Metadata.ID, errdefs.ErrAlreadyExists)
		}
		err = s.vpcs.Create(ctx, obj, []store.Cond{s.vnis.Absent(rec.Metadata.ID)}, putVNI)
		if errdefs.IsConflict(err) {
			continue // another VPC took the VNI (or the name) meanwhile
		}
		if err != nil {
			return nil, err
		}
		return obj, nil
	}
	return nil, fmt.Errorf("create VPC %s: too many concurrent changes: %w", v.Metadata.Name, errdefs.ErrConflict)
}

// defaultVPCWith is the default VPC with its count of the vSwitches p sees.
func (s *Service) defaultVPCWith(ctx context.Context, p auth.Principal) (*apiv1.VPC, error) {
	vsws, err := s.ListVSwitches(ctx, p)
	if err != nil {
		return nil, err
	}
	v := defaultVPC()
	for i := range vsws {
		if vpcID(&vsws[i]) == apiv1.DefaultVPC {
			v.Status.VSwitches++
		}
	}
	return v, nil
}

// GetVPC reads a VPC p may see (the default VPC too).
func (s *Service) GetVPC(ctx context.Context, p auth.Principal, id string) (*apiv1.VPC, error) {
	if id == apiv1.DefaultVPC || id == "" {
		return s.defaultVPCWith(ctx, p)
	}
	v, err := s.vpcs.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if !vpcVisibleTo(v, p) {
		return nil, fmt.Errorf("vpcs %q: %w", id, errdefs.ErrNotFound)
	}
	return v, nil
}

// ListVPCs lists the VPCs p may see, the default one first.
func (s *Service) ListVPCs(ctx context.Context, p auth.Principal) ([]apiv1.VPC, error) {
	items, _, _, err := s.vpcs.List(ctx, storeOpts(0, 0, ""))
	if err != nil {
		return nil, err
	}
	def, err := s.defaultVPCWith(ctx, p)
	if err != nil {
		return nil, err
	}
	out := []apiv1.VPC{*def}
	for _, v := range items {
		if vpcVisibleTo(v, p) {
			out = append(out, *v)
		}
	}
	return out, nil
}

// DeleteVPC removes a VPC that has no vSwitch left, and frees its VNI
// (admin only). The VPC must be unchanged since it was read: a vSwitch
// made meanwhile counts.
func (s *Service) DeleteVPC(ctx context.Context, p auth.Principal, id string) error {
	if err := p.Require("delete VPCs", apiv1.TokenAdmin); err != nil {
		return err
	}
	if id == apiv1.DefaultVPC {
		return fmt.Errorf("the default VPC is never deleted: %w", errdefs.ErrInvalidArgument)
	}
	v, err := s.vpcs.Get(ctx, id)
	if err != nil {
		return err
	}
	if v.Status.VSwitches > 0 {
		return fmt.Errorf("VPC %s still has %d vSwitches: %w", id, v.Status.VSwitches, errdefs.ErrConflict)
	}
	return s.vpcs.Delete(ctx, v, s.vnis.DeleteOp(strconv.Itoa(v.Status.VNI)))
}

// vpcOfNewVSwitch is the VPC a vSwitch v joins, checked: it exists and v's
// tenant may use it, v is inside its CIDR and overlaps none of its other
// vSwitches (of existing). The conditions and writes that make v's
// creation count in the VPC (nil for the default VPC) are returned too.
func (s *Service) vpcOfNewVSwitch(ctx context.Context, v *apiv1.VSwitch, prefix netip.Prefix, existing []*apiv1.VSwitch) (*apiv1.VPC, []store.Cond, []store.Op, error) {
	vpc := defaultVPC()
	id := v.Spec.VPCID
	invalid := func(msg string, args ...any) error {
		return fmt.Errorf("%w: %w", errdefs.ErrInvalidArgument, apiv1.FieldErrors{{Field: "spec.vpcId", Message: fmt.Sprintf(msg, args...)}})
	}
	var conds []store.Cond
	var ops []store.Op
	if id != "" && id != apiv1.DefaultVPC {
		got, err := s.vpcs.Get(ctx, id)
		if errdefs.IsNotFound(err) || err == nil && got.Metadata.Tenant != "" && got.Metadata.Tenant != v.Metadata.Tenant {
			return nil, nil, nil, invalid("%q is not a VPC this vSwitch may join; allowed: a VPC of the vSwitch's tenant, a shared one, or none (%s)", id, apiv1.DefaultVPC)
		}
		if err != nil {
			return nil, nil, nil, err
		}
		if got.Spec.CIDR != "" {
			vpcPrefix, err := netip.ParsePrefix(got.Spec.CIDR)
			if err != nil {
				return nil, nil, nil, fmt.Errorf("VPC %s: spec.cidr: %w", id, err)
			}
			if !vpcPrefix.Contains(prefix.Addr()) || vpcPrefix.Bits() > prefix.Bits() {
				return nil, nil, nil, fmt.Errorf("%w: %w", errdefs.ErrInvalidArgument, apiv1.FieldErrors{{Field: "spec.cidr",
					Message: fmt.Sprintf("%s is not inside VPC %s's CIDR %s", prefix, id, got.Spec.CIDR)}})
			}
		}
		cond, err := s.vpcs.Unchanged(got)
		if err != nil {
			return nil, nil, nil, err
		}
		vpc = got
		counted := *got
		counted.Status.VSwitches++
		op, err := s.vpcs.PutOp(&counted)
		if err != nil {
			return nil, nil, nil, err
		}
		conds, ops = append(conds, cond), append(ops, op)
	}
	for _, other := range existing {
		if vpcID(other) != vpc.Metadata.ID {
			continue
		}
		if op, err := netip.ParsePrefix(other.Spec.CIDR); err == nil && op.Overlaps(prefix) {
			return nil, nil, nil, fmt.Errorf("%w: %w", errdefs.ErrInvalidArgument, apiv1.FieldErrors{{Field: "spec.cidr",
				Message: fmt.Sprintf("%s overlaps vSwitch %s (%s) of the same VPC", prefix, other.Metadata.ID, other.Spec.CIDR)}})
		}
	}
	return vpc, conds, ops, nil
}

// vpcID is v's VPC (DefaultVPC when it names none).
func vpcID(v *apiv1.VSwitch) string {
	if v.Spec.VPCID == "" {
		return apiv1.DefaultVPC
	}
	return v.Spec.VPCID
}
