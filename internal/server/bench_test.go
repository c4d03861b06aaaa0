package server

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/client"
)

// BenchmarkCreateGroups measures the API's create throughput and latency on
// the embedded etcd (fsync on, TLS, token auth): 32 clients create 3,000
// groups. Placement runs alongside, as in production.
func BenchmarkCreateGroups(b *testing.B) {
	const total, clients = 3000, 32
	for i := 0; i < b.N; i++ {
		r := start(b, b.TempDir())
		ctx := context.Background()
		lat := make([]time.Duration, total)
		var wg sync.WaitGroup
		next := make(chan int, total)
		for j := 0; j < total; j++ {
			next <- j
		}
		close(next)
		errs := make(chan error, clients)
		began := time.Now()
		for c := 0; c < clients; c++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := range next {
					t0 := time.Now()
					if _, _, err := r.admin.CreateGroup(ctx, group(fmt.Sprintf("g%d", j))); err != nil {
						errs <- err
						return
					}
					lat[j] = time.Since(t0)
				}
			}()
		}
		wg.Wait()
		elapsed := time.Since(began)
		close(errs)
		for err := range errs {
			b.Fatal(err)
		}
		sort.Slice(lat, func(a, c int) bool { return lat[a] < lat[c] })
		b.ReportMetric(float64(total)/elapsed.Seconds(), "creates/s")
		b.ReportMetric(float64(lat[total/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lat[total*99/100].Microseconds())/1000, "p99-ms")
		r.stop()
	}
}

// BenchmarkPlaceBurst measures the control path of a burst: 32 clients
// create 100, then 1,000 groups at once for one fake host (the real API on
// the embedded etcd, fsync on), each measured from its create request until
// a watch of groups sees it placed (Pending or later: committed, and what an
// agent sees). The fake agent reports each placed group Running, as an
// agent does, so that placement competes with status writes.
func BenchmarkPlaceBurst(b *testing.B) {
	quietLogs()
	for i := 0; i < b.N; i++ {
		for _, n := range []int{100, 1000} {
			r := start(b, b.TempDir())
			ctx, cancel := context.WithCancel(context.Background())
			r.fakeHostOf(ctx, b, "h1", "198.19.128.0/21", 2000)
			lat, took := placeBurst(ctx, b, r, n)
			b.ReportMetric(ms(quantileOf(lat, 0.5)), fmt.Sprintf("place-%d-p50-ms", n))
			b.ReportMetric(ms(quantileOf(lat, 0.99)), fmt.Sprintf("place-%d-p99-ms", n))
			b.ReportMetric(float64(n)/took.Seconds(), fmt.Sprintf("place-%d-groups/s", n))
			// Flat: the last half is placed no slower than the first.
			half := len(lat) / 2
			b.ReportMetric(ms(quantileOf(lat[half:], 0.5))/max(ms(quantileOf(lat[:half], 0.5)), 0.001), fmt.Sprintf("place-%d-late/early-p50", n))
			cancel()
			r.stop()
		}
	}
}

// placeBurst creates n groups with 32 clients and waits until a watch has
// seen each placed: their create -> placed times in order of creation, and
// the time until the last was seen.
func placeBurst(ctx context.Context, b *testing.B, r *running, n int) ([]time.Duration, time.Duration) {
	events, err := r.admin.WatchGroups(ctx, client.ListOptions{}, "")
	if err != nil {
		b.Fatal(err)
	}
	var mu sync.Mutex
	asked := make([]time.Time, n)
	placed := map[string]time.Time{} // by name, when the watch saw it
	seen := make(chan struct{})
	go func() {
		for ev := range events {
			if ev.Object == nil || ev.Object.Status.State == apiv1.StateScheduling {
				continue
			}
			mu.Lock()
			if _, ok := placed[ev.Object.Metadata.Name]; !ok {
				placed[ev.Object.Metadata.Name] = time.Now()
				if len(placed) == n {
					close(seen)
				}
			}
			mu.Unlock()
		}
	}()
	next := make(chan int, n)
	for j := range n {
		next <- j
	}
	close(next)
	began := time.Now()
	var wg sync.WaitGroup
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range next {
				g := group(fmt.Sprintf("g%d", j))
				g.Spec.CPU, g.Spec.Memory = 0.25, 0.5
				mu.Lock()
				asked[j] = time.Now()
				mu.Unlock()
				if _, _, err := r.admin.CreateGroup(ctx, g); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	select {
	case <-seen:
	case <-time.After(5 * time.Minute):
		mu.Lock()
		defer mu.Unlock()
		b.Fatalf("%d of %d groups seen placed after 5 minutes", len(placed), n)
	}
	mu.Lock()
	defer mu.Unlock()
	lat := make([]time.Duration, n)
	var last time.Time
	for j := range n {
		at := placed[fmt.Sprintf("g%d", j)]
		lat[j] = at.Sub(asked[j])
		if at.After(last) {
			last = at
		}
	}
	return lat, last.Sub(began)
}

func quantileOf(d []time.Duration, q float64) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[int(q*float64(len(s)-1))]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
