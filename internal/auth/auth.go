// Package auth says who a caller is (a Principal, from a bearer token) and
// what it may touch. The admin sees everything; a tenant sees only its own
// groups; a host (an agent) sees only the groups placed on it and reports
// their status.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/errdefs"
)

// Principal is an authenticated caller.
type Principal struct {
	Kind   apiv1.TokenKind
	Tenant string
	Host   string
}

// Admin is the all-powerful principal (also used by the server itself).
var Admin = Principal{Kind: apiv1.TokenAdmin}

// IsAdmin tells whether p may do anything.
func (p Principal) IsAdmin() bool { return p.Kind == apiv1.TokenAdmin }

func (p Principal) String() string {
	switch p.Kind {
	case apiv1.TokenTenant:
		return "tenant/" + p.Tenant
	case apiv1.TokenHost:
		return "host/" + p.Host
	default:
		return "admin"
	}
}

// CanSeeGroup tells whether p may read a group of tenant placed on host.
func (p Principal) CanSeeGroup(tenant, host string) bool {
	switch p.Kind {
	case apiv1.TokenAdmin:
		return true
	case apiv1.TokenTenant:
		return tenant == p.Tenant
	case apiv1.TokenHost:
		return host != "" && host == p.Host
	}
	return false
}

// Require fails with ErrPermissionDenied unless p is one of kinds.
func (p Principal) Require(what string, kinds ...apiv1.TokenKind) error {
	for _, k := range kinds {
		if p.Kind == k {
			return nil
		}
	}
	return fmt.Errorf("%s may not %s: %w", p, what, errdefs.ErrPermissionDenied)
}

type principalKey struct{}

// WithPrincipal returns a context carrying p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

type tokenKey struct{}

// WithToken returns a context carrying the id (hash) of the caller's token.
func WithToken(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, tokenKey{}, id)
}

// TokenFrom returns the id of the caller's token ("" when unknown).
func TokenFrom(ctx context.Context) string {
	id, _ := ctx.Value(tokenKey{}).(string)
	return id
}

// FromContext returns the context's principal; ok is false when it has none.
func FromContext(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// NewSecret makes a random token secret.
func NewSecret() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("crypto/rand failed: %v", err))
	}
	return hex.EncodeToString(b)
}

// Hash is how tokens are stored: the hex SHA-256 of the secret.
func Hash(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// Equal compares secrets in constant time.
func Equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }
