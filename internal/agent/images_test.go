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
// exited one of a Never group are left as they are.
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

	job := createGroup(t, srv, simpleGroup("job", apiv1.RestartNever, "main"))
	srv.WaitGroup(t, job, "Running", inState(apiv1.StateRunning))
	rt.Exit(containersOf(t, rt, job)[0].Id, 0)
	srv.WaitGroup(t, job, "Succeeded", inState(apiv1.StateSucceeded))
	if _, err := srv.Admin.UpdateGroup(ctx, job, apiv1.GroupUpdate{Images: map[string]string{"main": "busybox:2"}}); err != nil {
		t.Fatal(err)
	}
	poll.Consistently(t, 2*time.Second, "no container of the ended Never group made again", func() error {
		for _, c := range containersOf(t, rt, job) {
			if c.Labels[LabelImage] == "busybox:2" {
				return fmt.Errorf("made again of the new image: %+v", c)
			}
		}
		return nil
	})
}
