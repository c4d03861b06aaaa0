package control

import (
	"testing"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/auth"
	"github.com/eci-dev/eci/internal/errdefs"
	"github.com/eci-dev/eci/internal/store"
)

func TestConsoleSessions(t *testing.T) {
	e := newEnv(t, false)
	if _, err := e.svc.PutTenant(e.ctx, auth.Admin, &apiv1.Tenant{Metadata: apiv1.ObjectMeta{Name: "acme"}}); err != nil {
		t.Fatal(err)
	}
	token := func(spec apiv1.TokenSpec) *apiv1.Token {
		t.Helper()
		tok, err := e.svc.CreateToken(e.ctx, auth.Admin, &apiv1.Token{Spec: spec})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	tenant := token(apiv1.TokenSpec{Kind: apiv1.TokenTenant, Tenant: "acme"})
	host := token(apiv1.TokenSpec{Kind: apiv1.TokenHost, Host: "h1"})
	if _, _, err := e.svc.StartSession(e.ctx, host.Status.Token); !errdefs.IsPermissionDenied(err) {
		t.Fatalf("a host's token opened a session: %v", err)
	}
	if _, _, err := e.svc.StartSession(e.ctx, "nope"); !errdefs.IsUnauthenticated(err) {
		t.Fatalf("an unknown token: %v", err)
	}
	sess, p, err := e.svc.StartSession(e.ctx, tenant.Status.Token)
	if err != nil || p.Tenant != "acme" || sess == tenant.Status.Token {
		t.Fatalf("session %q of %+v (%v)", sess, p, err)
	}
	if p, err := e.svc.SessionPrincipal(e.ctx, sess); err != nil || p.Tenant != "acme" {
		t.Fatalf("the session's principal %+v (%v)", p, err)
	}
	// Nothing stored names the session's secret or the token.
	recs, _, _, err := e.svc.sessions.List(e.ctx, store.ListOptions{})
	if err != nil || len(recs) != 1 || recs[0].Metadata.ID == sess || recs[0].Token == tenant.Status.Token {
		t.Fatalf("stored sessions %+v (%v)", recs, err)
	}
	// Sign-out ends it.
	if err := e.svc.EndSession(e.ctx, sess); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.SessionPrincipal(e.ctx, sess); !errdefs.IsUnauthenticated(err) {
		t.Fatalf("a session signed out: %v", err)
	}
	// The token's revocation ends its sessions.
	sess, _, _ = e.svc.StartSession(e.ctx, tenant.Status.Token)
	if _, err := e.svc.RevokeToken(e.ctx, auth.Admin, tenant.Metadata.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.SessionPrincipal(e.ctx, sess); !errdefs.IsUnauthenticated(err) {
		t.Fatalf("a session of a revoked token: %v", err)
	}
	// Expiry, and the monitor's removal of expired sessions.
	other := token(apiv1.TokenSpec{Kind: apiv1.TokenTenant, Tenant: "acme"})
	sess, _, _ = e.svc.StartSession(e.ctx, other.Status.Token)
	e.clock.Add(SessionTTL + time.Second)
	if _, err := e.svc.SessionPrincipal(e.ctx, sess); !errdefs.IsUnauthenticated(err) {
		t.Fatalf("an expired session: %v", err)
	}
	e.svc.StartSession(e.ctx, other.Status.Token)
	e.clock.Add(SessionTTL + time.Second)
	if err := e.svc.CollectGarbage(e.ctx); err != nil {
		t.Fatal(err)
	}
	if n, _ := e.svc.sessions.Count(e.ctx, ""); n != 0 {
		t.Fatalf("%d sessions left after they expired", n)
	}
}
