// Package poll is the tests' way to wait for a condition: Eventually until it
// holds, Consistently while it must keep holding. Both are bounded and check
// often, so a test waits no longer than the condition takes, and a test that
// proves "nothing happened" fails as soon as something does rather than after
// a blind sleep.
package poll

import (
	"context"
	"testing"
	"time"
)

// Interval is how often a condition is checked.
const Interval = 50 * time.Millisecond

// Eventually checks cond every Interval until it returns nil, and fails t
// (naming what and cond's last error) when timeout passes first.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	if err := Until(context.Background(), timeout, cond); err != nil {
		t.Fatalf("%s: not so after %s: %v", what, timeout, err)
	}
}

// Consistently checks cond every Interval for d, and fails t at the first
// error (naming what and the error).
func Consistently(t testing.TB, d time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		if err := cond(); err != nil {
			t.Fatalf("%s: no longer so after %s: %v", what, d-time.Until(deadline), err)
			return
		}
		if time.Now().After(deadline) {
			return
		}
		time.Sleep(Interval)
	}
}

// Until checks cond every Interval until it returns nil (nil), ctx ends or
// timeout passes (cond's last error), for the places that are not a test's
// goroutine (benchmarks, test beds) and must not call t.Fatal.
func Until(ctx context.Context, timeout time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(Interval):
		}
	}
}
