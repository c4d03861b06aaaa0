package server

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

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

// authCache remembers recent token lookups for a short while, so a busy
// client costs one etcd read per TTL, not one per request.
type authCache struct {
	mu      sync.Mutex
	entries map[string]cachedPrincipal
}

type cachedPrincipal struct {
	p       auth.Principal
	expires time.Time
}

const authCacheTTL = 10 * time.Second

func (s *Server) authenticate(next http.Handler) http.Handler {
	cache := &authCache{entries: map[string]cachedPrincipal{}}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Get("Authorization")
		secret, ok := strings.CutPrefix(h, "Bearer ")
		if !ok || secret == "" {
			writeError(w, r, fmt.Errorf("an Authorization: Bearer <token> header is required: %w", errdefs.ErrUnauthenticated))
			return
		}
		key := auth.Hash(secret)
		now := time.Now()
		cache.mu.Lock()
		c, hit := cache.entries[key]
		cache.mu.Unlock()
		if !hit || now.After(c.expires) {
			p, err := s.svc.Authenticate(r.Context(), secret)
			if err != nil {
				writeError(w, r, err)
				return
			}
			c = cachedPrincipal{p: p, expires: now.Add(authCacheTTL)}
			cache.mu.Lock()
			if len(cache.entries) > 10000 {
				cache.entries = map[string]cachedPrincipal{}
			}
			cache.entries[key] = c
			cache.mu.Unlock()
		}
		next.ServeHTTP(w, r.WithContext(auth.WithPrincipal(r.Context(), c.p)))
	})
}

func principal(r *http.Request) auth.Principal {
	p, _ := auth.FromContext(r.Context())
	return p
}
