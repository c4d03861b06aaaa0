package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/client"
	"github.com/eci-dev/eci/internal/poll"
)

func TestPriceBookLoadedAndReloaded(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "prices.yaml")
	write := func(text string) {
		t.Helper()
		if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// An invalid book stops the server from starting, naming the line.
	write("periods:\n  - from: 2026-01-01\n    vcpu: 0.1\n    memroy: 0.1\n")
	cfg := Config{Addr: "127.0.0.1:0", DataDir: filepath.Join(dir, "bad"), Name: "test", PriceBookFile: file}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "line 4: field memroy not found") {
		t.Fatalf("a server on an invalid price book: %v", err)
	}

	book := "currency: EUR\nperiods:\n  - from: 2026-01-01\n    vcpu: 0.1\n    memory: 0.1\n"
	write(book)
	r := start(t, filepath.Join(dir, "good"), func(c *Config) { c.PriceBookFile, c.PriceBookEvery = file, 50*time.Millisecond })
	periods := func() int { return len(r.srv.Service().PriceBook().Periods) }
	b, err := r.admin.Bill(context.Background(), client.BillQuery{})
	if err != nil || b.Currency != "EUR" || periods() != 1 {
		t.Fatalf("the book's currency %+v (%v), %d periods", b, err, periods())
	}
	// New prices from a date to come: taken.
	book += "  - from: 2999-01-01\n    vcpu: 0.2\n    memory: 0.2\n"
	write(book)
	poll.Eventually(t, 10*time.Second, "the changed book taken", func() error {
		if n := periods(); n != 2 {
			return fmt.Errorf("%d periods", n)
		}
		return nil
	})
	// Prices of a period begun changed, or a file not valid: not taken.
	write(strings.Replace(book, "vcpu: 0.1", "vcpu: 0.05", 1))
	time.Sleep(300 * time.Millisecond)
	write("currency: GBP\nperiods:\n  - from: 2026-01-01\n    vcpu: -1\n    memory: 0.1\n")
	time.Sleep(300 * time.Millisecond)
	if p := r.srv.Service().PriceBook(); len(p.Periods) != 2 || p.Periods[0].VCPU.FloatString(2) != "0.10" {
		t.Fatalf("the book in use after refused changes: %+v", p.Periods)
	}
	// A server started again on a book that changes the past: refused,
	// naming the line; a server without a book takes the one in use.
	r.stop()
	write(strings.Replace(book, "vcpu: 0.1", "vcpu: 0.05", 1))
	again, err := New(Config{Addr: "127.0.0.1:0", DataDir: filepath.Join(dir, "good"), Name: "test", PriceBookFile: file})
	if err != nil {
		t.Fatal(err)
	}
	if err := again.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "line 3: the period from 2026-01-01T00:00:00Z has begun") {
		t.Fatalf("a server on a book that changes the past: %v", err)
	}
	r = start(t, filepath.Join(dir, "good"))
	if p := r.srv.Service().PriceBook(); len(p.Periods) != 2 || p.Currency != "EUR" {
		t.Fatalf("a server without --price-book uses %+v, want the book in use", p)
	}
	if _, err := r.admin.Bill(context.Background(), client.BillQuery{By: "colour"}); err == nil || !strings.Contains(err.Error(), "by \"colour\"") {
		t.Fatalf("by colour over HTTP: %v", err)
	}
}

func TestCostMetricsAreTheAdmins(t *testing.T) {
	quietLogs()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := start(t, t.TempDir())
	r.fakeHost(ctx, t, "h1")
	tenant := r.token(t, apiv1.TokenSpec{Kind: apiv1.TokenTenant, Tenant: "acme"})
	for _, team := range []string{"a", "b"} {
		g := group("w" + team)
		g.Spec.Tags = map[string]string{"team": team}
		if _, _, err := tenant.CreateGroup(ctx, g); err != nil {
			t.Fatal(err)
		}
	}
	scrape := func(token string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, r.srv.URL()+"/metrics/billing", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := httpClient(t, r.srv).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	var body string
	poll.Eventually(t, 20*time.Second, "both groups' cost", func() error {
		time.Sleep(1100 * time.Millisecond) // a billed second at least
		var code int
		code, body = scrape(r.srv.AdminToken())
		if code != 200 || !strings.Contains(body, `eci_cost_total{currency="USD",tag="a",tenant="acme"}`) || !strings.Contains(body, `eci_billed_seconds_total{state="running",tag="b",tenant="acme"}`) {
			return errors.New(body)
		}
		return nil
	})
	// Not on the open /metrics, and not for a tenant's token.
	resp, err := httpClient(t, r.srv).Get(r.srv.URL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	open, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(open), "eci_cost_total") {
		t.Fatal("cost metrics on the open /metrics")
	}
	tok, err := r.admin.CreateToken(ctx, &apiv1.Token{Spec: apiv1.TokenSpec{Kind: apiv1.TokenTenant, Tenant: "acme"}})
	if err != nil {
		t.Fatal(err)
	}
	if code, _ := scrape(tok.Status.Token); code != http.StatusForbidden {
		t.Fatalf("a tenant scraped the cost metrics: %d", code)
	}
}

// httpClient trusts the server's CA.
func httpClient(t *testing.T, srv *Server) *http.Client {
	t.Helper()
	pem, err := os.ReadFile(srv.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}
