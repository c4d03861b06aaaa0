package server

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/auth"
	"github.com/eci-dev/eci/internal/errdefs"
)

// ensureAdminToken reads or makes the admin token and records it in etcd, so
// every server on the same etcd accepts it.
func (s *Server) ensureAdminToken(ctx context.Context) error {
	named := s.cfg.AdminToken != "" // by the operator: it replaces any other
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
	return s.svc.EnsureAdminToken(ctx, s.cfg.AdminToken, named)
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
		addr := clientAddr(r)
		known, allowed, wait, limit, kind := s.limits.before(key, now)
		switch {
		case known && !allowed && !(kind == apiv1.TokenHost && leaseRoute(r)):
			tooManyRequests(w, r, wait, overRate(limit))
			return
		case !known && !leaseRoute(r):
			// (A host's first lease renewal after this server started is
			// not held up by another's unknown tokens from its address.)
			if failing, wait := s.limits.failing(addr, now); failing {
				tooManyRequests(w, r, wait, "too many unknown tokens from this address")
				return
			}
		}
		p, err := s.svc.Authenticate(r.Context(), secret)
		if errdefs.IsUnauthenticated(err) {
			s.limits.failed(addr, now)
			s.limits.forget(key) // a revoked token keeps no bucket
		}
		if err != nil {
			writeError(w, r, err)
			return
		}
		if !known {
			if ok, wait, limit := s.limits.after(key, p.Kind, now); !ok && !(p.Kind == apiv1.TokenHost && leaseRoute(r)) {
				tooManyRequests(w, r, wait, overRate(limit))
				return
			}
		}
		next.ServeHTTP(w, r.WithContext(auth.WithToken(auth.WithPrincipal(r.Context(), p), key)))
	})
}

// leaseRoute tells the requests that keep a host's lease (exempt from a
// host token's rate): PUT /v1/hosts/{name}/heartbeat and POST /v1/hosts.
func leaseRoute(r *http.Request) bool {
	if r.Method == http.MethodPost {
		return r.URL.Path == "/v1/hosts"
	}
	rest, ok := strings.CutPrefix(r.URL.Path, "/v1/hosts/")
	name, ok2 := strings.CutSuffix(rest, "/heartbeat")
	return r.Method == http.MethodPut && ok && ok2 && name != "" && !strings.Contains(name, "/")
}

// clientAddr is the caller's address, IPv6 ones by their /64 (one host
// holds a whole /64).
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	if ip.Is4() || ip.Is4In6() {
		return ip.Unmap().String()
	}
	p, _ := ip.Prefix(64)
	return p.String()
}

func principal(r *http.Request) auth.Principal {
	p, _ := auth.FromContext(r.Context())
	return p
}
