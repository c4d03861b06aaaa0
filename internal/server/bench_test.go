package server

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

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
// the embedded etcd, fsync on); each group's create -> placed time is its
// ScheduledAt - CreatedAt, as the server stamped them. The fake agent
// reports each placed group Running, as an agent does, so that placement
// competes with status writes.
func BenchmarkPlaceBurst(b *testing.B) {
	quietLogs()
	for i := 0; i < b.N; i++ {
		for _, n := range []int{100, 1000} {
			r := start(b, b.TempDir())
			ctx, cancel := context.WithCancel(context.Background())
			r.fakeHostOf(ctx, b, "h1", "198.19.128.0/21", 2000)
			lat, took := placeBurst(b, r, n)
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

// placeBurst creates n groups with 32 clients and waits until each is
// placed: their create -> placed times in order of creation, and the time
// until the last was placed.
func placeBurst(b *testing.B, r *running, n int) ([]time.Duration, time.Duration) {
	ctx := context.Background()
	ids := make([]string, n)
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
				g, _, err := r.admin.CreateGroup(ctx, g)
				if err != nil {
					b.Error(err)
					return
				}
				ids[j] = g.Metadata.ID
			}
		}()
	}
	wg.Wait()
	deadline := time.Now().Add(5 * time.Minute)
	for {
		list, err := r.admin.ListGroups(ctx, client.ListOptions{})
		if err != nil {
			b.Fatal(err)
		}
		placed := map[string]time.Duration{}
		var last time.Time
		for _, g := range list.Items {
			if at := g.Status.ScheduledAt; at != nil {
				placed[g.Metadata.ID] = at.Sub(g.Metadata.CreatedAt)
				if at.After(last) {
					last = *at
				}
			}
		}
		if len(placed) == n {
			lat := make([]time.Duration, n)
			for j, id := range ids {
				lat[j] = placed[id]
			}
			return lat, last.Sub(began)
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d groups placed after 5 minutes", len(placed), n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func quantileOf(d []time.Duration, q float64) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[int(q*float64(len(s)-1))]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
