package control

import (
	"context"
	"fmt"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/auth"
	"github.com/eci-dev/eci/internal/errdefs"
	"github.com/eci-dev/eci/internal/store"
)

// PutTenant creates or replaces a tenant (admin only).
func (s *Service) PutTenant(ctx context.Context, p auth.Principal, t *apiv1.Tenant) (*apiv1.Tenant, error) {
	if err := p.Require("manage tenants", apiv1.TokenAdmin); err != nil {
		return nil, err
	}
	if err := apiv1.ValidateTenant(t); err != nil {
		return nil, fmt.Errorf("%w: %w", errdefs.ErrInvalidArgument, err)
	}
	name := t.Metadata.Name
	defer s.uncount(name) // its cached quota
	obj := &apiv1.Tenant{Metadata: apiv1.ObjectMeta{ID: name, Name: name, Labels: t.Metadata.Labels, CreatedAt: s.now()}, Spec: t.Spec}
	err := s.tenants.Create(ctx, obj, nil)
	if errdefs.IsAlreadyExists(err) {
		return s.tenants.Mutate(ctx, name, func(cur *apiv1.Tenant) error {
			cur.Spec, cur.Metadata.Labels = t.Spec, t.Metadata.Labels
			return nil
		})
	}
	return obj, err
}

// GetTenant reads a tenant (admin, or the tenant itself).
func (s *Service) GetTenant(ctx context.Context, p auth.Principal, name string) (*apiv1.Tenant, error) {
	if !p.IsAdmin() && (p.Kind != apiv1.TokenTenant || p.Tenant != name) {
		return nil, fmt.Errorf("%s may not read tenant %s: %w", p, name, errdefs.ErrPermissionDenied)
	}
	return s.tenants.Get(ctx, name)
}

// ListTenants lists tenants (admin only).
func (s *Service) ListTenants(ctx context.Context, p auth.Principal) ([]apiv1.Tenant, error) {
	if err := p.Require("list tenants", apiv1.TokenAdmin); err != nil {
		return nil, err
	}
	items, _, _, err := s.tenants.List(ctx, storeOpts(0, 0, ""))
	if err != nil {
		return nil, err
	}
	out := make([]apiv1.Tenant, 0, len(items))
	for _, t := range items {
		out = append(out, *t)
	}
	return out, nil
}

// CreateToken makes a tenant or host token (admin only). The secret is in the
// answer only; the store keeps its hash.
func (s *Service) CreateToken(ctx context.Context, p auth.Principal, t *apiv1.Token) (*apiv1.Token, error) {
	if err := p.Require("create tokens", apiv1.TokenAdmin); err != nil {
		return nil, err
	}
	if err := apiv1.ValidateToken(t); err != nil {
		return nil, fmt.Errorf("%w: %w", errdefs.ErrInvalidArgument, err)
	}
	if t.Spec.Kind == apiv1.TokenTenant {
		if _, err := s.tenants.Get(ctx, t.Spec.Tenant); err != nil {
			return nil, fmt.Errorf("spec.tenant: %w", err)
		}
	}
	secret := auth.NewSecret()
	obj := &apiv1.Token{
		Metadata: apiv1.ObjectMeta{ID: auth.Hash(secret), Name: t.Metadata.Name, CreatedAt: s.now()},
		Spec:     t.Spec,
	}
	if err := s.tokens.Create(ctx, obj, nil); err != nil {
		return nil, err
	}
	obj.Status.Token = secret
	return obj, nil
}

// ListTokens lists the tokens (admin only): their ids (the secret's hash),
// never their secrets.
func (s *Service) ListTokens(ctx context.Context, p auth.Principal) ([]apiv1.Token, error) {
	if err := p.Require("list tokens", apiv1.TokenAdmin); err != nil {
		return nil, err
	}
	items, _, _, err := s.tokens.List(ctx, store.ListOptions{})
	if err != nil {
		return nil, err
	}
	out := make([]apiv1.Token, 0, len(items))
	for _, t := range items {
		if t.Spec.Kind != tokenRevoked {
			out = append(out, *t)
		}
	}
	return out, nil
}

