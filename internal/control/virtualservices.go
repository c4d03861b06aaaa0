package control

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strconv"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/auth"
	"github.com/eci-dev/eci/internal/errdefs"
	"github.com/eci-dev/eci/internal/store"
)

// A tenant's virtual IPs are stored under "<tenant>/<table>_<ip>": two
// tenants' tables never meet, and a tenant's are one prefix. Tenants write
// and read their own; hosts read every tenant's (an agent programs the
// tables its groups name); the admin reads all and writes for a tenant it
// names.

func virtualServiceKey(tenant, table, ip string) string {
	return tenant + "/" + apiv1.VirtualServiceID(table, ip)
}

// PutVirtualService writes a virtual IP of a table whole (made or replaced).
func (s *Service) PutVirtualService(ctx context.Context, p auth.Principal, v *apiv1.VirtualService) (*apiv1.VirtualService, error) {
	if err := p.Require("write virtual services", apiv1.TokenAdmin, apiv1.TokenTenant); err != nil {
		return nil, err
	}
	tenant, err := s.writerTenant(ctx, p, v.Metadata.Tenant)
	if err != nil {
		return nil, err
	}
	if err := apiv1.ValidateVirtualService(v); err != nil {
		return nil, fmt.Errorf("%w: %w", errdefs.ErrInvalidArgument, err)
	}
	if err := s.checkBackends(ctx, tenant, v); err != nil {
		return nil, err
	}
	key := virtualServiceKey(tenant, v.Spec.Table, v.Spec.IP)
	obj := &apiv1.VirtualService{
		Metadata: apiv1.ObjectMeta{ID: key, Name: apiv1.VirtualServiceID(v.Spec.Table, v.Spec.IP), Tenant: tenant, Labels: v.Metadata.Labels, CreatedAt: s.now()},
		Spec:     v.Spec,
	}
	if _, err := s.writeVirtualService(ctx, tenant, key, obj); err != nil {
		return nil, err
	}
	return obj, nil
}

// writerTenant is the tenant a write is for: a tenant's own; the admin's
// must name an existing tenant.
func (s *Service) writerTenant(ctx context.Context, p auth.Principal, named string) (string, error) {
	if p.Kind == apiv1.TokenTenant {
		if named != "" && named != p.Tenant {
			return "", fmt.Errorf("%w: %w", errdefs.ErrInvalidArgument, apiv1.FieldErrors{{Field: "metadata.tenant",
				Message: fmt.Sprintf("%q is not the caller's tenant; allowed: empty or %q", named, p.Tenant)}})
		}
		return p.Tenant, nil
	}
	if named == "" {
		return "", fmt.Errorf("%w: %w", errdefs.ErrInvalidArgument, apiv1.FieldErrors{{Field: "metadata.tenant",
			Message: "required: the tenant whose table this is (an admin writes for a tenant)"}})
	}
	if _, err := s.tenants.Get(ctx, named); err != nil {
		if errdefs.IsNotFound(err) {
			return "", fmt.Errorf("%w: %w", errdefs.ErrInvalidArgument, apiv1.FieldErrors{{Field: "metadata.tenant",
				Message: fmt.Sprintf("%q is not a tenant", named)}})
		}
		return "", err
	}
	return named, nil
}

