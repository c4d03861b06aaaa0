package server

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"
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
