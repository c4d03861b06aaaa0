package server

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/auth"
	"github.com/eci-dev/eci/internal/client"
	"github.com/eci-dev/eci/internal/errdefs"
)

// A revoked token is refused by every server from the very next request;
// tokens are listed by id, never by secret; the admin token is not revoked.
func TestTokenRevocation(t *testing.T) {
	ctx := context.Background()
	a, b := twoServers(t)
	if _, err := a.admin.PutTenant(ctx, &apiv1.Tenant{Metadata: apiv1.ObjectMeta{Name: "acme"}}); err != nil {
		t.Fatal(err)
	}
	tok, err := a.admin.CreateToken(ctx, &apiv1.Token{Spec: apiv1.TokenSpec{Kind: apiv1.TokenTenant, Tenant: "acme"}})
	if err != nil {
		t.Fatal(err)
	}
	onB := clientFor(t, b.srv, tok.Status.Token)
	for range 5 { // warm whatever a server might remember
		if _, err := onB.ListGroups(ctx, client.ListOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	list, err := a.admin.ListTokens(ctx)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, lt := range list {
		if lt.Status.Token != "" || strings.Contains(lt.Metadata.ID, tok.Status.Token) {
			t.Fatalf("token list shows a secret: %+v", lt)
		}
		found = found || (lt.Metadata.ID == auth.Hash(tok.Status.Token) && lt.Spec.Tenant == "acme")
	}
	if !found {
		t.Fatalf("the new token is not listed: %+v", list)
	}
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	events, err := onB.WatchGroups(wctx, client.ListOptions{}, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.admin.RevokeToken(ctx, auth.Hash(tok.Status.Token)); err != nil {
		t.Fatal(err)
	}
	// The watch it had open ends at the next bookmark.
	ended := time.After(20 * time.Second)
	for done := false; !done; {
		select {
		case ev, ok := <-events:
			if !ok || (ev.Err != nil && strings.Contains(ev.Err.Error(), "revoked")) {
				done = true
			}
		case <-ended:
			t.Fatal("the revoked token's watch went on for 20 s")
		}
	}
	for name, srv := range map[string]*running{"the server that revoked it": a, "the other server": b} {
		code, st := rawRequest(t, srv, "GET", "/v1/containergroups", tok.Status.Token, "")
		if code != http.StatusUnauthorized || st.Reason != "Unauthorized" {
			t.Errorf("%s answered a revoked token with %d %+v", name, code, st)
		}
	}
	if _, err := a.admin.RevokeToken(ctx, auth.Hash(a.srv.AdminToken())); !errdefs.IsInvalid(err) || !strings.Contains(err.Error(), "--admin-token") {
		t.Fatalf("revoking the admin token: %v", err)
	}
	if _, err := a.admin.RevokeToken(ctx, "no-such-token"); !errdefs.IsNotFound(err) {
		t.Fatalf("revoking an unknown token: %v", err)
	}
	if _, err := clientFor(t, b.srv, a.srv.AdminToken()).ListTokens(ctx); err != nil {
		t.Fatalf("the admin token after a refused revoke: %v", err)
	}
}

// Changing the admin token revokes the old one as the server starts.
func TestAdminTokenChange(t *testing.T) {
	dir := t.TempDir()
	r := start(t, dir, func(c *Config) { c.AdminToken = "the-first-admin-token-0123456789" })
	r.stop()
	r = start(t, dir, func(c *Config) { c.AdminToken = "the-second-admin-token-012345678" })
	if code, _ := rawRequest(t, r, "GET", "/v1/tokens", "the-first-admin-token-0123456789", ""); code != http.StatusUnauthorized {
		t.Fatalf("the former admin token answered %d", code)
	}
	if code, _ := rawRequest(t, r, "GET", "/v1/tokens", "the-second-admin-token-012345678", ""); code != http.StatusOK {
		t.Fatalf("the new admin token answered %d", code)
	}
	r.stop()
	// A server started again with the old token does not bring it back.
	srv, err := New(Config{Addr: "127.0.0.1:0", DataDir: dir, Name: "test", AdminToken: "the-first-admin-token-0123456789"})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "revoked when another replaced it") {
		t.Fatalf("a server given a revoked admin token: %v", err)
	}
}