// checkBackends refuses backends inside a vSwitch the tenant may not use,
// of a VPC that routes between tenants (the default one, a shared one): a
// virtual IP must not lead into another tenant's instances. Another
// tenant's own VPC is not checked: a translated packet is routed in its
// client's VPC, which never reaches it (and may hold the same addresses).
func (s *Service) checkBackends(ctx context.Context, tenant string, v *apiv1.VirtualService) error {
	vsws, _, _, err := s.vsws.List(ctx, storeOpts(0, 0, ""))
	if err != nil {
		return fmt.Errorf("list vSwitches: %w", err)
	}
	vpcs, _, _, err := s.vpcs.List(ctx, storeOpts(0, 0, ""))
	if err != nil {
		return fmt.Errorf("list VPCs: %w", err)
	}
	owned := map[string]bool{} // VPCs of a single tenant
	for _, vpc := range vpcs {
		owned[vpc.Metadata.ID] = vpc.Metadata.Tenant != ""
	}
	var others []netip.Prefix
	for _, vsw := range vsws {
		if pfx, err := netip.ParsePrefix(vsw.Spec.CIDR); err == nil && !usableBy(vsw, tenant) && !owned[vsw.Spec.VPCID] {
			others = append(others, pfx)
		}
	}
	var fe apiv1.FieldErrors
	for i, port := range v.Spec.Ports {
		for j, b := range port.Backends {
			a, err := netip.ParseAddr(b.IP)
			if err != nil {
				continue // validated before
			}
			// The vSwitch is not named: another tenant's is never shown.
			if slices.ContainsFunc(others, func(p netip.Prefix) bool { return p.Contains(a) }) {
				fe = append(fe, apiv1.FieldError{Field: fmt.Sprintf("spec.ports[%d].backends[%d].ip", i, j),
					Message: fmt.Sprintf("%s is an address the tenant's instances may not be sent to; allowed: addresses of the tenant's own or shared vSwitches, or outside every vSwitch", b.IP)})
			}
		}
	}
	if len(fe) > 0 {
		return fmt.Errorf("%w: %w", errdefs.ErrInvalidArgument, fe)
	}
	return nil
}

// DeleteVirtualService removes a virtual IP of a tenant's table (a tenant:
// its own; the admin names the tenant).
func (s *Service) DeleteVirtualService(ctx context.Context, p auth.Principal, tenant, table, ip string) error {
	if err := p.Require("delete virtual services", apiv1.TokenAdmin, apiv1.TokenTenant); err != nil {
		return err
	}
	tenant, err := s.writerTenant(ctx, p, tenant)
	if err != nil {
		return err
	}
	_, err = s.writeVirtualService(ctx, tenant, virtualServiceKey(tenant, table, ip), nil)
	return err
}

// VirtualServiceFilter selects virtual IPs: of one table (all when empty).
type VirtualServiceFilter struct{ Table string }

func (f VirtualServiceFilter) visible(p auth.Principal, v *apiv1.VirtualService) bool {
	if f.Table != "" && v.Spec.Table != f.Table {
		return false
	}
	switch p.Kind {
	case apiv1.TokenAdmin, apiv1.TokenHost:
		return true
	case apiv1.TokenTenant:
		return v.Metadata.Tenant == p.Tenant
	}
	return false
}

// prefix narrows a list to the caller's tenant (and table).
func (f VirtualServiceFilter) prefix(p auth.Principal) string {
	if p.Kind != apiv1.TokenTenant {
		return ""
	}
	if f.Table != "" {
		return virtualServiceKey(p.Tenant, f.Table, "")
	}
	return p.Tenant + "/"
}

// ListVirtualServices lists the virtual IPs p may read that f selects.
func (s *Service) ListVirtualServices(ctx context.Context, p auth.Principal, f VirtualServiceFilter) (*apiv1.List[apiv1.VirtualService], error) {
	items, rev, _, err := s.vsvcs.List(ctx, store.ListOptions{Prefix: f.prefix(p)})
	if err != nil {
		return nil, err
	}
	out := &apiv1.List[apiv1.VirtualService]{Items: []apiv1.VirtualService{}, ResourceVersion: strconv.FormatInt(rev, 10)}
	for _, v := range items {
		if f.visible(p, v) {
			out.Items = append(out.Items, *v)
		}
	}
	return out, nil
}

// WatchVirtualServices lists and watches the virtual IPs p may read that f
// selects, as WatchGroups does groups.
func (s *Service) WatchVirtualServices(ctx context.Context, p auth.Principal, f VirtualServiceFilter, resourceVersion string) (*Watch[apiv1.VirtualService], error) {
	w, err := startWatch(ctx, s.st, resourceVersion, func() (*apiv1.List[apiv1.VirtualService], error) { return s.ListVirtualServices(ctx, p, f) })
	if err != nil {
		return nil, err
	}
	w.Events = watchAs(ctx, s.vsvcs.Watch(ctx, w.Revision), func(v *apiv1.VirtualService) *apiv1.VirtualService {
		if !f.visible(p, v) {
			return nil
		}
		return v
	})
	return w, nil
}
