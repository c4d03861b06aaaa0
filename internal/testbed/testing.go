package testbed

import (
	"context"
	"log/slog"
	"testing"
	"time"
)

// New starts a bed for a test and stops it in t.Cleanup. A bed that can't start
// fails the test with the reason (never a skip: a missing part is a setup error
// that names what to run).
func New(t testing.TB, opts Options) *Bed {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	b, err := Start(ctx, opts)
	if err != nil {
		t.Fatalf("test bed: %v", err)
	}
	t.Logf("test bed slot %d ready in %s (dir %s)", b.Slot, time.Since(start).Round(time.Millisecond), b.Dir)
	t.Cleanup(func() {
		if err := b.Stop(); err != nil {
			t.Errorf("stop test bed: %v", err)
		}
	})
	return b
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(p))
	return len(p), nil
}
