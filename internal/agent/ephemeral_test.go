package agent

import (
	"context"
	"net/netip"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/poll"
	"github.com/eci-dev/eci/internal/runtime"
	"github.com/eci-dev/eci/internal/server/servertest"
)

// An ephemeral container added to a running group starts once, in its
// target's process namespace, is reported, and once it exits is not started again (the group's policy is
// Always); the group stays Running.
func TestEphemeralContainerRunsOnce(t *testing.T) {
	srv := servertest.Start(t)
	srv.VSwitch(t, "vsw-a", "zone-a", "198.19.128.0/24")
	rt := runtime.NewFake(netip.MustParseAddr("198.19.200.2"))
	startAgent(t, srv, rt, "eci-test")
	id := createGroup(t, srv, simpleGroup("debug", "", "main"))
	srv.WaitGroup(t, id, "Running", inState(apiv1.StateRunning))
	dbg := apiv1.EphemeralContainer{Container: apiv1.Container{Name: "debugger", Image: "busybox"}, TargetContainerName: "main"}
	if _, err := srv.Admin.UpdateGroup(context.Background(), id, apiv1.GroupUpdate{EphemeralContainers: []apiv1.EphemeralContainer{dbg}}); err != nil {
		t.Fatal(err)
	}
	srv.WaitGroup(t, id, "the debugger reported running", func(g *apiv1.ContainerGroup) bool {
		return len(g.Status.EphemeralContainers) == 1 && g.Status.EphemeralContainers[0].State.Running != nil
	})
	d := running(t, rt, id, "debugger")
	ns := rt.ContainerConfig(d.Id).GetLinux().GetSecurityContext().GetNamespaceOptions()
	if main := running(t, rt, id, "main"); ns.GetPid() != runtimeapi.NamespaceMode_TARGET || ns.GetTargetId() != main.Id {
		t.Errorf("the debugger's namespaces %v, want its target's (%s) process namespace", ns, main.Id)
	}
	rt.Exit(d.Id, 0)
	srv.WaitGroup(t, id, "the debugger reported exited, the group Running", func(g *apiv1.ContainerGroup) bool {
		return g.Status.State == apiv1.StateRunning && len(g.Status.EphemeralContainers) == 1 && g.Status.EphemeralContainers[0].State.Terminated != nil
	})
	poll.Consistently(t, 2*time.Second, "the debugger is not started again", func() error {
		n := 0
		for _, c := range containersOf(t, rt, id) {
			if c.Labels[LabelContainer] == "debugger" {
				n++
				if c.State != runtimeapi.ContainerState_CONTAINER_EXITED {
					return errString("the debugger runs again")
				}
			}
		}
		if n != 1 {
			return errString("debugger containers: not one")
		}
		return nil
	})
}

type errString string

func (e errString) Error() string { return string(e) }
