package control

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/auth"
	"github.com/eci-dev/eci/internal/errdefs"
	"github.com/eci-dev/eci/internal/store"
)

// DefaultMaxPendingMinutes bounds Scheduling/Pending when a group says nothing.
const DefaultMaxPendingMinutes = 240

func newGroupID() string {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return "eci-" + hex.EncodeToString(b)
}

// CreateGroup validates g and stores it in state Scheduling. A group whose
// client token was used before by the same tenant returns the group that token
// created (created is then false).
func (s *Service) CreateGroup(ctx context.Context, p auth.Principal, g *apiv1.ContainerGroup) (out *apiv1.ContainerGroup, created bool, err error) {
	if err := p.Require("create container groups", apiv1.TokenAdmin, apiv1.TokenTenant); err != nil {
		return nil, false, err
	}
	g, err = s.checkedNew(g)
	if err != nil {
		return nil, false, err
	}
	if err := s.tenantHandler(p, &g.Spec); err != nil {
		return nil, false, err
	}
	tenant := g.Metadata.Tenant
	switch {
	case p.Kind == apiv1.TokenTenant:
		if tenant != "" && tenant != p.Tenant {
			return nil, false, fmt.Errorf("metadata.tenant: %q is not your tenant %q: %w", tenant, p.Tenant, errdefs.ErrPermissionDenied)
		}
		tenant = p.Tenant
	case tenant == "":
		tenant = s.opts.DefaultTenant
	}
	if _, err := sizeCandidates(&g.Spec); err != nil {
		return nil, false, fmt.Errorf("%w: %w", errdefs.ErrInvalidArgument, err)
	}
	if err := s.checkReferences(ctx, tenant, &g.Spec); err != nil {
		return nil, false, err
	}
	now := s.now()
	obj := &apiv1.ContainerGroup{
		Metadata: apiv1.ObjectMeta{ID: newGroupID(), Name: g.Metadata.Name, Tenant: tenant, Labels: g.Metadata.Labels, CreatedAt: now},
		Spec:     g.Spec,
	}
	if err := applyEvent(&obj.Status, evCreated, "Scheduling", "waiting for placement", now); err != nil {
		return nil, false, err
	}
	var cmps []store.Cond
	var idx *tokenIndex
	// A retry of a create that was made returns it, before any bound.
	if existing, err := s.madeBefore(ctx, tenant, g.Spec.ClientToken); existing != nil || err != nil {
		return existing, false, err
	}
	if err := s.checkTenantBounds(ctx, tenant); err != nil {
		return nil, false, err
	}
	isLarge := large(&obj.Spec)
	if isLarge {
		if err := s.checkLarge(ctx, tenant); err != nil {
			return nil, false, err
		}
	}
	ops, err := s.memberOps(obj, isLarge)
	if err != nil {
		return nil, false, err
	}
	// A new group's first event is new too: it joins the create.
	createdEv, err := s.events.PutOp(s.newEvent("ContainerGroup", obj.Metadata.ID, tenant, "", apiv1.EventNormal, "Created", "created by "+p.String(), "server"))
	if err != nil {
		return nil, false, err
	}
	ops = append(ops, createdEv)
	if tok := g.Spec.ClientToken; tok != "" {
		idx = &tokenIndex{Metadata: apiv1.ObjectMeta{ID: clientTokenKey(tenant, tok)}, Group: obj.Metadata.ID}
		put, err := s.idxs.PutOp(idx)
		if err != nil {
			return nil, false, err
		}
		cmps, ops = append(cmps, s.idxs.Absent(idx.Metadata.ID)), append(ops, put)
	}
	err = s.groups.Create(ctx, obj, cmps, ops...)
	if errors.Is(err, errdefs.ErrConflict) && idx != nil {
		existing, err := s.tokenWinner(ctx, idx.Metadata.ID, g.Spec.ClientToken)
		return existing, false, err
	}
	if err != nil {
		return nil, false, err
	}
	s.counted(tenant, isLarge)
	s.wake()
	return obj, true, nil
}

