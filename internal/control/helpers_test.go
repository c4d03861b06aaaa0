package control

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/auth"
	"github.com/eci-dev/eci/internal/poll"
	"github.com/eci-dev/eci/internal/store"
)

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type env struct {
	svc   *Service
	clock *clock
	ctx   context.Context
}

// newEnv opens a real embedded etcd in t.TempDir and a service on it; with
// placer, the placer daemon runs until the test ends.
func newEnv(t testing.TB, placer bool, tune ...func(*Options)) *env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	st, err := store.Open(ctx, store.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	c := &clock{t: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)}
	opts := Options{Now: c.Now, RetryInterval: 100 * time.Millisecond}
	for _, f := range tune {
		f(&opts)
	}
	svc := New(st, opts)
	done := make(chan struct{})
	if placer {
		go func() { defer close(done); _ = svc.RunPlacer(ctx) }()
	} else {
		close(done)
	}
	t.Cleanup(func() { cancel(); <-done; svc.pass.running.Wait(); st.Close() })
	return &env{svc: svc, clock: c, ctx: ctx}
}

func hostPrincipal(name string) auth.Principal {
	return auth.Principal{Kind: apiv1.TokenHost, Host: name}
}

func tenantPrincipal(name string) auth.Principal {
	return auth.Principal{Kind: apiv1.TokenTenant, Tenant: name}
}

func (e *env) vswitch(t testing.TB, id, zone, cidr string) {
	t.Helper()
	if _, err := e.svc.CreateVSwitch(e.ctx, auth.Admin, &apiv1.VSwitch{Metadata: apiv1.ObjectMeta{Name: id}, Spec: apiv1.VSwitchSpec{Zone: zone, CIDR: cidr}}); err != nil {
		t.Fatal(err)
	}
}

func (e *env) host(t testing.TB, name, zone string, milliCPU, memMiB int64, pods int) {
	t.Helper()
	r := apiv1.Resources{MilliCPU: milliCPU, MemoryMiB: memMiB, Pods: pods}
	h := &apiv1.Host{Metadata: apiv1.ObjectMeta{Name: name}, Spec: apiv1.HostSpec{Zone: zone, Capacity: r, Allocatable: r}}
	if _, err := e.svc.RegisterHost(e.ctx, hostPrincipal(name), h); err != nil {
		t.Fatal(err)
	}
}

func groupSpec(name string, cpu, mem float64) *apiv1.ContainerGroup {
	return &apiv1.ContainerGroup{
		Metadata: apiv1.ObjectMeta{Name: name},
		Spec:     apiv1.ContainerGroupSpec{CPU: cpu, Memory: mem, Containers: []apiv1.Container{{Name: "app", Image: "busybox"}}},
	}
}

// waitState polls until group id is in state want.
func (e *env) waitState(t *testing.T, id string, want apiv1.State) *apiv1.ContainerGroup {
	t.Helper()
	var g *apiv1.ContainerGroup
	poll.Eventually(t, 20*time.Second, fmt.Sprintf("group %s %s", id, want), func() error {
		cur, err := e.svc.groups.Get(e.ctx, id)
		if err != nil {
			return err
		}
		if cur.Status.State != want {
			return fmt.Errorf("state %v, status %+v", cur.Status.State, cur.Status)
		}
		g = cur
		return nil
	})
	return g
}

// scheduling is a condition for poll: group id is Scheduling with msg in its
// message. It fails t at once when the group has left Scheduling (placed).
func (e *env) scheduling(t *testing.T, id, msg string) func() error {
	return func() error {
		g, err := e.svc.groups.Get(e.ctx, id)
		if err != nil {
			return err
		}
		if g.Status.State != apiv1.StateScheduling {
			t.Fatalf("group %s left Scheduling: %+v", id, g.Status)
		}
		if !strings.Contains(g.Status.Message, msg) {
			return fmt.Errorf("status %+v", g.Status)
		}
		return nil
	}
}

func (e *env) usageOf(t *testing.T, host string) apiv1.Resources {
	t.Helper()
	h, err := e.svc.GetHost(e.ctx, auth.Admin, host)
	if err != nil {
		t.Fatal(err)
	}
	return h.Status.Allocated
}

func (e *env) ipCount(t *testing.T) int {
	t.Helper()
	items, _, _, err := e.svc.ips.List(e.ctx, store.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return len(items)
}
