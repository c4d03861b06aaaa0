package control

import (
	"strings"
	"testing"

	"github.com/eci-dev/eci/internal/billing"
	"github.com/eci-dev/eci/internal/errdefs"
)

// Two servers on one store rate with one book: the one in use, stored.
func TestPriceBookShared(t *testing.T) {
	e := newEnv(t, false)
	a, b := e.svc, New(e.svc.st, e.svc.opts)
	if err := b.ApplyPriceBook(e.ctx, []byte(billing.DefaultBook), false); err != nil {
		t.Fatal(err)
	}
	book := "currency: EUR\nperiods:\n  - from: 2026-01-01\n    vcpu: 0.1\n    memory: 0.1\n"
	if err := a.ApplyPriceBook(e.ctx, []byte(book), true); err != nil {
		t.Fatalf("the first book from a file replaces the list prices: %v", err)
	}
	if err := b.RefreshPriceBook(e.ctx); err != nil || b.PriceBook().Currency != "EUR" {
		t.Fatalf("the other server's book after a refresh: %+v (%v)", b.PriceBook(), err)
	}
	// A server started without a book takes the one in use.
	c := New(e.svc.st, e.svc.opts)
	if err := c.ApplyPriceBook(e.ctx, []byte(billing.DefaultBook), false); err != nil || c.PriceBook().Currency != "EUR" {
		t.Fatalf("a server without a book: %+v (%v)", c.PriceBook(), err)
	}
	// A change of the past from any server is refused; the stored one stays.
	err := b.ApplyPriceBook(e.ctx, []byte(strings.Replace(book, "vcpu: 0.1", "vcpu: 0.2", 1)), true)
	if !errdefs.IsInvalid(err) || !strings.Contains(err.Error(), "line 3") {
		t.Fatalf("a change of the past: %v", err)
	}
	if err := a.RefreshPriceBook(e.ctx); err != nil || a.PriceBook().Periods[0].VCPU.FloatString(1) != "0.1" {
		t.Fatalf("the book in use after a refused change: %+v (%v)", a.PriceBook(), err)
	}
}
