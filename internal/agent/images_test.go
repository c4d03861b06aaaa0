package agent

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/poll"
	"github.com/eci-dev/eci/internal/runtime"
	"github.com/eci-dev/eci/internal/server/servertest"
)

// A running container whose image changes is stopped and made again of
// the new image (a Killing event says why); the other container and an
// exited one of a Never group are left as they are; a container in its
// restart back-off starts at once with a new image.
func TestImageChangeRestartsTheContainer(t *testing.T) {
	srv := servertest.Start(t)
	srv.VSwitch(t, "vsw-a", "zone-a", "198.19.128.0/24")
	rt := runtime.NewFake(netip.MustParseAddr("198.19.200.2"))
	startAgent(t, srv, rt, "eci-test")
	ctx := context.Background()

	web := createGroup(t, srv, simpleGroup("web", "", "app", "sidecar"))
	srv.WaitGroup(t, web, "Running", inState(apiv1.StateRunning))
	if _, err := srv.Admin.UpdateGroup(ctx, web, apiv1.GroupUpdate{Images: map[string]string{"app": "busybox:2"}}); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, 20*time.Second, "app made again of busybox:2", func() error {
		byName := map[string][]*runtimeapi.Container{}
		for _, c := range containersOf(t, rt, web) {
			byName[c.Labels[LabelContainer]] = append(byName[c.Labels[LabelContainer]], c)
		}
		app, sidecar := byName["app"], byName["sidecar"]
		if len(app) != 2 || len(sidecar) != 1 {
			return fmt.Errorf("%d app containers, %d sidecar ones", len(app), len(sidecar))
		}
		for _, c := range app {
			running := c.State == runtimeapi.ContainerState_CONTAINER_RUNNING
			if running != (c.Labels[LabelImage] == "busybox:2") || (c.Metadata.Attempt == 1) != running {
				return fmt.Errorf("app attempt %d of %s: %s", c.Metadata.Attempt, c.Labels[LabelImage], c.State)
			}
		}
		return nil
	})
	poll.Eventually(t, 10*time.Second, "the Killing event", func() error {
		evs, err := srv.Admin.GroupEvents(ctx, web)
		if err != nil {
			return err
		}
		for _, ev := range evs {
			if ev.Reason == "Killing" && ev.Container == "app" && ev.Message == "Container app definition changed, will be restarted" {
				return nil
			}
		}
		return fmt.Errorf("%d events, none Killing app", len(evs))
	})

	// A Never group still running: its exited container is not made again
	// for a new image (only a running one is), while its running one is.
	job := createGroup(t, srv, simpleGroup("job", apiv1.RestartNever, "main", "side"))
	srv.WaitGroup(t, job, "Running", inState(apiv1.StateRunning))
	for _, c := range containersOf(t, rt, job) {
		if c.Labels[LabelContainer] == "main" {
			rt.Exit(c.Id, 0)
		}
	}
	srv.WaitGroup(t, job, "main exited, side running", func(g *apiv1.ContainerGroup) bool {
		return len(g.Status.Containers) == 2 && g.Status.Containers[0].State.Terminated != nil && g.Status.Containers[1].State.Running != nil
	})
	if _, err := srv.Admin.UpdateGroup(ctx, job, apiv1.GroupUpdate{Images: map[string]string{"main": "busybox:2", "side": "busybox:2"}}); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, 20*time.Second, "side made again of busybox:2", func() error { return madeOf(t, rt, job, "side", "busybox:2") })
	poll.Consistently(t, 2*time.Second, "main, exited, not made again", func() error {
		if err := madeOf(t, rt, job, "main", "busybox:2"); err == nil {
			return fmt.Errorf("main of a Never group was made again of the new image")
		}
		return nil
	})

	// A crash-looping container waits for its back-off; a new image starts
	// at once (the back-off was the old image's).
	loop := createGroup(t, srv, simpleGroup("loop", "", "main"))
	srv.WaitGroup(t, loop, "Running", inState(apiv1.StateRunning))
	for range 2 {
		for _, c := range containersOf(t, rt, loop) {
			if c.State == runtimeapi.ContainerState_CONTAINER_RUNNING {
				rt.Exit(c.Id, 1)
			}
		}
		time.Sleep(300 * time.Millisecond)
	}
	srv.WaitGroup(t, loop, "in CrashLoopBackOff", func(g *apiv1.ContainerGroup) bool {
		w := g.Status.Containers[0].State.Waiting
		return w != nil && w.Reason == "CrashLoopBackOff"
	})
	if _, err := srv.Admin.UpdateGroup(ctx, loop, apiv1.GroupUpdate{Images: map[string]string{"main": "busybox:2"}}); err != nil {
		t.Fatal(err)
	}
	// (The back-off left is about 10 s.)
	poll.Eventually(t, 4*time.Second, "main made again of busybox:2 before its back-off ends", func() error { return madeOf(t, rt, loop, "main", "busybox:2") })
}

// madeOf says whether container name of group runs, made of image.
func madeOf(t *testing.T, rt Runtime, group, name, image string) error {
	for _, c := range containersOf(t, rt, group) {
		if c.Labels[LabelContainer] == name && c.Labels[LabelImage] == image && c.State == runtimeapi.ContainerState_CONTAINER_RUNNING {
			return nil
		}
	}
	return fmt.Errorf("no running %s of %s", name, image)
}
