package server

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/auth"
	"github.com/eci-dev/eci/internal/errdefs"
)

// ensureAdminToken reads or makes the admin token and records it in etcd, so
// every server on the same etcd accepts it.
func (s *Server) ensureAdminToken(ctx context.Context) error {
	if s.cfg.AdminToken == "" {
		path := filepath.Join(s.cfg.DataDir, "admin.token")
		data, err := os.ReadFile(path)
		switch {
		case err == nil:
			s.cfg.AdminToken = strings.TrimSpace(string(data))
		case os.IsNotExist(err):
			s.cfg.AdminToken = auth.NewSecret()
			if err := os.WriteFile(path, []byte(s.cfg.AdminToken+"\n"), 0o600); err != nil {
				return fmt.Errorf("write the admin token: %w", err)
			}
		default:
			return fmt.Errorf("read the admin token: %w", err)
		}
	}
	return s.svc.EnsureAdminToken(ctx, s.cfg.AdminToken)
}

// authenticate reads the caller's token from etcd on every request (one
// linearizable read by its hash): a revoked token is refused by every server
// from the request after its revocation, with no cache to outlive it. Then
// the token's rate limit (429 with Retry-After past it).
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		secret, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || secret == "" {
			writeError(w, r, fmt.Errorf("an Authorization: Bearer <token> header is required: %w", errdefs.ErrUnauthenticated))
			return
		}
		p, err := s.svc.Authenticate(r.Context(), secret)
		if err != nil {
			writeError(w, r, err)
			return
		}
		if ok, wait := s.limits.allow(auth.Hash(secret), p.Kind); !ok {
			limit := s.limits.tenant
			if p.Kind == apiv1.TokenHost {
				limit = s.limits.host
			}
			tooManyRequests(w, r, wait, limit)
			return
		}
		next.ServeHTTP(w, r.WithContext(auth.WithPrincipal(r.Context(), p)))
	})
}

func principal(r *http.Request) auth.Principal {
	p, _ := auth.FromContext(r.Context())
	return p
}
