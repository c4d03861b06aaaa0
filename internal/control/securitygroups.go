package control

import (
	"context"
	"fmt"
	"maps"
	"reflect"
	"strconv"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/auth"
	"github.com/eci-dev/eci/internal/errdefs"
	"github.com/eci-dev/eci/internal/store"
)

// maxSecurityGroupsPerTenant bounds what a tenant stores (every host keeps
// every group's rules).
const maxSecurityGroupsPerTenant = 100

// SecurityGroupKey is where a tenant's security group is stored, and how
// hosts and addresses name it: "<tenant>/<name>".
func SecurityGroupKey(tenant, name string) string { return tenant + "/" + name }

// PutSecurityGroup writes a security group of the caller's tenant whole
// (made or replaced): a tenant its own, the admin one of the tenant it
// names. A rule's groupId must name a group of the same tenant.
func (s *Service) PutSecurityGroup(ctx context.Context, p auth.Principal, g *apiv1.SecurityGroup) (*apiv1.SecurityGroup, error) {
	if err := p.Require("write security groups", apiv1.TokenAdmin, apiv1.TokenTenant); err != nil {
		return nil, err
	}
	tenant, err := s.writerTenant(ctx, p, g.Metadata.Tenant)
	if err != nil {
		return nil, err
	}
	if err := apiv1.ValidateSecurityGroup(g); err != nil {
		return nil, fmt.Errorf("%w: %w", errdefs.ErrInvalidArgument, err)
	}
	existing, _, _, err := s.sgs.List(ctx, store.ListOptions{Prefix: tenant + "/"})
	if err != nil {
		return nil, err
	}
	key := SecurityGroupKey(tenant, g.Metadata.Name)
	names := map[string]bool{g.Metadata.Name: true}
	for _, o := range existing {
		names[o.Metadata.Name] = true
	}
	if len(names) > maxSecurityGroupsPerTenant {
		return nil, fmt.Errorf("tenant %s has %d security groups, the most it may: %w", tenant, maxSecurityGroupsPerTenant, errdefs.ErrPermissionDenied)
	}
	for _, d := range []struct {
		dir   string
		rules []apiv1.SecurityRule
	}{{"ingress", g.Spec.Ingress}, {"egress", g.Spec.Egress}} {
		for i, r := range d.rules {
			if r.GroupID != "" && !names[r.GroupID] {
				return nil, fmt.Errorf("%w: %w", errdefs.ErrInvalidArgument, apiv1.FieldErrors{{Field: fmt.Sprintf("spec.%s[%d].groupId", d.dir, i),
					Message: fmt.Sprintf("%q is not a security group of the tenant; allowed: one of its own (this one too)", r.GroupID)}})
			}
		}
	}
	obj := &apiv1.SecurityGroup{
		Metadata: apiv1.ObjectMeta{ID: key, Name: g.Metadata.Name, Tenant: tenant, Labels: g.Metadata.Labels, CreatedAt: s.now()},
		Spec:     g.Spec,
	}
	if obj.Spec.InnerAccessPolicy == "" {
		obj.Spec.InnerAccessPolicy = apiv1.InnerAccept
	}
	if cur, err := s.sgs.Get(ctx, key); err == nil {
		if reflect.DeepEqual(cur.Spec, obj.Spec) && maps.Equal(cur.Metadata.Labels, obj.Metadata.Labels) {
			return cur, nil // unchanged: no write, no event for every host
		}
		obj.Metadata.CreatedAt = cur.Metadata.CreatedAt
		cond, err := s.sgs.Unchanged(cur)
		if err != nil {
			return nil, err
		}
		op, err := s.sgs.PutOp(obj)
		if err != nil {
			return nil, err
		}
		if _, err := s.st.Commit(ctx, []store.Cond{cond}, []store.Op{op}); err != nil {
			return nil, err
		}
		return obj, nil
	} else if !errdefs.IsNotFound(err) {
		return nil, err
	}
	if err := s.sgs.Create(ctx, obj, nil); err != nil {
		return nil, err
	}
	return obj, nil
}

// sgVisible tells whether p reads g: hosts and the admin all, a tenant its
// own.
func sgVisible(p auth.Principal, g *apiv1.SecurityGroup) bool {
	return p.Kind != apiv1.TokenTenant || g.Metadata.Tenant == p.Tenant
}

// ListSecurityGroups lists the security groups p may read.
func (s *Service) ListSecurityGroups(ctx context.Context, p auth.Principal) (*apiv1.List[apiv1.SecurityGroup], error) {
	prefix := ""
	if p.Kind == apiv1.TokenTenant {
		prefix = p.Tenant + "/"
	}
	items, rev, _, err := s.sgs.List(ctx, store.ListOptions{Prefix: prefix})
	if err != nil {
		return nil, err
	}
	out := &apiv1.List[apiv1.SecurityGroup]{Items: []apiv1.SecurityGroup{}, ResourceVersion: strconv.FormatInt(rev, 10)}
	for _, g := range items {
		if sgVisible(p, g) {
			out.Items = append(out.Items, *g)
		}
	}
	return out, nil
}

// WatchSecurityGroups lists and watches the security groups p may read, as
// WatchGroups does groups.
func (s *Service) WatchSecurityGroups(ctx context.Context, p auth.Principal, resourceVersion string) (*Watch[apiv1.SecurityGroup], error) {
	w, err := startWatch(ctx, s.st, resourceVersion, func() (*apiv1.List[apiv1.SecurityGroup], error) { return s.ListSecurityGroups(ctx, p) })
	if err != nil {
		return nil, err
	}
	w.Events = watchAs(ctx, s.sgs.Watch(ctx, w.Revision), func(g *apiv1.SecurityGroup) *apiv1.SecurityGroup {
		if !sgVisible(p, g) {
			return nil
		}
		return g
	})
	return w, nil
}

// DeleteSecurityGroup removes a security group of the caller's tenant (the
// admin names the tenant). Instances that name it are then allowed no new
// connection either way but those another group of theirs allows (a host
// fails closed).
func (s *Service) DeleteSecurityGroup(ctx context.Context, p auth.Principal, tenant, name string) error {
	if err := p.Require("delete security groups", apiv1.TokenAdmin, apiv1.TokenTenant); err != nil {
		return err
	}
	tenant, err := s.writerTenant(ctx, p, tenant)
	if err != nil {
		return err
	}
	g, err := s.sgs.Get(ctx, SecurityGroupKey(tenant, name))
	if err != nil {
		return err
	}
	return s.sgs.Delete(ctx, g)
}

// checkSecurityGroups refuses a group that names a security group its
// tenant does not have.
func (s *Service) checkSecurityGroups(ctx context.Context, tenant string, ids []string) error {
	for i, id := range ids {
		if _, err := s.sgs.Get(ctx, SecurityGroupKey(tenant, id)); errdefs.IsNotFound(err) {
			return fmt.Errorf("%w: %w", errdefs.ErrInvalidArgument, apiv1.FieldErrors{{Field: fmt.Sprintf("spec.securityGroupIds[%d]", i),
				Message: fmt.Sprintf("%q is not a security group of the tenant; allowed: one of its own (eci securitygroups)", id)}})
		} else if err != nil {
			return err
		}
	}
	return nil
}