// tokenWinner is the group a concurrent create with the same client token
// made (its index key is key).
func (s *Service) tokenWinner(ctx context.Context, key, tok string) (*apiv1.ContainerGroup, error) {
	prev, err := s.idxs.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	existing, err := s.groups.Get(ctx, prev.Group)
	if err != nil {
		return nil, fmt.Errorf("client token %q was used for group %s: %w", tok, prev.Group, err)
	}
	return existing, nil
}

// tenantHandler holds a tenant's group to the runtime handlers tenants may
// ask for (--tenant-runtime-handlers): one naming none gets the first.
func (s *Service) tenantHandler(p auth.Principal, spec *apiv1.ContainerGroupSpec) error {
	allowed := s.opts.TenantRuntimeHandlers
	if p.Kind != apiv1.TokenTenant || len(allowed) == 0 {
		return nil
	}
	switch h := spec.RuntimeHandler; {
	case h == "":
		spec.RuntimeHandler = allowed[0] // a tenant's group runs with one of those, always
	case !slices.Contains(allowed, h):
		return fmt.Errorf("spec.runtimeHandler: %q is not one tenants may ask for; allowed: %s: %w", h, strings.Join(allowed, ", "), errdefs.ErrPermissionDenied)
	}
	return nil
}

// checkReferences checks what a new group of tenant names: its vSwitches
// (and private IP), security groups and EIP.
func (s *Service) checkReferences(ctx context.Context, tenant string, spec *apiv1.ContainerGroupSpec) error {
	if err := s.checkVSwitches(ctx, tenant, spec); err != nil {
		return err
	}
	if err := s.checkSecurityGroups(ctx, tenant, spec.SecurityGroupIDs); err != nil {
		return err
	}
	if err := s.resolveDataCaches(ctx, tenant, spec); err != nil {
		return err
	}
	return s.checkEIP(ctx, tenant, spec)
}

// madeBefore is the group tenant's client token tok created, if it still
// exists (nil when tok is "" or was never used).
func (s *Service) madeBefore(ctx context.Context, tenant, tok string) (*apiv1.ContainerGroup, error) {
	if tok == "" {
		return nil, nil
	}
	prev, err := s.idxs.Get(ctx, clientTokenKey(tenant, tok))
	if err != nil {
		return nil, nil // none (or unread: the create's condition on the token decides)
	}
	existing, err := s.groups.Get(ctx, prev.Group)
	switch {
	case err == nil:
		return existing, nil
	case errdefs.IsNotFound(err):
		// Left by a group removed before index keys went with their
		// group: the token is free again.
		if err := s.idxs.Delete(ctx, prev); err != nil && !errdefs.IsNotFound(err) {
			return nil, err
		}
	}
	return nil, nil
}

// GetGroup reads a group the principal may see (NotFound otherwise, so that
// other tenants' group ids are not revealed).
func (s *Service) GetGroup(ctx context.Context, p auth.Principal, id string) (*apiv1.ContainerGroup, error) {
	g, err := s.groups.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if !p.CanSeeGroup(g.Metadata.Tenant, g.Status.Host) {
		return nil, fmt.Errorf("containergroups %q: %w", id, errdefs.ErrNotFound)
	}
	return g, nil
}

// ListGroups lists the groups p may see that match f, a page at a time.
func (s *Service) ListGroups(ctx context.Context, p auth.Principal, f GroupFilter, limit int64, cont string) (*apiv1.List[apiv1.ContainerGroup], error) {
	out := &apiv1.List[apiv1.ContainerGroup]{Items: []apiv1.ContainerGroup{}}
	// Filtering happens after paging in etcd: keep reading pages until this
	// page is full, so a page never comes back short while more match.
	for {
		items, rev, next, err := s.groups.List(ctx, storeOpts(limit, int64(len(out.Items)), cont))
		if err != nil {
			return nil, err
		}
		out.ResourceVersion = fmt.Sprint(rev)
		for _, g := range items {
			if p.CanSeeGroup(g.Metadata.Tenant, g.Status.Host) && f.Match(g) {
				out.Items = append(out.Items, *g)
			}
		}
		if next == "" || (limit > 0 && int64(len(out.Items)) >= limit) {
			out.Continue = next
			return out, nil
		}
		cont = next
	}
}

