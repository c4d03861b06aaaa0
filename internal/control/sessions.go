package control

import (
	"context"
	"fmt"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/auth"
	"github.com/eci-dev/eci/internal/errdefs"
	"github.com/eci-dev/eci/internal/store"
)

// Console sessions (docs/console.md): a sign-in trades a token for a
// session of its own, so that the browser never holds the token. A
// session is stored by its secret's hash with the token's hash and an
// expiry: every page reads it and the token again (a revoked token ends
// its sessions), a sign-out deletes it, and the monitor removes the
// expired ones.

// SessionTTL is how long a console session lasts.
const SessionTTL = 8 * time.Hour

type session struct {
	Metadata apiv1.ObjectMeta `json:"metadata"` // ID: the secret's hash
	Token    string           `json:"token"`    // the token's hash
	Expires  time.Time        `json:"expires"`
}

func (s *session) Meta() *apiv1.ObjectMeta { return &s.Metadata }

// StartSession signs in with a token of an admin or a tenant and returns
// the new session's secret.
func (s *Service) StartSession(ctx context.Context, token string) (string, auth.Principal, error) {
	p, err := s.Authenticate(ctx, token)
	if err != nil {
		return "", p, err
	}
	if p.Kind == apiv1.TokenHost {
		return "", p, fmt.Errorf("a host's token does not open the console: %w", errdefs.ErrPermissionDenied)
	}
	secret, now := auth.NewSecret(), s.now()
	rec := &session{Metadata: apiv1.ObjectMeta{ID: auth.Hash(secret), Name: "console", Tenant: p.Tenant, CreatedAt: now},
		Token: auth.Hash(token), Expires: now.Add(SessionTTL)}
	if err := s.sessions.Create(ctx, rec, nil); err != nil {
		return "", p, err
	}
	return secret, p, nil
}

// SessionPrincipal is the principal of a live session.
func (s *Service) SessionPrincipal(ctx context.Context, secret string) (auth.Principal, error) {
	id := auth.Hash(secret)
	rec, err := s.sessions.Get(ctx, id)
	if errdefs.IsNotFound(err) || err == nil && rec.Metadata.ID != id {
		return auth.Principal{}, fmt.Errorf("no such session: %w", errdefs.ErrUnauthenticated)
	}
	if err != nil {
		return auth.Principal{}, err
	}
	if !s.now().Before(rec.Expires) {
		_ = s.sessions.Delete(ctx, rec)
		return auth.Principal{}, fmt.Errorf("the session expired: %w", errdefs.ErrUnauthenticated)
	}
	t, err := s.tokens.Get(ctx, rec.Token)
	if errdefs.IsNotFound(err) || err == nil && t.Metadata.ID != rec.Token {
		_ = s.sessions.Delete(ctx, rec)
		return auth.Principal{}, fmt.Errorf("the session's token was revoked: %w", errdefs.ErrUnauthenticated)
	}
	if err != nil {
		return auth.Principal{}, err
	}
	return auth.Principal{Kind: t.Spec.Kind, Tenant: t.Spec.Tenant, Host: t.Spec.Host}, nil
}

// EndSession deletes a session (sign-out); an unknown one is no error.
func (s *Service) EndSession(ctx context.Context, secret string) error {
	_, err := s.st.Commit(ctx, nil, []store.Op{s.sessions.DeleteOp(auth.Hash(secret))})
	return err
}

// collectSessions removes the expired sessions.
func (s *Service) collectSessions(ctx context.Context) {
	recs, _, _, err := s.sessions.List(ctx, store.ListOptions{})
	if err != nil {
		return
	}
	now := s.now()
	for _, r := range recs {
		if !now.Before(r.Expires) {
			_ = s.sessions.Delete(ctx, r)
		}
	}
}
