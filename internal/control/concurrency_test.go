package control

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/auth"
	"github.com/eci-dev/eci/internal/poll"
	"github.com/eci-dev/eci/internal/store"
)

// 1,000 concurrent creates on hosts that fit 600: exactly 600 are placed, the
// other 400 fail (fail-fast), no host is over-committed and no IP is given
// twice. The placer commits its decisions in batches (placebatch.go); with
// a second placer on the same store, batches conflict and their groups are
// placed again one by one.
func TestConcurrentCreatesNeverOvercommit(t *testing.T) {
	t.Run("one placer", func(t *testing.T) { testConcurrentCreates(t, false) })
	t.Run("two placers", func(t *testing.T) { testConcurrentCreates(t, true) })
}

func testConcurrentCreates(t *testing.T, second bool) {
	e := newEnv(t, true)
	if second {
		other := New(e.svc.st, e.svc.opts)
		ctx, cancel := context.WithCancel(e.ctx)
		done := make(chan struct{})
		go func() { defer close(done); _ = other.RunPlacer(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
	}
	e.vswitch(t, "vsw-a", "zone-a", "198.19.128.0/22")
	for i := 0; i < 6; i++ {
		// 100 vCPU each: 100 groups of 1 vCPU / 2 GiB.
		e.host(t, fmt.Sprintf("h%d", i), "zone-a", 100000, 1<<20, 1000)
	}
	const creates = 1000
	var wg sync.WaitGroup
	errs := make(chan error, creates)
	sem := make(chan struct{}, 64)
	for i := 0; i < creates; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			g := groupSpec(fmt.Sprintf("g%d", i), 1, 2)
			g.Spec.FailStrategy = apiv1.FailFast
			_, _, err := e.svc.CreateGroup(e.ctx, auth.Admin, g)
			errs <- err
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	var groups []*apiv1.ContainerGroup
	poll.Eventually(t, 2*time.Minute, "no group Scheduling", func() error {
		var err error
		groups, _, _, err = e.svc.groups.List(e.ctx, store.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		scheduling := 0
		for _, g := range groups {
			if g.Status.State == apiv1.StateScheduling {
				scheduling++
			}
		}
		if scheduling != 0 {
			return fmt.Errorf("%d groups still Scheduling", scheduling)
		}
		return nil
	})
	placed, failed := 0, 0
	perHost := map[string]int{}
	ips := map[string]string{}
	for _, g := range groups {
		switch g.Status.State {
		case apiv1.StatePending:
			placed++
			perHost[g.Status.Host]++
			if other, dup := ips[g.Status.IP]; dup {
				t.Fatalf("IP %s given to %s and %s", g.Status.IP, other, g.Metadata.ID)
			}
			ips[g.Status.IP] = g.Metadata.ID
		case apiv1.StateScheduleFailed:
			failed++
		default:
			t.Fatalf("group %s in state %s", g.Metadata.ID, g.Status.State)
		}
	}
	if placed != 600 || failed != 400 {
		t.Fatalf("placed %d, failed %d; want 600 and 400", placed, failed)
	}
	for h, n := range perHost {
		if u := e.usageOf(t, h); n != 100 || u.MilliCPU != 100000 || u.Pods != 100 {
			t.Fatalf("host %s: %d groups, usage %+v; want exactly full", h, n, u)
		}
	}
	tusage, _, _, err := e.svc.tusage.List(e.ctx, store.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(tusage) != 1 || tusage[0].Used.Pods != 600 || tusage[0].Used.MilliCPU != 600000 {
		t.Fatalf("tenant usage %+v, want one tenant holding exactly 600 groups of 1 vCPU", tusage)
	}
	if n := e.ipCount(t); n != 600 {
		t.Fatalf("%d IP records for 600 placed groups", n)
	}
}
