package control

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/auth"
	"github.com/eci-dev/eci/internal/errdefs"
	"github.com/eci-dev/eci/internal/poll"
	"github.com/eci-dev/eci/internal/store"
)

// A tenant's quota of groups counts every group not ended, placed or not:
// groups that can never be placed still count. The bound on stored groups
// counts every state. Both refuse the create with a message naming them,
// and room comes back as groups end or go.
func TestWhatATenantCanStore(t *testing.T) {
	e := newEnv(t, false) // no placer: nothing is ever placed
	if _, err := e.svc.PutTenant(e.ctx, auth.Admin, &apiv1.Tenant{Metadata: apiv1.ObjectMeta{Name: "acme"}, Spec: apiv1.TenantSpec{Quota: apiv1.Quota{Groups: 3}}}); err != nil {
		t.Fatal(err)
	}
	acme := tenantPrincipal("acme")
	var ids []string
	for i := range 3 {
		g, _, err := e.svc.CreateGroup(e.ctx, acme, groupSpec(fmt.Sprintf("g%d", i), 1, 2))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, g.Metadata.ID)
	}
	_, _, err := e.svc.CreateGroup(e.ctx, acme, groupSpec("over", 1, 2))
	if !errdefs.IsPermissionDenied(err) || !strings.Contains(err.Error(), "quota of tenant acme exceeded: 3 of 3 groups not ended") {
		t.Fatalf("a 4th Scheduling group: %v", err)
	}
	if _, _, err := e.svc.CreateGroup(e.ctx, tenantPrincipal("bolt"), groupSpec("theirs", 1, 2)); err != nil {
		t.Fatalf("another tenant is not bound by acme's quota: %v", err)
	}
	// An ended group leaves the quota (it stays stored, inside its retention).
	if _, err := e.svc.transition(e.ctx, ids[0], func(g *apiv1.ContainerGroup) bool {
		g.Status.State, g.Status.Reason = apiv1.StateScheduleFailed, "NoCapacity"
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.svc.CreateGroup(e.ctx, acme, groupSpec("fits", 1, 2)); err != nil {
		t.Fatalf("after a group ended: %v", err)
	}
	// A deleted one too.
	if _, err := e.svc.DeleteGroup(e.ctx, acme, ids[1], nil, false); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.svc.CreateGroup(e.ctx, acme, groupSpec("fits-again", 1, 2)); err != nil {
		t.Fatalf("after a group was deleted: %v", err)
	}

	// The bound on stored groups, every state.
	e.svc.opts.MaxStoredGroups = 5 // acme stores 4 (one ended), bolt 1
	if _, _, err := e.svc.CreateGroup(e.ctx, tenantPrincipal("bolt"), groupSpec("b2", 1, 2)); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.PutTenant(e.ctx, auth.Admin, &apiv1.Tenant{Metadata: apiv1.ObjectMeta{Name: "acme"}}); err != nil { // no quota now
		t.Fatal(err)
	}
	if _, _, err := e.svc.CreateGroup(e.ctx, acme, groupSpec("fifth", 1, 2)); err != nil {
		t.Fatal(err)
	}
	_, _, err = e.svc.CreateGroup(e.ctx, acme, groupSpec("sixth", 1, 2))
	if !errdefs.IsPermissionDenied(err) || !strings.Contains(err.Error(), "stores 5 groups, the most the service keeps per tenant (5, every state)") {
		t.Fatalf("past the bound on stored groups: %v", err)
	}
	// The ended group, removed by retention, gives its room back.
	e.clock.Add(RetainFailed + time.Minute)
	if err := e.svc.CollectGarbage(e.ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.svc.CreateGroup(e.ctx, acme, groupSpec("sixth", 1, 2)); err != nil {
		t.Fatalf("after retention removed the ended group: %v", err)
	}
}

// A client token's index goes with its group: once the group is deleted, the
// same token makes a new group.
func TestClientTokenGoesWithItsGroup(t *testing.T) {
	e := newEnv(t, false)
	spec := groupSpec("web", 1, 2)
	spec.Spec.ClientToken = "cluster-a/pod-uid-1"
	a, _, err := e.svc.CreateGroup(e.ctx, tenantPrincipal("acme"), spec)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.DeleteGroup(e.ctx, tenantPrincipal("acme"), a.Metadata.ID, nil, false); err != nil {
		t.Fatal(err)
	}
	if n, err := e.svc.idxs.Count(e.ctx, ""); err != nil || n != 0 {
		t.Fatalf("%d client-token index keys left after the group went (%v)", n, err)
	}
	b, created, err := e.svc.CreateGroup(e.ctx, tenantPrincipal("acme"), spec)
	if err != nil || !created || b.Metadata.ID == a.Metadata.ID {
		t.Fatalf("the token after its group went: %v created=%v", err, created)
	}
	if n, err := e.svc.members.Count(e.ctx, ""); err != nil || n != 2 {
		t.Fatalf("index keys of one live group: %d (%v), want stored and live", n, err)
	}
}

// Events of one object with the same reason and message are one series
// (count, first and last time); an object keeps at most MaxEventsPerObject.
func TestEventsAggregatedAndCapped(t *testing.T) {
	e := newEnv(t, false)
	g, _, err := e.svc.CreateGroup(e.ctx, tenantPrincipal("acme"), groupSpec("web", 1, 2))
	if err != nil {
		t.Fatal(err)
	}
	id := g.Metadata.ID
	first := e.clock.Now()
	for range 5 {
		e.clock.Add(time.Second)
		e.svc.recordEvent(e.ctx, "ContainerGroup", id, "acme", apiv1.EventWarning, "BackOff", "restarting container app (exit code 1)", "agent/h1")
	}
	evs, err := e.svc.ListEvents(e.ctx, auth.Admin, id)
	if err != nil {
		t.Fatal(err)
	}
	var backoff *apiv1.Event
	for i := range evs {
		if evs[i].Reason == "BackOff" {
			if backoff != nil {
				t.Fatalf("two BackOff events: %+v", evs)
			}
			backoff = &evs[i]
		}
	}
	if backoff == nil || backoff.Count != 5 || !backoff.FirstTime.Equal(first.Add(time.Second)) || !backoff.LastTime.Equal(first.Add(5*time.Second)) {
		t.Fatalf("the series: %+v", backoff)
	}
	for i := range MaxEventsPerObject + 50 {
		e.clock.Add(time.Second)
		e.svc.recordEvent(e.ctx, "ContainerGroup", id, "acme", apiv1.EventNormal, "Pulling", fmt.Sprintf("pulling image %d", i), "agent/h1")
	}
	evs, err = e.svc.ListEvents(e.ctx, auth.Admin, id)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != MaxEventsPerObject || evs[len(evs)-1].Message != fmt.Sprintf("pulling image %d", MaxEventsPerObject+49) {
		t.Fatalf("%d events kept (last %q), want the newest %d", len(evs), evs[len(evs)-1].Message, MaxEventsPerObject)
	}
}

// A tenant's vSwitch is its own: other tenants neither see it nor get
// addresses from it, and errors never name another tenant's groups.
func TestVSwitchesScopedToTenants(t *testing.T) {
	e := newEnv(t, true)
	for _, name := range []string{"acme", "bolt"} {
		if _, err := e.svc.PutTenant(e.ctx, auth.Admin, &apiv1.Tenant{Metadata: apiv1.ObjectMeta{Name: name}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.svc.CreateVSwitch(e.ctx, auth.Admin, &apiv1.VSwitch{Metadata: apiv1.ObjectMeta{Name: "vsw-acme", Tenant: "acme"},
		Spec: apiv1.VSwitchSpec{Zone: "zone-a", CIDR: "198.19.128.0/24"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.CreateVSwitch(e.ctx, auth.Admin, &apiv1.VSwitch{Metadata: apiv1.ObjectMeta{Name: "vsw-x", Tenant: "nobody"},
		Spec: apiv1.VSwitchSpec{Zone: "zone-a", CIDR: "198.19.129.0/24"}}); !errdefs.IsInvalid(err) || !strings.Contains(err.Error(), "metadata.tenant") {
		t.Fatalf("a vSwitch of a tenant that does not exist: %v", err)
	}
	e.host(t, "h1", "zone-a", 64000, 262144, 100)
	acme, bolt := tenantPrincipal("acme"), tenantPrincipal("bolt")
	if l, err := e.svc.ListVSwitches(e.ctx, bolt); err != nil || len(l) != 0 {
		t.Fatalf("bolt lists %v (%v)", l, err)
	}
	if _, err := e.svc.GetVSwitch(e.ctx, bolt, "vsw-acme"); !errdefs.IsNotFound(err) {
		t.Fatalf("bolt reads acme's vSwitch: %v", err)
	}
	if l, err := e.svc.ListVSwitches(e.ctx, acme); err != nil || len(l) != 1 {
		t.Fatalf("acme lists %v (%v)", l, err)
	}
	if l, err := e.svc.ListVSwitches(e.ctx, hostPrincipal("h1")); err != nil || len(l) != 1 {
		t.Fatalf("a host lists %v (%v)", l, err)
	}
	named := groupSpec("named", 1, 2)
	named.Spec.VSwitchIDs = []string{"vsw-acme"}
	_, _, err := e.svc.CreateGroup(e.ctx, bolt, named)
	_, _, errMissing := e.svc.CreateGroup(e.ctx, bolt, func() *apiv1.ContainerGroup {
		g := groupSpec("n2", 1, 2)
		g.Spec.VSwitchIDs = []string{"vsw-none"}
		return g
	}())
	if !errdefs.IsInvalid(err) || !strings.Contains(err.Error(), `spec.vSwitchIds[0]: "vsw-acme" is not a vSwitch of tenant bolt or a shared one`) ||
		strings.Replace(err.Error(), "vsw-acme", "vsw-none", 1) != errMissing.Error() {
		t.Fatalf("bolt names acme's vSwitch: %v (a missing one: %v)", err, errMissing)
	}
	// Unnamed: acme's groups are placed on its vSwitch, bolt's wait.
	a, _, err := e.svc.CreateGroup(e.ctx, acme, groupSpec("a", 1, 2))
	if err != nil {
		t.Fatal(err)
	}
	placed := e.waitState(t, a.Metadata.ID, apiv1.StatePending)
	b, _, err := e.svc.CreateGroup(e.ctx, bolt, groupSpec("b", 1, 2))
	if err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, 10*time.Second, "bolt's group waits for a vSwitch", e.scheduling(t, b.Metadata.ID, "no vSwitch of tenant bolt or shared"))
	// acme's address, asked for by acme again and by an admin for bolt (with a
	// shared vSwitch over the same range being impossible, the admin's
	// group names acme's vSwitch's address: not usable by bolt).
	same := groupSpec("same-ip", 1, 2)
	same.Spec.PrivateIPAddress = placed.Status.IP
	if _, _, err := e.svc.CreateGroup(e.ctx, acme, same); !errdefs.IsConflict(err) || !strings.Contains(err.Error(), "group "+a.Metadata.ID) {
		t.Fatalf("acme asks for its own group's address: %v", err)
	}
	if _, _, err := e.svc.CreateGroup(e.ctx, bolt, same); err == nil || strings.Contains(err.Error(), a.Metadata.ID) {
		t.Fatalf("bolt asks for acme's address: %v", err)
	}
	if got := e.svc.ownerName(e.ctx, a.Metadata.ID, "bolt"); got != "a group of another tenant" {
		t.Fatalf("the owner named to bolt: %q", got)
	}
}

// Groups stored before the index keys existed (an upgrade) count once a
// leader backfills them.
func TestBackfillMembers(t *testing.T) {
	e := newEnv(t, false)
	for i := range 3 {
		if _, _, err := e.svc.CreateGroup(e.ctx, tenantPrincipal("acme"), groupSpec(fmt.Sprintf("g%d", i), 1, 2)); err != nil {
			t.Fatal(err)
		}
	}
	members, _, _, err := e.svc.members.List(e.ctx, store.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var drop []store.Op
	for _, m := range members {
		drop = append(drop, e.svc.members.DeleteOp(m.Metadata.ID))
	}
	if _, err := e.svc.st.Commit(e.ctx, nil, drop); err != nil {
		t.Fatal(err)
	}
	n, err := e.svc.BackfillMembers(e.ctx)
	if err != nil || n != 6 {
		t.Fatalf("backfilled %d keys (%v), want 6", n, err)
	}
	if n, err := e.svc.BackfillMembers(e.ctx); err != nil || n != 0 {
		t.Fatalf("a second backfill wrote %d keys (%v)", n, err)
	}
	if live, _ := e.svc.members.Count(e.ctx, "live/acme/"); live != 3 {
		t.Fatalf("%d live keys", live)
	}
}

// Groups over LargeGroupBytes are bounded apart; an ended group keeps
// neither its files nor its passwords, and so is small again. A files
// update that echoes what the service returned (SHA256, no content)
// changes nothing; another SHA256 without content is refused.
func TestLargeGroupsAndEndedSecrets(t *testing.T) {
	e := newEnv(t, false)
	e.svc.opts.MaxLargeGroups = 1
	acme := tenantPrincipal("acme")
	withFile := func(name string, n int) *apiv1.ContainerGroup {
		g := groupSpec(name, 1, 2)
		g.Spec.Volumes = []apiv1.Volume{{Name: "s", Files: &apiv1.FilesVolume{Files: []apiv1.File{{Path: "f", Content: make([]byte, n)}}}}}
		g.Spec.ImageRegistryCredentials = []apiv1.RegistryCredential{{Server: "reg", Username: "u", Password: "p4ss"}}
		return g
	}
	big, _, err := e.svc.CreateGroup(e.ctx, acme, withFile("big", 20<<10))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.svc.CreateGroup(e.ctx, acme, withFile("big2", 20<<10)); !errdefs.IsPermissionDenied(err) || !strings.Contains(err.Error(), "groups over 16 KiB") {
		t.Fatalf("a second large group past the bound of 1: %v", err)
	}
	if _, _, err := e.svc.CreateGroup(e.ctx, acme, withFile("small", 10)); err != nil {
		t.Fatalf("a small group: %v", err)
	}
	// Echo: unchanged; a foreign SHA256: refused.
	sum := sha256.Sum256(make([]byte, 20<<10))
	echo := apiv1.FilesVolume{Files: []apiv1.File{{Path: "f", SHA256: hex.EncodeToString(sum[:])}}}
	if _, err := e.svc.UpdateGroup(e.ctx, acme, big.Metadata.ID, apiv1.GroupUpdate{Files: map[string]apiv1.FilesVolume{"s": echo}}); err != nil {
		t.Fatal(err)
	}
	if g, _ := e.svc.groups.Get(e.ctx, big.Metadata.ID); len(g.Spec.Volumes[0].Files.Files[0].Content) != 20<<10 {
		t.Fatalf("an echoed file lost its content: %d bytes", len(g.Spec.Volumes[0].Files.Files[0].Content))
	}
	echo.Files[0].SHA256 = strings.Repeat("0", 64)
	if _, err := e.svc.UpdateGroup(e.ctx, acme, big.Metadata.ID, apiv1.GroupUpdate{Files: map[string]apiv1.FilesVolume{"s": echo}}); !errdefs.IsInvalid(err) {
		t.Fatalf("a SHA256 without its content: %v", err)
	}
	if _, err := e.svc.transition(e.ctx, big.Metadata.ID, func(g *apiv1.ContainerGroup) bool {
		g.Status.State, g.Status.Reason = apiv1.StateFailed, "Error"
		return true
	}); err != nil {
		t.Fatal(err)
	}
	ended, _ := e.svc.groups.Get(e.ctx, big.Metadata.ID)
	if f := ended.Spec.Volumes[0].Files.Files[0]; f.Content != nil || f.SHA256 != hex.EncodeToString(sum[:]) || ended.Spec.ImageRegistryCredentials[0].Password != "" {
		t.Fatalf("an ended group keeps its secrets: %+v %+v", f, ended.Spec.ImageRegistryCredentials)
	}
	if _, _, err := e.svc.CreateGroup(e.ctx, acme, withFile("big3", 20<<10)); err != nil {
		t.Fatalf("a large group once the other ended: %v", err)
	}
}
