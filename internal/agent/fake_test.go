package agent

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/client"
	"github.com/eci-dev/eci/internal/errdefs"
	"github.com/eci-dev/eci/internal/log"
	"github.com/eci-dev/eci/internal/poll"
	"github.com/eci-dev/eci/internal/runtime"
	"github.com/eci-dev/eci/internal/server/servertest"
)

// startAgent runs an agent for host h1 on the fake runtime rt.
func startAgent(t *testing.T, srv *servertest.Server, rt Runtime, cgroupParent string) (stop func()) {
	t.Helper()
	_, stop = startFakeAgent(t, srv, rt, cgroupParent)
	return stop
}

// startFakeAgent is startAgent that also gives the agent, for tests that
// look at its state.
func startFakeAgent(t *testing.T, srv *servertest.Server, rt Runtime, cgroupParent string) (*Agent, func()) {
	t.Helper()
	res := apiv1.Resources{MilliCPU: 8000, MemoryMiB: 16384, Pods: 20}
	return runAgentOf(t, Config{
		Client: srv.HostClient(t, "h1"), Runtime: rt, CgroupParent: cgroupParent, LogDir: t.TempDir(), StateDir: t.TempDir(), NoCgroups: true,
		Host:           apiv1.Host{Metadata: apiv1.ObjectMeta{Name: "h1"}, Spec: apiv1.HostSpec{Zone: "zone-a", Capacity: res, Allocatable: res}},
		ResyncInterval: 500 * time.Millisecond,
		// The fake's pulls reach no registry: docker.io (which does not
		// resolve here) needs no check.
		AllowedLocalRegistries: []string{"docker.io"},
	})
}

// runAgent runs an agent with cfg until the test ends or the returned stop,
// once it is ready.
func runAgent(t testing.TB, cfg Config) (stop func()) {
	t.Helper()
	_, stop = runAgentOf(t, cfg)
	return stop
}

// runAgentOf is runAgent that also gives the agent.
func runAgentOf(t testing.TB, cfg Config) (a *Agent, stop func()) {
	t.Helper()
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("ECI_TEST_VERBOSE") != "" {
		logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(log.WithLogger(context.Background(), logger))
	go func() { _ = a.Run(ctx) }()
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			cancel()
			<-a.Done()
		}
	}
	t.Cleanup(stop)
	select {
	case <-a.Ready():
	case <-a.Done():
		t.Fatalf("agent stopped: %v", a.Err())
	case <-time.After(20 * time.Second):
		t.Fatal("agent not ready after 20s")
	}
	return a, stop
}

func createGroup(t testing.TB, srv *servertest.Server, g *apiv1.ContainerGroup) string {
	t.Helper()
	out, _, err := srv.Admin.CreateGroup(context.Background(), quickStop(g))
	if err != nil {
		t.Fatal(err)
	}
	return out.Metadata.ID
}

// quickStop gives g a grace period of 1 s unless it has one: the tests'
// commands (sleep, sh, httpd) are their containers' PID 1 and ignore
// SIGTERM, as on a kubelet, so a delete would wait out the default 30 s.
func quickStop(g *apiv1.ContainerGroup) *apiv1.ContainerGroup {
	if g.Spec.TerminationGracePeriodSeconds == nil {
		one := int64(1)
		g.Spec.TerminationGracePeriodSeconds = &one
	}
	return g
}

func simpleGroup(name string, policy apiv1.RestartPolicy, containers ...string) *apiv1.ContainerGroup {
	g := &apiv1.ContainerGroup{Metadata: apiv1.ObjectMeta{Name: name}, Spec: apiv1.ContainerGroupSpec{RestartPolicy: policy}}
	for _, c := range containers {
		g.Spec.Containers = append(g.Spec.Containers, apiv1.Container{Name: c, Image: "busybox"})
	}
	return g
}

func inState(s apiv1.State) func(*apiv1.ContainerGroup) bool {
	return func(g *apiv1.ContainerGroup) bool { return g.Status.State == s }
}

func containersOf(t *testing.T, rt Runtime, group string) []*runtimeapi.Container {
	t.Helper()
	list, err := rt.ListContainers(context.Background(), &runtimeapi.ContainerFilter{LabelSelector: map[string]string{LabelGroup: group}})
	if err != nil {
		t.Fatal(err)
	}
	return list
}

