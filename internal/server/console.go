package server

import (
	"fmt"
	"net/http"
	"time"

	"github.com/eci-dev/eci/internal/auth"
	"github.com/eci-dev/eci/internal/errdefs"
	"github.com/eci-dev/eci/internal/log"
)

// consoleSessions are the console's sign-ins (control/sessions.go), with
// the API's guards: a token's rate limit and an address presenting
// unknown tokens or sessions slowed down.
type consoleSessions struct{ s *Server }

// Login trades a token for a session.
func (c consoleSessions) Login(r *http.Request, token string) (string, error) {
	now := time.Now()
	key, addr := auth.Hash(token), clientAddr(r)
	known, allowed, _, limit, _ := c.s.limits.before(key, now)
	switch {
	case known && !allowed:
		return "", fmt.Errorf("%s: %w", overRate(limit), errdefs.ErrExhausted)
	case !known:
		if failing, _ := c.s.limits.failing(addr, now); failing {
			return "", fmt.Errorf("too many unknown tokens from this address: wait a little: %w", errdefs.ErrExhausted)
		}
	}
	sess, p, err := c.s.svc.StartSession(r.Context(), token)
	if errdefs.IsUnauthenticated(err) {
		c.s.limits.failed(addr, now)
		c.s.limits.forget(key)
		return "", fmt.Errorf("this token is not valid (or was revoked): %w", err)
	}
	if err == nil && !known {
		// The token's rate from now on, as the API's first request of it.
		_, _, _ = c.s.limits.after(key, p.Kind, now)
	}
	return sess, err
}

// Principal is a live session's caller.
func (c consoleSessions) Principal(r *http.Request, sess string) (auth.Principal, error) {
	now, addr, key := time.Now(), clientAddr(r), auth.Hash(sess)
	// A session's pages have a rate of their own, as a token's requests.
	known, allowed, _, limit, _ := c.s.limits.before(key, now)
	switch {
	case known && !allowed:
		return auth.Principal{}, fmt.Errorf("%s: %w", overRate(limit), errdefs.ErrExhausted)
	case !known:
		if failing, _ := c.s.limits.failing(addr, now); failing {
			return auth.Principal{}, fmt.Errorf("too many unknown sessions from this address: %w", errdefs.ErrExhausted)
		}
	}
	p, err := c.s.svc.SessionPrincipal(r.Context(), sess)
	if errdefs.IsUnauthenticated(err) {
		c.s.limits.failed(addr, now)
		c.s.limits.forget(key)
	}
	if err == nil && !known {
		if ok, _, limit := c.s.limits.after(key, p.Kind, now); !ok {
			return auth.Principal{}, fmt.Errorf("%s: %w", overRate(limit), errdefs.ErrExhausted)
		}
	}
	return p, err
}

// Logout ends a session.
func (c consoleSessions) Logout(r *http.Request, sess string) {
	if err := c.s.svc.EndSession(r.Context(), sess); err != nil {
		log.G(r.Context()).Warn("console: end a session", "err", err)
	}
}