// RevokeToken deletes a tenant or host token (admin only): every server
// refuses it from the next request on, since every request reads its token
// from etcd. The admin token is the servers' own (--admin-token or
// <data-dir>/admin.token): changed there, the old one is revoked as the
// servers start (EnsureAdminToken).
func (s *Service) RevokeToken(ctx context.Context, p auth.Principal, id string) (*apiv1.Token, error) {
	if err := p.Require("revoke tokens", apiv1.TokenAdmin); err != nil {
		return nil, err
	}
	t, err := s.tokens.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if t.Spec.Kind == apiv1.TokenAdmin {
		return nil, fmt.Errorf("token %s is the admin token: change --admin-token (or <data-dir>/admin.token) and restart the servers instead: %w", id, errdefs.ErrInvalidArgument)
	}
	if err := s.tokens.Delete(ctx, t); err != nil {
		return nil, err
	}
	return t, nil
}

// Authenticate returns the principal of a stored token.
func (s *Service) Authenticate(ctx context.Context, secret string) (auth.Principal, error) {
	id := auth.Hash(secret)
	t, err := s.tokens.Get(ctx, id)
	if errdefs.IsNotFound(err) || (err == nil && t.Metadata.ID != id) {
		// (A record copied under another key is no token.)
		return auth.Principal{}, fmt.Errorf("the bearer token is not known: %w", errdefs.ErrUnauthenticated)
	}
	if err != nil {
		return auth.Principal{}, err
	}
	return auth.Principal{Kind: t.Spec.Kind, Tenant: t.Spec.Tenant, Host: t.Spec.Host}, nil
}

// TokenValid tells whether the token of id (its hash) still exists: long
// streams check it again, so that a revoked token's watch ends.
func (s *Service) TokenValid(ctx context.Context, id string) bool {
	t, err := s.tokens.Get(ctx, id)
	return err == nil && t.Metadata.ID == id
}

// EnsureAdminToken makes sure secret authenticates as the admin. With
// rotate (the operator named the admin token: --admin-token), every other
// admin token is revoked, and a tombstone keeps a revoked one from coming
// back (a server started again with an old token refuses to start). Servers
// of one etcd share the admin token; a server that made its own (no
// --admin-token) revokes nothing.
func (s *Service) EnsureAdminToken(ctx context.Context, secret string, rotate bool) error {
	id := auth.Hash(secret)
	if _, err := s.tokens.Get(ctx, revokedID(id)); err == nil {
		return fmt.Errorf("this admin token was revoked when another replaced it; give the current one (--admin-token): %w", errdefs.ErrPermissionDenied)
	}
	obj := &apiv1.Token{
		Metadata: apiv1.ObjectMeta{ID: id, Name: "admin", CreatedAt: s.now()},
		Spec:     apiv1.TokenSpec{Kind: apiv1.TokenAdmin},
	}
	if err := s.tokens.Create(ctx, obj, nil); err != nil && !errdefs.IsAlreadyExists(err) {
		return err
	}
	if !rotate {
		return nil
	}
	items, _, _, err := s.tokens.List(ctx, store.ListOptions{})
	if err != nil {
		return err
	}
	for _, t := range items {
		if t.Spec.Kind != apiv1.TokenAdmin || t.Metadata.ID == id {
			continue
		}
		tomb := &apiv1.Token{Metadata: apiv1.ObjectMeta{ID: revokedID(t.Metadata.ID), Name: "revoked admin token", CreatedAt: s.now()}, Spec: apiv1.TokenSpec{Kind: tokenRevoked}}
		if err := s.tokens.Create(ctx, tomb, nil); err != nil && !errdefs.IsAlreadyExists(err) {
			return err
		}
		if err := s.tokens.Delete(ctx, t); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("revoke a former admin token: %w", err)
		}
		s.log.Warn("a former admin token was revoked (the admin token changed)", "token", t.Metadata.ID[:12])
	}
	return nil
}

// tokenRevoked marks the tombstone of a revoked admin token.
const tokenRevoked apiv1.TokenKind = "Revoked"

func revokedID(id string) string { return "revoked-" + id }

// checkTenant checks that tenant (named in metadata.tenant) exists; allowed
// ends the error's message.
func (s *Service) checkTenant(ctx context.Context, tenant, allowed string) error {
	_, err := s.tenants.Get(ctx, tenant)
	if errdefs.IsNotFound(err) {
		return fmt.Errorf("%w: %w", errdefs.ErrInvalidArgument, apiv1.FieldErrors{{Field: "metadata.tenant",
			Message: fmt.Sprintf("%q is not a tenant; allowed: %s", tenant, allowed)}})
	}
	return err
}
