package server

import (
	"fmt"
	"net/http"
	"time"

	"github.com/eci-dev/eci/internal/auth"
	"github.com/eci-dev/eci/internal/errdefs"
)

// consoleLogin is the console's check of a token (its login, and its
// session cookie on every page): the API's check, with the same rate
// limits of a token and of an address presenting unknown ones, and the
// same revocation (read from etcd every time).
func (s *Server) consoleLogin(r *http.Request, secret string) (auth.Principal, error) {
	now := time.Now()
	key, addr := auth.Hash(secret), clientAddr(r)
	known, allowed, _, limit, _ := s.limits.before(key, now)
	switch {
	case known && !allowed:
		return auth.Principal{}, fmt.Errorf("%s: %w", overRate(limit), errdefs.ErrUnavailable)
	case !known:
		if failing, _ := s.limits.failing(addr, now); failing {
			return auth.Principal{}, fmt.Errorf("too many unknown tokens from this address: %w", errdefs.ErrUnauthenticated)
		}
	}
	p, err := s.svc.Authenticate(r.Context(), secret)
	if errdefs.IsUnauthenticated(err) {
		s.limits.failed(addr, now)
		s.limits.forget(key)
		return p, fmt.Errorf("the token is not valid (or was revoked): %w", err)
	}
	if err != nil {
		return p, err
	}
	if !known {
		if ok, _, limit := s.limits.after(key, p.Kind, now); !ok {
			return auth.Principal{}, fmt.Errorf("%s: %w", overRate(limit), errdefs.ErrUnavailable)
		}
	}
	return p, nil
}
