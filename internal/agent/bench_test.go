package agent

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/client"
	"github.com/eci-dev/eci/internal/poll"
	"github.com/eci-dev/eci/internal/server/servertest"
	"github.com/eci-dev/eci/internal/testbed"
)

// BenchmarkGroupStart: a container group created through the API until the
// server reports it Running (server + agent + containerd through CRI, image
// present), one at a time and 50 at once, next to the raw CRI floor (sandbox
// + create + start of the same pod) measured in the same run, bare and
// sized as the agent sizes a group.
func BenchmarkGroupStart(b *testing.B) {
	bed, srv, rt := containerdBed(b)
	ctx := context.Background()
	img := &runtimeapi.ImageSpec{Image: bed.Registry.Busybox}
	if _, err := rt.PullImage(ctx, img, nil, nil); err != nil {
		b.Fatal(err)
	}
	// The floor first: once the agent runs, the network is its own (eci-cni).
	floor := criFloor(b, rt, bed, img, 20, false)
	sized := criFloor(b, rt, bed, img, 20, true)
	_ = startAgentOn(b, srv, rt, bed, buildPlugin(b))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		seq, place, _ := groupStarts(b, srv, bed, 20, 1)
		par, _, _ := groupStarts(b, srv, bed, 50, 50)
		// The same on a warm pool of 50 sandboxes (docs/fast-start.md).
		fillPool(b, srv, "h1", 50)
		warmPar, _, took := groupStarts(b, srv, bed, 50, 50)
		fillPool(b, srv, "h1", 50)
		warmSeq, _, tookSeq := groupStarts(b, srv, bed, 20, 1)
		b.ReportMetric(ms(quantile(warmSeq, 0.5)), "warm-seq-p50-ms")
		b.ReportMetric(ms(quantile(warmPar, 0.5)), "warm-50par-p50-ms")
		b.ReportMetric(ms(quantile(warmPar, 0.99)), "warm-50par-p99-ms")
		b.ReportMetric(float64(took+tookSeq), "warm-taken")
		b.ReportMetric(ms(quantile(floor, 0.5)), "cri-floor-p50-ms")
		b.ReportMetric(ms(quantile(sized, 0.5)), "cri-sized-floor-p50-ms")
		b.ReportMetric(ms(quantile(seq, 0.5)-quantile(sized, 0.5)), "seq-overhead-vs-sized-p50-ms")
		b.ReportMetric(ms(quantile(seq, 0.5)), "seq-p50-ms")
		b.ReportMetric(ms(quantile(seq, 0.5)-quantile(floor, 0.5)), "seq-overhead-p50-ms")
		b.ReportMetric(ms(quantile(place, 0.5)), "seq-placed-p50-ms")
		b.ReportMetric(ms(quantile(par, 0.5)), "50par-p50-ms")
		b.ReportMetric(ms(quantile(par, 0.99)), "50par-p99-ms")
	}
}

// criFloor starts n pods straight through CRI, one at a time.
//
// sized gives the pod what the agent gives a 0.25 vCPU / 0.5 GiB group: its
// cgroup with those limits (the CFS quota slows runc's own start inside it),
// the container's resources and the runtime's default seccomp profile. The
// agent's overhead is then what it adds to starting exactly that.
func criFloor(b *testing.B, rt Runtime, bed *testbed.Bed, img *runtimeapi.ImageSpec, n int, sized bool) []time.Duration {
	ctx := context.Background()
	var out []time.Duration
	for j := 0; j < n; j++ {
		name := fmt.Sprintf("floor-%d-%v", j, sized)
		cgroup := bed.CgroupParent + "/" + name
		cfg := &runtimeapi.PodSandboxConfig{
			Metadata:     &runtimeapi.PodSandboxMetadata{Name: name, Namespace: "bench", Uid: name},
			LogDirectory: bed.Containerd.LogDir + "/" + name,
			Linux:        &runtimeapi.LinuxPodSandboxConfig{CgroupParent: cgroup},
		}
		ccfg := &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: "main"}, Image: img,
			Command: []string{"sleep", "3600"}, LogPath: "main.log"}
		if sized {
			g := &apiv1.ContainerGroup{Status: apiv1.ContainerGroupStatus{MilliCPU: 250, MemoryMiB: 512}}
			ccfg.Linux = &runtimeapi.LinuxContainerConfig{Resources: resources(g, apiv1.Container{}), SecurityContext: securityContext(nil)}
		}
		t0 := time.Now()
		if sized {
			if err := limitCgroup(cgroup, 250, 512, DefaultPidsLimit); err != nil {
				b.Fatal(err)
			}
		}
		sb, err := rt.RunPodSandbox(ctx, cfg, "")
		if err != nil {
			b.Fatal(err)
		}
		c, err := rt.CreateContainer(ctx, sb, ccfg, cfg)
		if err == nil {
			err = rt.StartContainer(ctx, c)
		}
		if err != nil {
			b.Fatal(err)
		}
		out = append(out, time.Since(t0))
		_ = rt.StopPodSandbox(ctx, sb)
		_ = rt.RemovePodSandbox(ctx, sb)
		if sized {
			_ = removeCgroup(cgroup)
		}
	}
	return out
}

