package agent

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/poll"
	"github.com/eci-dev/eci/internal/runtime"
	"github.com/eci-dev/eci/internal/server/servertest"
)

// An in-place resize reaches the running containers: one whose
// resizePolicy is NotRequired gets its new CPU and memory through the
// runtime, the same container still running; one whose memory policy is
// RestartContainer is restarted with them (a Killing event says why). A
// memory limit below what the container uses is not applied: the status
// says why, and it is applied once the usage falls.
func TestResizeInPlace(t *testing.T) {
	srv := servertest.Start(t)
	srv.VSwitch(t, "vsw-a", "zone-a", "198.19.128.0/24")
	rt := runtime.NewFake(netip.MustParseAddr("198.19.200.2"))
	startAgent(t, srv, rt, "eci-test")
	ctx := context.Background()

	spec := simpleGroup("resize", "", "a", "b")
	spec.Spec.CPU, spec.Spec.Memory = 1, 2
	spec.Spec.Containers[0].CPU, spec.Spec.Containers[0].Memory = 0.25, 0.5
	spec.Spec.Containers[1].CPU, spec.Spec.Containers[1].Memory = 0.25, 0.5
	spec.Spec.Containers[1].ResizePolicy = []apiv1.ResizePolicy{{ResourceName: "memory", RestartPolicy: apiv1.ResizeRestartContainer}}
	id := createGroup(t, srv, spec)
	srv.WaitGroup(t, id, "Running with its limits", func(g *apiv1.ContainerGroup) bool {
		return g.Status.State == apiv1.StateRunning && limitsAre(g, "a", 250, 512) && limitsAre(g, "b", 250, 512)
	})
	aID := running(t, rt, id, "a").Id

	if _, err := srv.Admin.UpdateGroup(ctx, id, apiv1.GroupUpdate{Resources: map[string]apiv1.ContainerResources{
		"a": {CPU: 0.5, Memory: 0.5}, "b": {CPU: 0.25, Memory: 0.25}}}); err != nil {
		t.Fatal(err)
	}
	g := srv.WaitGroup(t, id, "both resized", func(g *apiv1.ContainerGroup) bool {
		return limitsAre(g, "a", 500, 512) && limitsAre(g, "b", 250, 256)
	})
	if a := running(t, rt, id, "a"); a.Id != aID || g.Status.Containers[0].RestartCount != 0 {
		t.Errorf("a was restarted for a resize its policy applies in place: %s, restarts %d", a.Id, g.Status.Containers[0].RestartCount)
	}
	if b := running(t, rt, id, "b"); b.Metadata.Attempt != 1 {
		t.Errorf("b, RestartContainer for memory, is at attempt %d, want 1", b.Metadata.Attempt)
	}
	if rt.ResourceUpdates() != 1 {
		t.Errorf("%d in-place updates, want 1 (a's)", rt.ResourceUpdates())
	}
	poll.Eventually(t, 10*time.Second, "b's Killing event", func() error {
		return hasEvent(ctx, srv, id, "Killing", "b", "Container b resize requires restart")
	})

	// Lower than what a uses: waits, saying why, until a uses less.
	rt.SetMemoryUsage(aID, 400<<20)
	if _, err := srv.Admin.UpdateGroup(ctx, id, apiv1.GroupUpdate{Resources: map[string]apiv1.ContainerResources{"a": {CPU: 0.5, Memory: 0.25}}}); err != nil {
		t.Fatal(err)
	}
	srv.WaitGroup(t, id, "a's resize error", func(g *apiv1.ContainerGroup) bool {
		return limitsAre(g, "a", 500, 512) && strings.Contains(g.Status.Containers[0].ResizeError,
			fmt.Sprintf(`attempting to set container "a" memory limit (%d) below current usage (%d)`, 256<<20, 400<<20))
	})
	rt.SetMemoryUsage(aID, 100<<20)
	srv.WaitGroup(t, id, "a resized once it uses less", func(g *apiv1.ContainerGroup) bool {
		return limitsAre(g, "a", 500, 256) && g.Status.Containers[0].ResizeError == ""
	})
	if a := running(t, rt, id, "a"); a.Id != aID {
		t.Errorf("a was restarted: %s", a.Id)
	}

	// A runtime that refuses: said in the status, the group goes on, and
	// it is applied once the runtime takes it.
	rt.FailUpdates(errors.New("cgroup busy"))
	if _, err := srv.Admin.UpdateGroup(ctx, id, apiv1.GroupUpdate{Resources: map[string]apiv1.ContainerResources{"a": {CPU: 0.25, Memory: 0.25}}}); err != nil {
		t.Fatal(err)
	}
	srv.WaitGroup(t, id, "the refusal reported, the group Running", func(g *apiv1.ContainerGroup) bool {
		return g.Status.State == apiv1.StateRunning && g.Status.Containers[0].ResizeError == "the runtime refused the new resources: cgroup busy"
	})
	rt.FailUpdates(nil)
	srv.WaitGroup(t, id, "a resized once the runtime takes it", func(g *apiv1.ContainerGroup) bool {
		return limitsAre(g, "a", 250, 256) && g.Status.Containers[0].ResizeError == ""
	})
}

func limitsAre(g *apiv1.ContainerGroup, name string, milliCPU, memoryMiB int64) bool {
	for _, c := range g.Status.Containers {
		if c.Name == name {
			return c.Limits != nil && *c.Limits == apiv1.Limits{MilliCPU: milliCPU, MemoryMiB: memoryMiB}
		}
	}
	return false
}

// running is group's running container name.
func running(t *testing.T, rt Runtime, group, name string) *runtimeapi.Container {
	t.Helper()
	for _, c := range containersOf(t, rt, group) {
		if c.Labels[LabelContainer] == name && c.State == runtimeapi.ContainerState_CONTAINER_RUNNING {
			return c
		}
	}
	t.Fatalf("no running %s in %s", name, group)
	return nil
}

func hasEvent(ctx context.Context, srv *servertest.Server, group, reason, container, msg string) error {
	evs, err := srv.Admin.GroupEvents(ctx, group)
	if err != nil {
		return err
	}
	for _, ev := range evs {
		if ev.Reason == reason && ev.Container == container && ev.Message == msg {
			return nil
		}
	}
	return fmt.Errorf("%d events, none %s of %s saying %q", len(evs), reason, container, msg)
}