// The reconcile loop on the fake runtime: groups run, end by the restart
// policy, restart with back-off, are deleted gracefully, and a restarted agent
// adopts what runs without creating anything twice.
func TestReconcileOnFakeRuntime(t *testing.T) {
	srv := servertest.Start(t)
	srv.VSwitch(t, "vsw-a", "zone-a", "198.19.128.0/24")
	rt := runtime.NewFake(netip.MustParseAddr("198.19.200.2"))
	stop := startAgent(t, srv, rt, "eci-test")
	ctx := context.Background()

	web := createGroup(t, srv, simpleGroup("web", "", "app", "sidecar"))
	g := srv.WaitGroup(t, web, "Running", inState(apiv1.StateRunning))
	if len(g.Status.Containers) != 2 || g.Status.Containers[0].State.Running == nil || !g.Status.Containers[1].Ready {
		t.Fatalf("container statuses %+v", g.Status.Containers)
	}

	job := createGroup(t, srv, simpleGroup("job", apiv1.RestartNever, "main"))
	srv.WaitGroup(t, job, "Running", inState(apiv1.StateRunning))
	rt.Exit(containersOf(t, rt, job)[0].Id, 0)
	done := srv.WaitGroup(t, job, "Succeeded", inState(apiv1.StateSucceeded))
	if tm := done.Status.Containers[0].State.Terminated; tm == nil || tm.ExitCode != 0 {
		t.Fatalf("job container %+v", done.Status.Containers[0])
	}

	flaky := createGroup(t, srv, simpleGroup("flaky", apiv1.RestartOnFailure, "main"))
	srv.WaitGroup(t, flaky, "Running", inState(apiv1.StateRunning))
	rt.Exit(containersOf(t, rt, flaky)[0].Id, 3)
	srv.WaitGroup(t, flaky, "restarted once at once", func(g *apiv1.ContainerGroup) bool {
		return len(g.Status.Containers) == 1 && g.Status.Containers[0].RestartCount == 1 && g.Status.Containers[0].State.Running != nil &&
			g.Status.Containers[0].LastState.Terminated != nil && g.Status.Containers[0].LastState.Terminated.ExitCode == 3
	})
	for _, c := range containersOf(t, rt, flaky) {
		if c.State == runtimeapi.ContainerState_CONTAINER_RUNNING {
			rt.Exit(c.Id, 3)
		}
	}
	srv.WaitGroup(t, flaky, "in CrashLoopBackOff", func(g *apiv1.ContainerGroup) bool {
		w := g.Status.Containers[0].State.Waiting
		return w != nil && w.Reason == "CrashLoopBackOff" && g.Status.Containers[0].RestartCount == 1
	})

	// A restarted agent adopts: no sandbox or container is created again.
	before := len(containersOf(t, rt, web))
	sbs, _ := rt.ListPodSandbox(ctx, nil)
	stop()
	startAgent(t, srv, rt, "eci-test")
	if len(sbs) != 2 {
		t.Fatalf("%d sandboxes before the restart, want web's and flaky's (the ended job's is removed)", len(sbs))
	}
	poll.Consistently(t, 1500*time.Millisecond, "the restarted agent adopts (several resyncs)", func() error {
		if after := len(containersOf(t, rt, web)); after != before {
			return fmt.Errorf("after an agent restart the group has %d containers, had %d", after, before)
		}
		if sbs2, _ := rt.ListPodSandbox(ctx, nil); len(sbs2) != len(sbs) {
			return fmt.Errorf("%d sandboxes after the restart, had %d", len(sbs2), len(sbs))
		}
		g, err := srv.Admin.GetGroup(ctx, web)
		if err != nil {
			return err
		}
		if g.Status.State != apiv1.StateRunning {
			return fmt.Errorf("web after the agent restart: %s", g.Status.State)
		}
		return nil
	})

	// Graceful delete: the agent stops everything, then the server removes it.
	if _, err := srv.Admin.DeleteGroup(ctx, web, client.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, 10*time.Second, "the deleted group gone", func() error {
		if _, err := srv.Admin.GetGroup(ctx, web); !errdefs.IsNotFound(err) {
			return fmt.Errorf("get: %v", err)
		}
		return nil
	})
	if n := len(containersOf(t, rt, web)); n != 0 {
		t.Fatalf("%d containers left of a deleted group", n)
	}
	// Force delete: the agent removes the sandbox it no longer has a group for.
	if _, err := srv.Admin.DeleteGroup(ctx, flaky, client.DeleteOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, 10*time.Second, "a force-deleted group's containers removed", func() error {
		if n := len(containersOf(t, rt, flaky)); n > 0 {
			return fmt.Errorf("%d containers left", n)
		}
		return nil
	})
}
