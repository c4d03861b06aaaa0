package agent

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/poll"
	"github.com/eci-dev/eci/internal/runtime"
	"github.com/eci-dev/eci/internal/server/servertest"
)

func TestForgetDropsTheWholeRecordAndStopsItsProbes(t *testing.T) {
	s := newGroupStates()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pctx, pcancel := context.WithCancel(ctx)
	s.edit("g1", func(g *groupState) {
		g.reported = "{}"
		g.container("app").started = true
		g.container("app").restart = &backoffEntry{delay: backoffInitial}
		g.probers[probeKey{"app", startup}] = &prober{containerID: "c1", cancel: pcancel}
	})
	s.edit("g2", func(g *groupState) { g.container("app").ready = true })
	s.forget("g1")
	if pctx.Err() == nil {
		t.Fatal("forget left the group's probe running")
	}
	if ids := s.ids(); len(ids) != 1 || ids[0] != "g2" {
		t.Fatalf("records after forgetting g1: %v, want g2 only", ids)
	}
	s.read("g1", func(g groupState) {
		if c := g.containerOf("app"); c.started || c.restart != nil || g.reported != "" {
			t.Fatalf("a forgotten group still reads %+v", c)
		}
	})
	if ids := s.ids(); len(ids) != 1 {
		t.Fatalf("reading a forgotten group made a record: %v", ids)
	}
}

// The defect #14 names: a container with only a startup probe stayed in the
// probes' started set after its group was gone. The group's record goes
// with the group, and a probe result arriving late records nothing.
func TestAGroupWithOnlyAStartupProbeLeavesNoState(t *testing.T) {
	srv := servertest.Start(t)
	srv.VSwitch(t, "vsw-a", "zone-a", "198.19.128.0/24")
	rt := runtime.NewFake(netip.MustParseAddr("198.19.200.2"))
	a, _ := startFakeAgent(t, srv, rt, "eci-test")

	g := simpleGroup("startup-only", "", "app")
	g.Spec.Containers[0].StartupProbe = &apiv1.Probe{Exec: &apiv1.ExecAction{Command: []string{"true"}}, PeriodSeconds: 1}
	id := createGroup(t, srv, g)
	srv.WaitGroup(t, id, "Running and started", func(g *apiv1.ContainerGroup) bool {
		return g.Status.State == apiv1.StateRunning && len(g.Status.Containers) == 1 && g.Status.Containers[0].Started
	})
	var started bool
	var probes int
	a.states.read(id, func(s groupState) { started, probes = s.containerOf("app").started, len(s.probers) })
	if !started || probes != 1 {
		t.Fatalf("while running: started %v with %d probes, want true with its startup probe", started, probes)
	}

	srv.DeleteGroup(t, id, 20*time.Second, "the deleted group gone from the server")
	poll.Eventually(t, 10*time.Second, "the group's record gone from the agent", func() error {
		for _, got := range a.states.ids() {
			if got == id {
				return fmt.Errorf("the agent still holds a record of %s", id)
			}
		}
		return nil
	})
	// A result of the stopped probe, late: nothing comes back.
	a.setProbe(id, "app", startup, "any", true)
	for _, got := range a.states.ids() {
		if got == id {
			t.Fatal("a late probe result brought the forgotten group's record back")
		}
	}
}

// A running init container has started and is ready as far as probes go (it
// has none), as the kubelet reports it: the record has nothing of it.
func TestARunningInitContainerIsStarted(t *testing.T) {
	srv := servertest.Start(t)
	srv.VSwitch(t, "vsw-a", "zone-a", "198.19.128.0/24")
	rt := runtime.NewFake(netip.MustParseAddr("198.19.200.2"))
	startFakeAgent(t, srv, rt, "eci-test")
	g := simpleGroup("init-runs", "", "app")
	g.Spec.InitContainers = []apiv1.Container{{Name: "setup", Image: "busybox"}}
	id := createGroup(t, srv, g)
	got := srv.WaitGroup(t, id, "its init container running", func(g *apiv1.ContainerGroup) bool {
		return len(g.Status.InitContainers) == 1 && g.Status.InitContainers[0].State.Running != nil
	})
	if c := got.Status.InitContainers[0]; !c.Started || !c.Ready {
		t.Fatalf("running init container: started %v ready %v, want both true", c.Started, c.Ready)
	}
}
