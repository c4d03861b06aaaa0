package agent

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/time/rate"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/poll"
	"github.com/eci-dev/eci/internal/server/servertest"
	"github.com/eci-dev/eci/internal/testbed"
)

// BenchmarkImageStart: a group of a large image (ECI_BENCH_IMAGE_MB, 200)
// served by a registry throttled to ECI_BENCH_REGISTRY_MBPS (20 MB/s), from
// its create until it is Running: pulled cold, from an image cache made
// before (a cache hit), and pre-pulled by the operator through CRI (the
// reference). Each case ECI_BENCH_IMAGE_RUNS times (3); the ratios against
// the pre-pulled start of the same run are reported min and max.
func BenchmarkImageStart(b *testing.B) {
	mb, mbps, runs := envInt("ECI_BENCH_IMAGE_MB", 200), envInt("ECI_BENCH_REGISTRY_MBPS", 20), envInt("ECI_BENCH_IMAGE_RUNS", 3)
	bed, srv, rt := containerdBed(b)
	ctx := context.Background()
	limiter := rate.NewLimiter(rate.Limit(mbps<<20), 64<<10)
	host := localRegistry(b, bed, throttled(limiter, registry.New(registry.Logger(log.New(io.Discard, "", 0)))))
	image := host + "/bench/large:v1"
	pushLarge(b, image, int64(mb)<<20)
	_ = startAgentWith(b, srv, rt, bed, buildPlugin(b), func(c *Config) {
		c.ImageCacheInterval = 3 * time.Second // (15 s by default; a pass every 200 ms costs the starts measured beside it)
		c.AllowedLocalRegistries = append(c.AllowedLocalRegistries, host)
	})
	spec := &runtimeapi.ImageSpec{Image: image}
	remove := func() {
		if st, err := rt.ImageStatus(ctx, spec, false); err == nil && st.GetImage() != nil {
			if err := rt.RemoveImage(ctx, &runtimeapi.ImageSpec{Image: st.GetImage().GetId()}); err != nil {
				b.Fatal(err)
			}
		}
		time.Sleep(7 * time.Second) // the agent reports it gone before a cache is made
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var cold, hit, pre, fill []time.Duration
		for r := 0; r < runs; r++ {
			remove()
			cold = append(cold, startOf(b, srv, image))
			remove()
			t0 := time.Now()
			if _, err := rt.PullImage(ctx, spec, nil, nil); err != nil {
				b.Fatal(err)
			}
			pull := time.Since(t0)
			pre = append(pre, startOf(b, srv, image))
			remove()
			t0 = time.Now()
			id := cacheReady(b, srv, image)
			fill = append(fill, time.Since(t0))
			hit = append(hit, startOf(b, srv, image))
			if err := srv.Admin.DeleteImageCache(ctx, id); err != nil {
				b.Fatal(err)
			}
			b.Logf("run %d: cold %s, pre-pulled %s (its pull %s), cache hit %s (the cache ready in %s)", r, cold[r], pre[r], pull, hit[r], fill[r])
		}
		ratio := func(a []time.Duration) (lo, hi float64) {
			var rs []float64
			for j := range a {
				rs = append(rs, float64(a[j])/float64(pre[j]))
			}
			return slices.Min(rs), slices.Max(rs)
		}
		hitLo, hitHi := ratio(hit)
		coldLo, coldHi := ratio(cold)
		b.ReportMetric(ms(quantile(pre, 0.5)), "prepulled-p50-ms")
		b.ReportMetric(ms(quantile(hit, 0.5)), "hit-p50-ms")
		b.ReportMetric(ms(quantile(cold, 0.5)), "cold-p50-ms")
		b.ReportMetric(ms(quantile(fill, 0.5)), "cache-ready-p50-ms")
		b.ReportMetric(float64(quantile(hit, 0.5))/float64(quantile(pre, 0.5)), "hit/prepulled-p50")
		b.ReportMetric(hitLo, "hit/prepulled-min")
		b.ReportMetric(hitHi, "hit/prepulled-max")
		b.ReportMetric(coldLo, "cold/prepulled-min")
		b.ReportMetric(coldHi, "cold/prepulled-max")
	}
}

