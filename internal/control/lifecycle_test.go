package control

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/auth"
	"github.com/eci-dev/eci/internal/errdefs"
	"github.com/eci-dev/eci/internal/poll"
)

// Scheduling -> Pending (placed: host, IP, rounded size, usage) -> Running ->
// Succeeded (capacity and IP released), with the billing timestamps.
func TestLifecycle(t *testing.T) {
	e := newEnv(t, true)
	e.vswitch(t, "vsw-a", "zone-a", "198.19.128.0/24")
	e.host(t, "h1", "zone-a", 16000, 65536, 100)

	g, created, err := e.svc.CreateGroup(e.ctx, tenantPrincipal("acme"), groupSpec("web", 7, 13))
	if err != nil || !created {
		t.Fatalf("create: %v (created %v)", err, created)
	}
	if g.Status.State != apiv1.StateScheduling || g.Metadata.Tenant != "acme" || !strings.HasPrefix(g.Metadata.ID, "eci-") {
		t.Fatalf("created group %+v", g)
	}
	placed := e.waitState(t, g.Metadata.ID, apiv1.StatePending)
	st := placed.Status
	if st.Host != "h1" || st.Zone != "zone-a" || st.VSwitchID != "vsw-a" || st.InstanceSpec != "8.0-16.0Gi" || !st.Allocated {
		t.Fatalf("placement %+v", st)
	}
	if ip := netip.MustParseAddr(st.IP); !netip.MustParsePrefix("198.19.128.0/24").Contains(ip) || st.IP == "198.19.128.1" {
		t.Fatalf("IP %s is not a host address of vsw-a", st.IP)
	}
	if st.PendingAt == nil || st.ScheduledAt == nil {
		t.Fatal("billing start not recorded at placement")
	}
	if u := e.usageOf(t, "h1"); u.MilliCPU != 8000 || u.MemoryMiB != 16384 || u.Pods != 1 {
		t.Fatalf("host usage %+v, want the rounded size", u)
	}

	e.clock.Add(3 * time.Second)
	running, err := e.svc.ReportStatus(e.ctx, hostPrincipal("h1"), g.Metadata.ID, apiv1.StatusReport{State: apiv1.StateRunning})
	if err != nil || running.Status.RunningAt == nil || running.Status.State != apiv1.StateRunning {
		t.Fatalf("report running: %v %+v", err, running)
	}
	if _, err := e.svc.ReportStatus(e.ctx, hostPrincipal("h2"), g.Metadata.ID, apiv1.StatusReport{State: apiv1.StateFailed}); !errdefs.IsNotFound(err) {
		t.Fatalf("another host reported the group's status: %v", err)
	}
	e.clock.Add(10 * time.Second)
	done, err := e.svc.ReportStatus(e.ctx, hostPrincipal("h1"), g.Metadata.ID, apiv1.StatusReport{State: apiv1.StateSucceeded, Reason: "Completed"})
	if err != nil {
		t.Fatal(err)
	}
	if done.Status.Allocated || done.Status.FinishedAt == nil || done.Status.FinishedAt.Sub(*done.Status.RunningAt) != 10*time.Second {
		t.Fatalf("after Succeeded: %+v", done.Status)
	}
	if u := e.usageOf(t, "h1"); u.MilliCPU != 0 || u.Pods != 0 {
		t.Fatalf("usage after Succeeded %+v, want released", u)
	}
	if n := e.ipCount(t); n != 0 {
		t.Fatalf("%d IPs held after Succeeded", n)
	}
	if _, err := e.svc.ReportStatus(e.ctx, hostPrincipal("h1"), g.Metadata.ID, apiv1.StatusReport{State: apiv1.StateRunning}); !errdefs.IsConflict(err) {
		t.Fatalf("a finished group came back to life: %v", err)
	}
	evs, err := e.svc.ListEvents(e.ctx, auth.Admin, g.Metadata.ID)
	if err != nil {
		t.Fatal(err)
	}
	var reasons []string
	for _, ev := range evs {
		reasons = append(reasons, ev.Reason)
	}
	if strings.Join(reasons, ",") != "Created,Scheduled" {
		t.Fatalf("events %v", reasons)
	}
}

