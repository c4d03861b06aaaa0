package server

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
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

// authenticate reads the caller's token from etcd on every request (one
// linearizable read by its hash): a revoked token is refused by every server
// from the request after its revocation, with no cache to outlive it. A
// token this server knows is rate-limited before that read (429 with
// Retry-After past its rate: it costs the store nothing); the lease's
// routes (register, heartbeat) are not limited, so no tenant's flood of
// probe events can make a host miss its lease. An address that presents
// many unknown tokens is slowed down the same way.
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		secret, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || secret == "" {
			writeError(w, r, fmt.Errorf("an Authorization: Bearer <token> header is required: %w", errdefs.ErrUnauthenticated))
			return
		}
		now := time.Now()
		key := auth.Hash(secret)
		exempt := leaseRoute(r)
		if known, ok, wait, limit := s.limits.before(key, now); known && !ok && !exempt {
			tooManyRequests(w, r, wait, overRate(limit))
			return
		} else if !known {
			addr, _, _ := net.SplitHostPort(r.RemoteAddr)
			if failing, wait := s.limits.failing(addr, now); failing {
				tooManyRequests(w, r, wait, "too many unknown tokens from this address")
				return
			}
			p, err := s.svc.Authenticate(r.Context(), secret)
			if errdefs.IsUnauthenticated(err) {
				s.limits.failed(addr, now)
			}
			if err != nil {
				writeError(w, r, err)
				return
			}
			if ok, wait, limit := s.limits.after(key, p.Kind, now); !ok && !exempt {
				tooManyRequests(w, r, wait, overRate(limit))
				return
			}
			next.ServeHTTP(w, r.WithContext(auth.WithToken(auth.WithPrincipal(r.Context(), p), key)))
			return
		}
		p, err := s.svc.Authenticate(r.Context(), secret)
		if err != nil {
			writeError(w, r, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(auth.WithToken(auth.WithPrincipal(r.Context(), p), key)))
	})
}

// leaseRoute tells the requests that keep a host's lease.
func leaseRoute(r *http.Request) bool {
	return (r.Method == http.MethodPut && strings.HasPrefix(r.URL.Path, "/v1/hosts/") && strings.HasSuffix(r.URL.Path, "/heartbeat")) ||
		(r.Method == http.MethodPost && r.URL.Path == "/v1/hosts")
}

func principal(r *http.Request) auth.Principal {
	p, _ := auth.FromContext(r.Context())
	return p
}