// groupStarts creates n groups, parallel at a time, and measures each from
// its create request until a watch sees it Running (and, by the server's
// clock, from creation to placement); then deletes them.
func groupStarts(b *testing.B, srv *servertest.Server, bed *testbed.Bed, n, parallel int) (toRunning, toPlaced []time.Duration, tookWarm int) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	running := map[string]time.Time{}
	changed := make(chan struct{}, 1)
	events, err := srv.Admin.WatchGroups(ctx, client.ListOptions{}, "")
	if err != nil {
		b.Fatal(err)
	}
	go func() {
		for ev := range events {
			if ev.Object != nil && ev.Object.Status.State == apiv1.StateRunning {
				mu.Lock()
				if _, seen := running[ev.Object.Metadata.ID]; !seen {
					running[ev.Object.Metadata.ID] = time.Now()
				}
				mu.Unlock()
				select {
				case changed <- struct{}{}:
				default:
				}
			}
		}
	}()
	started := map[string]time.Time{}
	var ids []string
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for j := 0; j < n; j++ {
		sem <- struct{}{}
		wg.Add(1)
		go func(j int) {
			defer wg.Done()
			defer func() { <-sem }()
			g := &apiv1.ContainerGroup{Metadata: apiv1.ObjectMeta{Name: fmt.Sprintf("bench-%d", j)}, Spec: apiv1.ContainerGroupSpec{
				CPU: 0.25, Memory: 0.5,
				Containers: []apiv1.Container{{Name: "main", Image: bed.Registry.Busybox, Command: []string{"sleep", "3600"}}},
			}}
			t0 := time.Now()
			out, _, err := srv.Admin.CreateGroup(ctx, g)
			if err != nil {
				b.Error(err)
				return
			}
			mu.Lock()
			started[out.Metadata.ID] = t0
			ids = append(ids, out.Metadata.ID)
			mu.Unlock()
			if parallel == 1 {
				waitRunning(b, &mu, running, changed, []string{out.Metadata.ID})
			}
		}(j)
	}
	wg.Wait()
	waitRunning(b, &mu, running, changed, ids)
	if b.Failed() {
		list, _ := srv.Admin.ListGroups(context.Background(), client.ListOptions{})
		for _, g := range list.Items {
			b.Logf("%s %s %s %s %+v", g.Metadata.ID, g.Status.State, g.Status.Reason, g.Status.Message, g.Status.Containers)
		}
		b.FailNow()
	}
	mu.Lock()
	for _, id := range ids {
		toRunning = append(toRunning, running[id].Sub(started[id]))
	}
	mu.Unlock()
	for _, id := range ids {
		if evs, err := srv.Admin.GroupEvents(ctx, id); err == nil && slices.ContainsFunc(evs, func(e apiv1.Event) bool {
			return strings.Contains(e.Message, "taken from the host's warm pool")
		}) {
			tookWarm++
		}
	}
	for _, id := range ids {
		g, err := srv.Admin.DeleteGroup(context.Background(), id, client.DeleteOptions{Force: true})
		if err == nil && g.Status.ScheduledAt != nil {
			toPlaced = append(toPlaced, g.Status.ScheduledAt.Sub(g.Metadata.CreatedAt))
		}
	}
	return toRunning, toPlaced, tookWarm
}

// fillPool sets host's warm pool to n and waits until n sandboxes are
// ready and the agent is idle.
func fillPool(b *testing.B, srv *servertest.Server, host string, n int) {
	ctx := context.Background()
	if _, err := srv.Admin.UpdateHost(ctx, host, apiv1.HostUpdate{WarmPoolTarget: &n}); err != nil {
		b.Fatal(err)
	}
	poll.Eventually(b, 5*time.Minute, fmt.Sprintf("%d ready sandboxes in the warm pool", n), func() error {
		h, err := srv.Admin.GetHost(ctx, host)
		if err != nil || h.Status.WarmPool == nil || len(h.Status.WarmPool.Ready) < n {
			return fmt.Errorf("pool %+v (%v)", h.Status.WarmPool, err)
		}
		return nil
	})
}

func waitRunning(b *testing.B, mu *sync.Mutex, running map[string]time.Time, changed chan struct{}, ids []string) {
	deadline := time.After(30 * time.Second)
	for {
		mu.Lock()
		all := true
		for _, id := range ids {
			if _, ok := running[id]; !ok {
				all = false
				break
			}
		}
		mu.Unlock()
		if all {
			return
		}
		select {
		case <-changed:
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			b.Errorf("groups %v not Running after 2 minutes", ids)
			return
		}
	}
}

func quantile(d []time.Duration, q float64) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[int(q*float64(len(s)-1))]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// buildPlugin builds the eci-cni CNI plugin as production runs it (its
// start-up cost is part of every sandbox's network setup).
func buildPlugin(b *testing.B) string {
	out := filepath.Join(b.TempDir(), "eci-cni")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", out, "github.com/eci-dev/eci/cmd/eci-cni")
	if data, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("build eci: %v\n%s", err, data)
	}
	return out
}