func TestIdempotentCreateByClientToken(t *testing.T) {
	e := newEnv(t, false)
	spec := groupSpec("web", 1, 2)
	spec.Spec.ClientToken = "pod-uid-1"
	a, created, err := e.svc.CreateGroup(e.ctx, tenantPrincipal("acme"), spec)
	if err != nil || !created {
		t.Fatal(err)
	}
	b, created, err := e.svc.CreateGroup(e.ctx, tenantPrincipal("acme"), spec)
	if err != nil || created || b.Metadata.ID != a.Metadata.ID {
		t.Fatalf("second create with the same token: %v, created %v, id %s want %s", err, created, b.Metadata.ID, a.Metadata.ID)
	}
	c, created, err := e.svc.CreateGroup(e.ctx, tenantPrincipal("other"), spec)
	if err != nil || !created || c.Metadata.ID == a.Metadata.ID {
		t.Fatalf("another tenant's same token must make its own group: %v %v", err, created)
	}
}

func TestScheduleFailedSaysWhatIsMissing(t *testing.T) {
	e := newEnv(t, true)
	e.vswitch(t, "vsw-b", "zone-b", "198.19.129.0/24")
	e.host(t, "h1", "zone-b", 8000, 32768, 100)
	g := groupSpec("big", 32, 64)
	g.Spec.FailStrategy = apiv1.FailFast
	created, _, err := e.svc.CreateGroup(e.ctx, auth.Admin, g)
	if err != nil {
		t.Fatal(err)
	}
	failed := e.waitState(t, created.Metadata.ID, apiv1.StateScheduleFailed)
	if !strings.Contains(failed.Status.Message, "no host in zone-b has 32 vCPU / 64 GiB free") {
		t.Fatalf("ScheduleFailed message %q does not say what was missing", failed.Status.Message)
	}
	if failed.Status.Allocated || failed.Status.Host != "" {
		t.Fatalf("a failed group holds capacity: %+v", failed.Status)
	}
}

// fail-back (the default) keeps retrying, and places the group once capacity
// appears; past maxPendingMinutes it fails.
func TestFailBackWaitsThenPlacesOrTimesOut(t *testing.T) {
	e := newEnv(t, true)
	e.vswitch(t, "vsw-a", "zone-a", "198.19.128.0/24")
	g1, _, err := e.svc.CreateGroup(e.ctx, auth.Admin, groupSpec("waits", 2, 4))
	if err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, 10*time.Second, "group waits with no host in zone-a", func() error {
		g, err := e.svc.groups.Get(e.ctx, g1.Metadata.ID)
		if err != nil {
			return err
		}
		if g.Status.Reason != "Unschedulable" || !strings.Contains(g.Status.Message, "no host in zone-a") {
			return fmt.Errorf("status %+v", g.Status)
		}
		return nil
	})
	e.host(t, "h1", "zone-a", 4000, 8192, 10)
	e.waitState(t, g1.Metadata.ID, apiv1.StatePending)

	late := groupSpec("late", 4, 8)
	late.Spec.MaxPendingMinutes = 10
	g2, _, err := e.svc.CreateGroup(e.ctx, auth.Admin, late)
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Add(11 * time.Minute)
	failed := e.waitState(t, g2.Metadata.ID, apiv1.StateScheduleFailed)
	if failed.Status.Reason != "NoCapacity" {
		t.Fatalf("reason %q", failed.Status.Reason)
	}
}

func TestPrivateIPAddress(t *testing.T) {
	e := newEnv(t, true)
	e.vswitch(t, "vsw-a", "zone-a", "198.19.128.0/24")
	e.host(t, "h1", "zone-a", 16000, 65536, 100)
	g := groupSpec("fixed", 1, 2)
	g.Spec.PrivateIPAddress = "198.19.128.77"
	created, _, err := e.svc.CreateGroup(e.ctx, auth.Admin, g)
	if err != nil {
		t.Fatal(err)
	}
	if placed := e.waitState(t, created.Metadata.ID, apiv1.StatePending); placed.Status.IP != "198.19.128.77" {
		t.Fatalf("IP %s, want the requested one", placed.Status.IP)
	}
	if _, _, err := e.svc.CreateGroup(e.ctx, auth.Admin, g); !errdefs.IsConflict(err) || !strings.Contains(err.Error(), created.Metadata.ID) {
		t.Fatalf("a taken IP: want Conflict naming its group, got %v", err)
	}
	g.Spec.PrivateIPAddress = "198.19.200.1"
	if _, _, err := e.svc.CreateGroup(e.ctx, auth.Admin, g); !errdefs.IsInvalid(err) || !strings.Contains(err.Error(), "not inside any allowed vSwitch") {
		t.Fatalf("an IP outside every vSwitch: want InvalidArgument, got %v", err)
	}
	g.Spec.PrivateIPAddress = "198.19.128.1"
	if _, _, err := e.svc.CreateGroup(e.ctx, auth.Admin, g); !errdefs.IsInvalid(err) || !strings.Contains(err.Error(), "gateway") {
		t.Fatalf("the gateway: want InvalidArgument, got %v", err)
	}
}
