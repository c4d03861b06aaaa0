package server

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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

	write("currency: EUR\nperiods:\n  - from: 2026-01-01\n    vcpu: 0.1\n    memory: 0.1\n")
	r := start(t, filepath.Join(dir, "good"), func(c *Config) { c.PriceBookFile, c.PriceBookEvery = file, 50*time.Millisecond })
	currency := func() string {
		b, err := r.admin.Bill(context.Background(), client.BillQuery{})
		if err != nil {
			t.Fatal(err)
		}
		return b.Currency
	}
	if c := currency(); c != "EUR" {
		t.Fatalf("currency %s, want the book's EUR", c)
	}
	write("currency: CHF\nperiods:\n  - from: 2026-01-01\n    vcpu: 0.1\n    memory: 0.1\n")
	poll.Eventually(t, 10*time.Second, "the changed book taken", func() error {
		if c := currency(); c != "CHF" {
			return errors.New(c)
		}
		return nil
	})
	// An invalid change is not taken: the book in use stays.
	write("currency: GBP\nperiods:\n  - from: 2026-01-01\n    vcpu: -1\n    memory: 0.1\n")
	time.Sleep(300 * time.Millisecond)
	if c := currency(); c != "CHF" {
		t.Fatalf("currency %s after an invalid change, want CHF kept", c)
	}
	if _, err := r.admin.Bill(context.Background(), client.BillQuery{By: "colour"}); err == nil || !strings.Contains(err.Error(), "by \"colour\"") {
		t.Fatalf("by colour over HTTP: %v", err)
	}
}