// DeleteGroup deletes a group: at once when it holds nothing on a host or when
// force is set; otherwise gracefully (Terminating; the agent stops the
// containers within the grace period and then finalizes).
func (s *Service) DeleteGroup(ctx context.Context, p auth.Principal, id string, grace *int64, force bool) (*apiv1.ContainerGroup, error) {
	if err := p.Require("delete container groups", apiv1.TokenAdmin, apiv1.TokenTenant); err != nil {
		return nil, err
	}
	for attempt := 0; attempt < 20; attempt++ {
		g, err := s.GetGroup(ctx, p, id)
		if err != nil {
			return nil, err
		}
		if force || g.Status.Host == "" || g.Status.State.Terminal() {
			err = s.removeGroup(ctx, g, false)
		} else {
			if g.Metadata.DeletionRequestedAt != nil {
				return g, nil
			}
			now := s.now()
			if grace == nil {
				grace = g.Spec.TerminationGracePeriodSeconds
			}
			if grace == nil {
				thirty := int64(30)
				grace = &thirty
			}
			g.Metadata.DeletionRequestedAt, g.Metadata.DeletionGracePeriodSeconds = &now, grace
			if err := applyEvent(&g.Status, evDeleteRequested, "Terminating", fmt.Sprintf("deleted by %s, grace period %ds", p, *grace), now); err != nil {
				return nil, fmt.Errorf("delete %s: %w", id, err)
			}
			err = s.groups.Update(ctx, g, nil)
		}
		if errdefs.IsConflict(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		s.recordEvent(ctx, "ContainerGroup", id, g.Metadata.Tenant, apiv1.EventNormal, "Killing", fmt.Sprintf("deletion requested by %s (force=%v)", p, force), "server")
		return g, nil
	}
	return nil, fmt.Errorf("delete %s: too many concurrent changes: %w", id, errdefs.ErrConflict)
}

// removeGroup deletes g and releases what it holds, in one transaction;
// confirmed says its host stopped it (else its IP is quarantined).
func (s *Service) removeGroup(ctx context.Context, g *apiv1.ContainerGroup, confirmed bool) error {
	quarantine := s.opts.HostLeaseTTL
	if confirmed || g.Status.Host == "" {
		quarantine = 0
	}
	cmps, ops, err := s.releaseOps(ctx, g, quarantine)
	if err != nil {
		return err
	}
	unchanged, err := s.groups.Unchanged(g)
	if err != nil {
		return err
	}
	removal, err := s.removalOps(g)
	if err != nil {
		return err
	}
	ops = append(ops, removal...)
	if _, err := s.st.Commit(ctx, append(cmps, unchanged), ops); err != nil {
		return err
	}
	s.uncount(g.Metadata.Tenant)
	if g.Status.Allocated {
		s.wake()
	}
	return nil
}

// RestartGroup asks the agent to restart every container of a running group.
func (s *Service) RestartGroup(ctx context.Context, p auth.Principal, id string) (*apiv1.ContainerGroup, error) {
	if err := p.Require("restart container groups", apiv1.TokenAdmin, apiv1.TokenTenant); err != nil {
		return nil, err
	}
	if _, err := s.GetGroup(ctx, p, id); err != nil {
		return nil, err
	}
	return s.groups.Mutate(ctx, id, func(g *apiv1.ContainerGroup) error {
		if applyEvent(&g.Status, evRestartRequested, "Restarting", "restart requested by "+p.String(), s.now()) != nil {
			return fmt.Errorf("group %s is %s; only Pending or Running groups restart: %w", id, g.Status.State, errdefs.ErrConflict)
		}
		return nil
	})
}

// UpdateGroup applies u.
func (s *Service) UpdateGroup(ctx context.Context, p auth.Principal, id string, u apiv1.GroupUpdate) (*apiv1.ContainerGroup, error) {
	if err := p.Require("update container groups", apiv1.TokenAdmin, apiv1.TokenTenant); err != nil {
		return nil, err
	}
	if _, err := s.GetGroup(ctx, p, id); err != nil {
		return nil, err
	}
	var grew bool
	out, err := s.groups.MutateWith(ctx, id, func(g *apiv1.ContainerGroup) ([]store.Op, error) {
		if u.ResourceVersion != "" && u.ResourceVersion != g.Metadata.ResourceVersion {
			return nil, fmt.Errorf("group %s is at version %s, not %s: %w", id, g.Metadata.ResourceVersion, u.ResourceVersion, errdefs.ErrConflict)
		}
		next, err := updated(g, u)
		if err != nil {
			return nil, err
		}
		if err := apiv1.ValidateContainerGroup(&next); err != nil {
			return nil, fmt.Errorf("%w: %w", errdefs.ErrInvalidArgument, err)
		}
		grew = !large(&g.Spec) && large(&next.Spec)
		if grew {
			if err := s.checkLarge(ctx, g.Metadata.Tenant); err != nil {
				return nil, err
			}
		}
		split, err := s.splitUsage(ctx, g, &next) // metering.go
		*g = next
		return split, err
	})
	if err == nil && grew {
		if err := s.members.Create(ctx, &member{Metadata: apiv1.ObjectMeta{ID: largeKey(out.Metadata.Tenant, out.Metadata.ID)}}, nil); err != nil && !errdefs.IsAlreadyExists(err) {
			return nil, err
		}
	}
	return out, err
}

// updated is g with u applied (not validated yet: the caller validates
// the whole group).
func updated(g *apiv1.ContainerGroup, u apiv1.GroupUpdate) (apiv1.ContainerGroup, error) {
	next := *g
	if u.Labels != nil {
		next.Metadata.Labels = u.Labels
	}
	if u.Tags != nil {
		next.Spec.Tags = u.Tags
	}
	if u.Images != nil {
		spec, err := withImages(next.Spec, u.Images)
		if err != nil {
			return next, err
		}
		next.Spec = spec
	}
	if u.EphemeralContainers != nil {
		spec, err := withEphemeral(next.Spec, u.EphemeralContainers) // ephemeral.go
		if err != nil {
			return next, err
		}
		next.Spec = spec
	}
	if u.Resources != nil {
		spec, err := withResources(&next, u.Resources)
		if err != nil {
			return next, err
		}
		next.Spec = spec
	}
	if d := u.ActiveDeadlineSeconds; d != nil {
		if cur := next.Spec.ActiveDeadlineSeconds; cur != nil && *d > *cur {
			return next, fmt.Errorf("activeDeadlineSeconds: %d is more than the group's %d; allowed: set it, or lower it: %w", *d, *cur, errdefs.ErrInvalidArgument)
		}
		next.Spec.ActiveDeadlineSeconds = d
	}
	if u.Files != nil {
		vols := append([]apiv1.Volume(nil), g.Spec.Volumes...)
		for name, files := range u.Files {
			found := false
			for i := range vols {
				if vols[i].Name == name && vols[i].Files != nil {
					f, err := keepUnchanged(name, files, vols[i].Files)
					if err != nil {
						return next, err
					}
					vols[i].Files, found = f, true
				}
			}
			if !found {
				return next, fmt.Errorf("files[%q]: the group has no files volume of that name: %w", name, errdefs.ErrInvalidArgument)
			}
		}
		next.Spec.Volumes = vols
	}
	return next, nil
}

// keepUnchanged is files as sent, where a file sent without content but
// with the SHA256 the service returned keeps the content it has (a client
// that echoes what it read changes nothing); another SHA256 without content
// is refused.
func keepUnchanged(name string, files apiv1.FilesVolume, cur *apiv1.FilesVolume) (*apiv1.FilesVolume, error) {
	out := files
	out.Files = append([]apiv1.File(nil), files.Files...)
	for i, f := range out.Files {
		if len(f.Content) > 0 || f.SHA256 == "" {
			continue
		}
		kept := false
		for _, c := range cur.Files {
			if c.Path == f.Path && digest(c.Content) == f.SHA256 {
				out.Files[i].Content, kept = c.Content, true
			}
		}
		if !kept {
			return nil, fmt.Errorf("%w: %w", errdefs.ErrInvalidArgument, apiv1.FieldErrors{{Field: fmt.Sprintf("files[%q].files[%d].content", name, i),
				Message: "required: the file's content (sha256 is what the service returns; it names no content the group has)"}})
		}
	}
	for i := range out.Files {
		out.Files[i].SHA256 = ""
	}
	return &out, nil
}

// checkVSwitches refuses at once a vSwitch the tenant may not use (NotFound
// and another tenant's alike), an address outside every vSwitch it may use,
// in one without IPv6 when the group asks for IPv6, or one a group holds. (Placement checks again: the address may be taken
// in between, and then the group fails with reason PrivateIPInUse.)
func (s *Service) checkVSwitches(ctx context.Context, tenant string, spec *apiv1.ContainerGroupSpec) error {
	if len(spec.VSwitchIDs) == 0 && spec.PrivateIPAddress == "" {
		return nil
	}
	st, err := s.loadVSwitches(ctx)
	if err != nil {
		return err
	}
	var fes apiv1.FieldErrors
	for i, id := range spec.VSwitchIDs {
		if v, ok := st.vsws[id]; !ok || !usableBy(v, tenant) {
			fes = append(fes, apiv1.FieldError{Field: fmt.Sprintf("spec.vSwitchIds[%d]", i),
				Message: fmt.Sprintf("%q is not a vSwitch of tenant %s or a shared one (eci vswitches lists them)", id, tenant)})
		}
	}
	if len(fes) > 0 {
		return fmt.Errorf("%w: %w", errdefs.ErrInvalidArgument, fes)
	}
	if spec.PrivateIPAddress == "" {
		return nil
	}
	ip := spec.PrivateIPAddress
	vsw, owner, err := st.findAddress(netip.MustParseAddr(ip), st.usable(tenant, spec.VSwitchIDs))
	if err != nil {
		return fmt.Errorf("%w: %w", errdefs.ErrInvalidArgument, apiv1.FieldErrors{{Field: "spec.privateIpAddress", Message: err.Error()}})
	}
	if spec.EnableIPv6 && st.ipv6[vsw] == nil {
		return fmt.Errorf("%w: %w", errdefs.ErrInvalidArgument, apiv1.FieldErrors{{Field: "spec.privateIpAddress",
			Message: fmt.Sprintf("%s is in vSwitch %s, which has no IPv6 (ipv6Cidr): with enableIpv6, allowed: an address of a vSwitch with IPv6", ip, vsw)}})
	}
	if owner == "" {
		if rec, err := s.ips.Get(ctx, ipID(vsw, ip)); err == nil {
			if rec.ReleaseAfter != nil {
				return fmt.Errorf("spec.privateIpAddress: %s is being released until %s (the host of the group that had it may still use it): %w",
					ip, rec.ReleaseAfter.Format(time.RFC3339), errdefs.ErrConflict)
			}
			owner = rec.Group
			if rec.Warm != "" {
				owner = warmOwner + rec.Warm
			}
		}
	}
	if owner != "" {
		return fmt.Errorf("spec.privateIpAddress: %s is in use by %s: %w", ip, s.ownerName(ctx, owner, tenant), errdefs.ErrConflict)
	}
	return nil
}
