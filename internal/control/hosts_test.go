package control

import (
	"fmt"
	"strings"
	"testing"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/auth"
	"github.com/eci-dev/eci/internal/errdefs"
	"github.com/eci-dev/eci/internal/poll"
)

// A host whose lease expires becomes NotReady and its groups Failed with
// reason HostLost (never left Running), their capacity and IPs released; a
// graceful delete on it completes.
func TestHostLost(t *testing.T) {
	e := newEnv(t, true)
	e.vswitch(t, "vsw-a", "zone-a", "198.19.128.0/24")
	e.host(t, "h1", "zone-a", 16000, 65536, 100)
	a, _, _ := e.svc.CreateGroup(e.ctx, auth.Admin, groupSpec("a", 1, 2))
	b, _, _ := e.svc.CreateGroup(e.ctx, auth.Admin, groupSpec("b", 1, 2))
	e.waitState(t, a.Metadata.ID, apiv1.StatePending)
	e.waitState(t, b.Metadata.ID, apiv1.StatePending)
	if _, err := e.svc.ReportStatus(e.ctx, hostPrincipal("h1"), a.Metadata.ID, apiv1.StatusReport{State: apiv1.StateRunning}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.DeleteGroup(e.ctx, auth.Admin, b.Metadata.ID, nil, false); err != nil {
		t.Fatal(err)
	}

	e.clock.Add(30 * time.Second)
	if _, err := e.svc.Heartbeat(e.ctx, hostPrincipal("h1"), "h1"); err != nil {
		t.Fatal(err)
	}
	e.clock.Add(30 * time.Second)
	if err := e.svc.MonitorOnce(e.ctx); err != nil {
		t.Fatal(err)
	}
	if g, _ := e.svc.groups.Get(e.ctx, a.Metadata.ID); g.Status.State != apiv1.StateRunning {
		t.Fatalf("a host with a fresh heartbeat lost its group: %+v", g.Status)
	}

	e.clock.Add(41 * time.Second)
	if err := e.svc.MonitorOnce(e.ctx); err != nil {
		t.Fatal(err)
	}
	h, _ := e.svc.GetHost(e.ctx, auth.Admin, "h1")
	if h.Status.Ready {
		t.Fatal("host still Ready after its lease expired")
	}
	g, err := e.svc.groups.Get(e.ctx, a.Metadata.ID)
	if err != nil || g.Status.State != apiv1.StateFailed || g.Status.Reason != "HostLost" || g.Status.Allocated {
		t.Fatalf("group on the lost host: %v %+v", err, g.Status)
	}
	if _, err := e.svc.groups.Get(e.ctx, b.Metadata.ID); !errdefs.IsNotFound(err) {
		t.Fatalf("the graceful delete on a lost host did not complete: %v", err)
	}
	// The host's capacity is free; the addresses are not yet: the lost host
	// may still run the sandboxes until it fenced itself (a lease).
	if u := h.Status.Allocated; u.Pods != 0 || u.MilliCPU != 0 || e.ipCount(t) != 2 {
		t.Fatalf("usage %+v, %d IPs right after HostLost, want 0 and 2 (quarantined)", u, e.ipCount(t))
	}
	same := groupSpec("same-ip", 1, 2)
	same.Spec.PrivateIPAddress = g.Status.IP
	if _, _, err := e.svc.CreateGroup(e.ctx, auth.Admin, same); !errdefs.IsConflict(err) || !strings.Contains(err.Error(), "being released until") {
		t.Fatalf("the lost group's address asked for during its quarantine: %v", err)
	}
	e.clock.Add(41 * time.Second)
	if err := e.svc.MonitorOnce(e.ctx); err != nil {
		t.Fatal(err)
	}
	if n := e.ipCount(t); n != 0 {
		t.Fatalf("%d IPs a lease after HostLost", n)
	}

	// New groups avoid the NotReady host, and it is used again once it beats.
	c, _, _ := e.svc.CreateGroup(e.ctx, auth.Admin, groupSpec("c", 1, 2))
	waiting := e.scheduling(t, c.Metadata.ID, "no ready, schedulable host")
	poll.Eventually(t, 10*time.Second, "group c waits for a ready host", waiting)
	poll.Consistently(t, 300*time.Millisecond, "group c waits for a ready host", waiting)
	if _, err := e.svc.Heartbeat(e.ctx, hostPrincipal("h1"), "h1"); err != nil {
		t.Fatal(err)
	}
	e.waitState(t, c.Metadata.ID, apiv1.StatePending)
}

// Graceful delete: Terminating until the agent finalizes; force: gone at once;
// an agent that never confirms: the server completes after the deadline.
func TestDeletion(t *testing.T) {
	e := newEnv(t, true)
	e.vswitch(t, "vsw-a", "zone-a", "198.19.128.0/24")
	e.host(t, "h1", "zone-a", 16000, 65536, 100)
	ids := map[string]string{}
	for _, n := range []string{"graceful", "forced", "stuck"} {
		g, _, err := e.svc.CreateGroup(e.ctx, auth.Admin, groupSpec(n, 1, 2))
		if err != nil {
			t.Fatal(err)
		}
		e.waitState(t, g.Metadata.ID, apiv1.StatePending)
		if _, err := e.svc.ReportStatus(e.ctx, hostPrincipal("h1"), g.Metadata.ID, apiv1.StatusReport{State: apiv1.StateRunning}); err != nil {
			t.Fatal(err)
		}
		ids[n] = g.Metadata.ID
	}
	grace := int64(5)
	g, err := e.svc.DeleteGroup(e.ctx, auth.Admin, ids["graceful"], &grace, false)
	if err != nil || g.Status.State != apiv1.StateTerminating || *g.Metadata.DeletionGracePeriodSeconds != 5 {
		t.Fatalf("graceful delete: %v %+v", err, g)
	}
	// The agent's running report does not undo Terminating.
	if g, _ := e.svc.ReportStatus(e.ctx, hostPrincipal("h1"), ids["graceful"], apiv1.StatusReport{State: apiv1.StateRunning}); g.Status.State != apiv1.StateTerminating {
		t.Fatalf("state %s after a report during deletion", g.Status.State)
	}
	if err := e.svc.Finalize(e.ctx, hostPrincipal("h1"), ids["graceful"]); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.groups.Get(e.ctx, ids["graceful"]); !errdefs.IsNotFound(err) {
		t.Fatalf("finalized group still there: %v", err)
	}
	if _, err := e.svc.DeleteGroup(e.ctx, auth.Admin, ids["forced"], nil, true); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.groups.Get(e.ctx, ids["forced"]); !errdefs.IsNotFound(err) {
		t.Fatalf("force-deleted group still there: %v", err)
	}
	zero := int64(0)
	if _, err := e.svc.DeleteGroup(e.ctx, auth.Admin, ids["stuck"], &zero, false); err != nil {
		t.Fatal(err)
	}
	e.clock.Add(30 * time.Second)
	if err := e.svc.MonitorOnce(e.ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.groups.Get(e.ctx, ids["stuck"]); err != nil {
		t.Fatalf("deletion completed before its deadline: %v", err)
	}
	e.clock.Add(31 * time.Second)
	_, _ = e.svc.Heartbeat(e.ctx, hostPrincipal("h1"), "h1")
	if err := e.svc.MonitorOnce(e.ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.groups.Get(e.ctx, ids["stuck"]); !errdefs.IsNotFound(err) {
		t.Fatalf("an unconfirmed deletion was not completed after grace + timeout: %v", err)
	}
	// The forced and the unconfirmed deletes keep their addresses a lease
	// (the agent may not have stopped the sandbox): the forced one's has
	// passed, the stuck one's not yet.
	if u := e.usageOf(t, "h1"); u.Pods != 0 || e.ipCount(t) != 1 {
		t.Fatalf("usage %+v and %d IPs after every group was deleted, want 0 and 1 (quarantined)", u, e.ipCount(t))
	}
	e.clock.Add(41 * time.Second)
	_, _ = e.svc.Heartbeat(e.ctx, hostPrincipal("h1"), "h1")
	if err := e.svc.MonitorOnce(e.ctx); err != nil {
		t.Fatal(err)
	}
	if n := e.ipCount(t); n != 0 {
		t.Fatalf("%d IPs a lease after the last delete", n)
	}
}

// A tenant sees and changes only its own groups; a host sees only the groups
// placed on it and can't create or delete.
func TestTenantAndHostIsolation(t *testing.T) {
	e := newEnv(t, true)
	e.vswitch(t, "vsw-a", "zone-a", "198.19.128.0/24")
	e.host(t, "h1", "zone-a", 16000, 65536, 100)
	acme, bolt := tenantPrincipal("acme"), tenantPrincipal("bolt")
	ga, _, err := e.svc.CreateGroup(e.ctx, acme, groupSpec("a", 1, 2))
	if err != nil {
		t.Fatal(err)
	}
	gb, _, err := e.svc.CreateGroup(e.ctx, bolt, groupSpec("b", 1, 2))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.GetGroup(e.ctx, bolt, ga.Metadata.ID); !errdefs.IsNotFound(err) {
		t.Fatalf("bolt read acme's group: %v", err)
	}
	if _, err := e.svc.DeleteGroup(e.ctx, bolt, ga.Metadata.ID, nil, true); !errdefs.IsNotFound(err) {
		t.Fatalf("bolt deleted acme's group: %v", err)
	}
	if _, err := e.svc.UpdateGroup(e.ctx, bolt, ga.Metadata.ID, apiv1.GroupUpdate{Tags: map[string]string{"x": "y"}}); !errdefs.IsNotFound(err) {
		t.Fatalf("bolt updated acme's group: %v", err)
	}
	other := groupSpec("c", 1, 2)
	other.Metadata.Tenant = "acme"
	if _, _, err := e.svc.CreateGroup(e.ctx, bolt, other); !errdefs.IsPermissionDenied(err) {
		t.Fatalf("bolt created a group for acme: %v", err)
	}
	list, err := e.svc.ListGroups(e.ctx, acme, GroupFilter{}, 0, "")
	if err != nil || len(list.Items) != 1 || list.Items[0].Metadata.ID != ga.Metadata.ID {
		t.Fatalf("acme's list: %v %+v", err, list)
	}
	e.waitState(t, ga.Metadata.ID, apiv1.StatePending)
	e.waitState(t, gb.Metadata.ID, apiv1.StatePending)
	hostList, err := e.svc.ListGroups(e.ctx, hostPrincipal("h1"), GroupFilter{}, 0, "")
	if err != nil || len(hostList.Items) != 2 {
		t.Fatalf("h1 sees %d groups (%v), want its 2", len(hostList.Items), err)
	}
	if l, _ := e.svc.ListGroups(e.ctx, hostPrincipal("h2"), GroupFilter{}, 0, ""); len(l.Items) != 0 {
		t.Fatalf("h2 sees %d groups placed on h1", len(l.Items))
	}
	if _, _, err := e.svc.CreateGroup(e.ctx, hostPrincipal("h1"), groupSpec("x", 1, 2)); !errdefs.IsPermissionDenied(err) {
		t.Fatalf("a host created a group: %v", err)
	}
	if _, err := e.svc.ReportStatus(e.ctx, acme, ga.Metadata.ID, apiv1.StatusReport{State: apiv1.StateRunning}); !errdefs.IsPermissionDenied(err) {
		t.Fatalf("a tenant reported status: %v", err)
	}
	if _, err := e.svc.RegisterHost(e.ctx, hostPrincipal("h1"), &apiv1.Host{Metadata: apiv1.ObjectMeta{Name: "h2"}}); !errdefs.IsPermissionDenied(err) {
		t.Fatalf("h1 registered h2: %v", err)
	}
}

func TestListFiltersAndPaging(t *testing.T) {
	e := newEnv(t, false)
	for i := 0; i < 7; i++ {
		g := groupSpec("g", 1, 2)
		g.Metadata.Labels = map[string]string{"app": []string{"web", "db"}[i%2]}
		g.Spec.Tags = map[string]string{"team": []string{"red", "blue", "green"}[i%3]}
		if _, _, err := e.svc.CreateGroup(e.ctx, auth.Admin, g); err != nil {
			t.Fatal(err)
		}
	}
	sel, err := ParseSelector("app=web")
	if err != nil {
		t.Fatal(err)
	}
	var seen int
	cont := ""
	for {
		page, err := e.svc.ListGroups(e.ctx, auth.Admin, GroupFilter{Selector: sel}, 2, cont)
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Items) > 2 {
			t.Fatalf("page of %d, limit 2", len(page.Items))
		}
		for _, g := range page.Items {
			if g.Metadata.Labels["app"] != "web" {
				t.Fatalf("selector let through %v", g.Metadata.Labels)
			}
		}
		seen += len(page.Items)
		if page.Continue == "" {
			break
		}
		cont = page.Continue
	}
	if seen != 4 {
		t.Fatalf("app=web matched %d groups, want 4", seen)
	}
	tags, _ := ParseTags("team=red")
	l, _ := e.svc.ListGroups(e.ctx, auth.Admin, GroupFilter{Tags: tags, State: apiv1.StateScheduling}, 0, "")
	if len(l.Items) != 3 {
		t.Fatalf("team=red matched %d, want 3", len(l.Items))
	}
	for _, bad := range []string{"a b=c", "=x", "!"} {
		if _, err := ParseSelector(bad); !errdefs.IsInvalid(err) || !strings.Contains(err.Error(), "labelSelector") {
			t.Errorf("ParseSelector(%q) = %v", bad, err)
		}
	}
}

// A tenant's quota bounds what its placed groups hold together; capacity freed
// by an ended group lets the next one in.
func TestTenantQuota(t *testing.T) {
	e := newEnv(t, true)
	e.vswitch(t, "vsw-a", "zone-a", "198.19.128.0/24")
	e.host(t, "h1", "zone-a", 64000, 262144, 100)
	if _, err := e.svc.PutTenant(e.ctx, auth.Admin, &apiv1.Tenant{Metadata: apiv1.ObjectMeta{Name: "acme"}, Spec: apiv1.TenantSpec{Quota: apiv1.Quota{MilliCPU: 4000}}}); err != nil {
		t.Fatal(err)
	}
	acme := tenantPrincipal("acme")
	a, _, _ := e.svc.CreateGroup(e.ctx, acme, groupSpec("a", 2, 4))
	b, _, _ := e.svc.CreateGroup(e.ctx, acme, groupSpec("b", 2, 4))
	e.waitState(t, a.Metadata.ID, apiv1.StatePending)
	e.waitState(t, b.Metadata.ID, apiv1.StatePending)
	c, _, _ := e.svc.CreateGroup(e.ctx, acme, groupSpec("c", 1, 2))
	poll.Eventually(t, 10*time.Second, "third group waits over quota", func() error {
		g, err := e.svc.groups.Get(e.ctx, c.Metadata.ID)
		if err != nil {
			return err
		}
		if g.Status.State != apiv1.StateScheduling || !strings.Contains(g.Status.Message, "quota of tenant acme exceeded: 4 of 4 vCPU in use") {
			return fmt.Errorf("status %+v", g.Status)
		}
		return nil
	})
	if _, err := e.svc.ReportStatus(e.ctx, hostPrincipal("h1"), a.Metadata.ID, apiv1.StatusReport{State: apiv1.StateSucceeded}); err != nil {
		t.Fatal(err)
	}
	e.waitState(t, c.Metadata.ID, apiv1.StatePending)
	other, _, _ := e.svc.CreateGroup(e.ctx, tenantPrincipal("bolt"), groupSpec("d", 8, 16))
	e.waitState(t, other.Metadata.ID, apiv1.StatePending)
}
