package poll

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

func TestUntilReturnsOnceTheConditionHolds(t *testing.T) {
	var n atomic.Int32
	err := Until(context.Background(), 5*time.Second, func() error {
		if n.Add(1) < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	if err != nil || n.Load() != 3 {
		t.Fatalf("Until = %v after %d checks, want nil after 3", err, n.Load())
	}
}

func TestUntilGivesTheLastErrorAtTheDeadline(t *testing.T) {
	start := time.Now()
	err := Until(context.Background(), 200*time.Millisecond, func() error { return errors.New("never") })
	if err == nil || err.Error() != "never" {
		t.Fatalf("Until = %v, want the condition's error", err)
	}
	if took := time.Since(start); took < 200*time.Millisecond || took > 2*time.Second {
		t.Fatalf("Until took %s for a 200ms timeout", took)
	}
}

func TestUntilStopsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	if err := Until(ctx, time.Minute, func() error { return errors.New("never") }); err == nil {
		t.Fatal("Until = nil for a condition that never held")
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("Until took %s after its context ended", took)
	}
}

// recorder is a testing.TB that records a Fatalf instead of stopping.
type recorder struct {
	testing.TB
	failed bool
}

func (r *recorder) Helper() {}
func (r *recorder) Fatalf(string, ...any) {
	r.failed = true
}

func TestConsistentlyFailsAtTheFirstError(t *testing.T) {
	var n atomic.Int32
	r := &recorder{TB: t}
	start := time.Now()
	Consistently(r, 10*time.Second, "quiet", func() error {
		if n.Add(1) == 2 {
			return errors.New("something happened")
		}
		return nil
	})
	if !r.failed {
		t.Fatal("Consistently did not fail on an error")
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("Consistently took %s to see the error, want at once", took)
	}
}

func TestConsistentlyHoldsForItsDuration(t *testing.T) {
	r := &recorder{TB: t}
	start := time.Now()
	Consistently(r, 200*time.Millisecond, "quiet", func() error { return nil })
	if r.failed {
		t.Fatal("Consistently failed a condition that held")
	}
	if took := time.Since(start); took < 200*time.Millisecond {
		t.Fatalf("Consistently returned after %s, before its 200ms", took)
	}
}