func envInt(key string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(key)); err == nil && n > 0 {
		return n
	}
	return def
}

// throttled serves h with its blobs sent no faster than l allows, every
// client together (one registry's uplink).
func throttled(l *rate.Limiter, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/") {
			w = &slowWriter{ResponseWriter: w, l: l, ctx: r.Context()}
		}
		h.ServeHTTP(w, r)
	})
}

type slowWriter struct {
	http.ResponseWriter
	l   *rate.Limiter
	ctx context.Context
}

func (s *slowWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		chunk := p[:min(len(p), s.l.Burst())]
		if err := s.l.WaitN(s.ctx, len(chunk)); err != nil {
			return n, err
		}
		m, err := s.ResponseWriter.Write(chunk)
		n += m
		if err != nil {
			return n, err
		}
		p = p[len(chunk):]
	}
	return n, nil
}

// pushLarge pushes busybox with a layer of size random bytes (gzip does
// not shrink them: the pull moves about size bytes).
func pushLarge(b *testing.B, image string, size int64) {
	b.Helper()
	base, err := testbed.BusyboxImage(testbed.ImageConfig{Cmd: []string{"sh"}})
	if err != nil {
		b.Fatal(err)
	}
	layer, err := random.Layer(size, types.OCILayer)
	if err != nil {
		b.Fatal(err)
	}
	img, err := mutate.AppendLayers(base, layer)
	if err != nil {
		b.Fatal(err)
	}
	ref, err := name.ParseReference(image, name.Insecure)
	if err != nil {
		b.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		b.Fatal(err)
	}
}

// startOf creates a group of image and returns how long it took to be
// Running; then deletes it.
func startOf(b *testing.B, srv *servertest.Server, image string) time.Duration {
	b.Helper()
	g := quickStop(&apiv1.ContainerGroup{Metadata: apiv1.ObjectMeta{Name: "large"}, Spec: apiv1.ContainerGroupSpec{
		Containers: []apiv1.Container{{Name: "main", Image: image, Command: []string{"sleep", "3600"}}}}})
	t0 := time.Now()
	out, _, err := srv.Admin.CreateGroup(context.Background(), g)
	if err != nil {
		b.Fatal(err)
	}
	poll.Eventually(b, 40*time.Second, "the group Running", func() error {
		cur, err := srv.Admin.GetGroup(context.Background(), out.Metadata.ID)
		if err != nil {
			return err
		}
		if cur.Status.State != apiv1.StateRunning {
			w := ""
			if len(cur.Status.Containers) == 1 && cur.Status.Containers[0].State.Waiting != nil {
				w = cur.Status.Containers[0].State.Waiting.Reason + ": " + cur.Status.Containers[0].State.Waiting.Message
			}
			return fmt.Errorf("state %s: %s", cur.Status.State, w)
		}
		return nil
	})
	took := time.Since(t0)
	srv.DeleteGroup(b, out.Metadata.ID, time.Minute, "deleted")
	return took
}

type errState apiv1.State

func (e errState) Error() string { return "state " + string(e) }

// cacheReady makes an image cache of image and waits until it is Ready.
func cacheReady(b *testing.B, srv *servertest.Server, image string) string {
	b.Helper()
	ic, err := srv.Admin.CreateImageCache(context.Background(), &apiv1.ImageCache{Metadata: apiv1.ObjectMeta{Name: "large"}, Spec: apiv1.ImageCacheSpec{Images: []string{image}}})
	if err != nil {
		b.Fatal(err)
	}
	poll.Eventually(b, 5*time.Minute, "the cache Ready", func() error {
		cur, err := srv.Admin.GetImageCache(context.Background(), ic.Metadata.ID)
		if err != nil {
			return err
		}
		if cur.Status.Phase != apiv1.ImageCacheReady {
			return errState(cur.Status.Phase)
		}
		return nil
	})
	return ic.Metadata.ID
}
