package control

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/auth"
	"github.com/eci-dev/eci/internal/errdefs"
	"github.com/eci-dev/eci/internal/poll"
)

// fieldOf is the one field an InvalidArgument error names.
func fieldOf(t *testing.T, err error) string {
	t.Helper()
	var fes apiv1.FieldErrors
	if !errdefs.IsInvalid(err) || !errors.As(err, &fes) || len(fes) != 1 {
		t.Fatalf("want InvalidArgument naming one field, got %v", err)
	}
	return fes[0].Field
}

// A vSwitch's ipv6Cidr is checked by the IPAM and stored with its gateway
// (the server's); it overlaps no other vSwitch's of the same VPC, and may
// overlap one of another VPC.
func TestIPv6VSwitches(t *testing.T) {
	e := newEnv(t, false)
	create := func(name, vpc, cidr, ipv6, gw6 string) (*apiv1.VSwitch, error) {
		return e.svc.CreateVSwitch(e.ctx, auth.Admin, &apiv1.VSwitch{Metadata: apiv1.ObjectMeta{Name: name},
			Spec: apiv1.VSwitchSpec{Zone: "zone-a", CIDR: cidr, VPCID: vpc, IPv6CIDR: ipv6, IPv6Gateway: gw6}})
	}
	v, err := create("vsw-6", "", "198.19.129.0/24", "fd00:1:2::/64", "")
	if err != nil || v.Spec.IPv6CIDR != "fd00:1:2::/64" || v.Spec.IPv6Gateway != "fd00:1:2::1" {
		t.Fatalf("dual-stack vSwitch: %+v, %v", v, err)
	}
	if got, err := e.svc.GetVSwitch(e.ctx, auth.Admin, "vsw-6"); err != nil || got.Spec.IPv6Gateway != "fd00:1:2::1" {
		t.Fatalf("read back: %+v, %v", got, err)
	}
	if v, err := create("vsw-4", "", "198.19.128.0/24", "", ""); err != nil || v.Spec.IPv6CIDR != "" || v.Spec.IPv6Gateway != "" {
		t.Fatalf("IPv4-only vSwitch: %+v, %v", v, err)
	}
	for _, c := range []struct {
		name, cidr, ipv6, gw6, field, says string
	}{
		{"vsw-bits", "198.19.130.0/24", "fd00:1:3::1/64", "", "spec.ipv6Cidr", "host bits"},
		{"vsw-long", "198.19.130.0/24", "fd00:1:3::/124", "", "spec.ipv6Cidr", "between /48 and /120"},
		{"vsw-ll", "198.19.130.0/24", "fe80::/64", "", "spec.ipv6Cidr", "unique-local"},
		{"vsw-over", "198.19.130.0/24", "fd00:1:2:0:1::/80", "", "spec.ipv6Cidr", "overlaps vSwitch vsw-6 (fd00:1:2::/64) of the same VPC"},
		{"vsw-gw", "198.19.130.0/24", "fd00:1:3::/64", "fd00:1:3::9", "spec.ipv6Gateway", "fd00:1:3::1"},
		{"vsw-gw4", "198.19.130.0/24", "", "fd00:1:3::1", "spec.ipv6Gateway", "without spec.ipv6Cidr"},
	} {
		_, err := create(c.name, "", c.cidr, c.ipv6, c.gw6)
		if f := fieldOf(t, err); f != c.field || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%s: %v, want %s saying %q", c.name, err, c.field, c.says)
		}
	}
	// The gateway the server would set is accepted (a client that sends
	// back what it read).
	if v, err := create("vsw-echo", "", "198.19.131.0/24", "2001:2:0:3::/64", "2001:2:0:3::1"); err != nil || v.Spec.IPv6Gateway != "2001:2:0:3::1" {
		t.Fatalf("the server's own gateway: %+v, %v", v, err)
	}
	if _, err := e.svc.CreateVPC(e.ctx, auth.Admin, &apiv1.VPC{Metadata: apiv1.ObjectMeta{Name: "vpc-a"}}); err != nil {
		t.Fatal(err)
	}
	if v, err := create("vsw-a6", "vpc-a", "198.19.129.0/24", "fd00:1:2::/64", ""); err != nil || v.Spec.IPv6CIDR != "fd00:1:2::/64" {
		t.Fatalf("the same ipv6Cidr in another VPC: %+v, %v", v, err)
	}
}

// A group with enableIpv6 is placed on a vSwitch with IPv6 only, waiting
// while there is none, and gets the address at its IPv4 address's offset;
// a group without it gets none; the addresses the hosts read carry it.
func TestIPv6Placement(t *testing.T) {
	e := newEnv(t, true)
	e.vswitch(t, "vsw-4", "zone-a", "198.19.128.0/24")
	e.host(t, "h1", "zone-a", 16000, 65536, 100)
	a := tenantPrincipal("a")
	create := func(name string, ipv6 bool, vsws ...string) *apiv1.ContainerGroup {
		t.Helper()
		g := groupSpec(name, 1, 2)
		g.Spec.EnableIPv6, g.Spec.VSwitchIDs = ipv6, vsws
		g, _, err := e.svc.CreateGroup(e.ctx, a, g)
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	w, err := e.svc.WatchAddresses(ctx, auth.Admin, "")
	if err != nil {
		t.Fatal(err)
	}

	v6 := create("v6", true)
	poll.Eventually(t, 10*time.Second, "the group waits for a vSwitch with IPv6",
		e.scheduling(t, v6.Metadata.ID, "no vSwitch with IPv6 (ipv6Cidr) among [vsw-4]"))
	if _, err := e.svc.CreateVSwitch(e.ctx, auth.Admin, &apiv1.VSwitch{Metadata: apiv1.ObjectMeta{Name: "vsw-6"},
		Spec: apiv1.VSwitchSpec{Zone: "zone-a", CIDR: "198.19.129.0/24", IPv6CIDR: "fd00:1:2::/64"}}); err != nil {
		t.Fatal(err)
	}
	placed := e.waitState(t, v6.Metadata.ID, apiv1.StatePending)
	ip := netip.MustParseAddr(placed.Status.IP)
	want := netip.AddrFrom16([16]byte{0xfd, 0, 0, 1, 0, 2, 15: ip.As4()[3]}).String()
	if placed.Status.VSwitchID != "vsw-6" || placed.Status.IPv6Address != want {
		t.Fatalf("placed on %s with %s and %q, want vsw-6 and %s", placed.Status.VSwitchID, ip, placed.Status.IPv6Address, want)
	}
	plain := e.waitState(t, create("plain", false, "vsw-6").Metadata.ID, apiv1.StatePending)
	if plain.Status.VSwitchID != "vsw-6" || plain.Status.IPv6Address != "" {
		t.Fatalf("a group without enableIpv6: vSwitch %s, IPv6 %q", plain.Status.VSwitchID, plain.Status.IPv6Address)
	}
	only4 := create("only4", true, "vsw-4")
	poll.Eventually(t, 10*time.Second, "a group naming only a vSwitch without IPv6 waits",
		e.scheduling(t, only4.Metadata.ID, "no vSwitch with IPv6 (ipv6Cidr) among [vsw-4]"))

	list, err := e.svc.ListAddresses(e.ctx, auth.Admin)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, it := range list.Items {
		got[it.Metadata.ID] = it.Spec.IPv6
	}
	if len(got) != 2 || got[v6.Metadata.ID] != want || got[plain.Metadata.ID] != "" {
		t.Fatalf("addresses' IPv6: %v, want %s for %s and none for %s", got, want, v6.Metadata.ID, plain.Metadata.ID)
	}
	deadline := time.After(10 * time.Second)
	for seen := map[string]string{}; len(seen) < 2; {
		select {
		case ev := <-w.Events:
			if ev.Err != nil {
				t.Fatal(ev.Err)
			}
			if ev.Type == apiv1.Added {
				seen[ev.Object.Metadata.ID] = ev.Object.Spec.IPv6
			}
			if ev.Type == apiv1.Added && ev.Object.Spec.IPv6 != got[ev.Object.Metadata.ID] {
				t.Fatalf("watched address %+v, want IPv6 %q", ev.Object.Spec, got[ev.Object.Metadata.ID])
			}
		case <-deadline:
			t.Fatal("the watch of addresses did not see both placements")
		}
	}
}

// A privateIpAddress of a vSwitch without IPv6, for a group with
// enableIpv6: refused at create, failed at placement (where it is checked
// again: the vSwitch never gets IPv6).
func TestIPv6PrivateIP(t *testing.T) {
	e := newEnv(t, false)
	e.vswitch(t, "vsw-4", "zone-a", "198.19.128.0/24")
	e.host(t, "h1", "zone-a", 16000, 65536, 100)
	a := tenantPrincipal("a")
	g := groupSpec("fixed", 1, 2)
	g.Spec.EnableIPv6, g.Spec.PrivateIPAddress = true, "198.19.128.50"
	if _, _, err := e.svc.CreateGroup(e.ctx, a, g); fieldOf(t, err) != "spec.privateIpAddress" || !strings.Contains(err.Error(), "no IPv6 (ipv6Cidr)") {
		t.Fatalf("a privateIpAddress without IPv6: %v", err)
	}
	g.Spec.EnableIPv6 = false
	g, _, err := e.svc.CreateGroup(e.ctx, a, g)
	if err != nil {
		t.Fatal(err)
	}
	g.Spec.EnableIPv6 = true // as if made before its vSwitch was made again without IPv6
	st, err := e.svc.loadPlacementState(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.svc.placeOne(e.ctx, st, g, nil); err != nil {
		t.Fatal(err)
	}
	if f := e.waitState(t, g.Metadata.ID, apiv1.StateScheduleFailed); f.Status.Reason != "InvalidPrivateIP" || !strings.Contains(f.Status.Message, "vSwitch vsw-4, which has no IPv6") {
		t.Fatalf("failed with %s: %s", f.Status.Reason, f.Status.Message)
	}
}

// A fixed IP kept on a vSwitch without IPv6 is not taken again by its
// key's next group with enableIpv6: as for a vSwitch the group does not
// name, it gets an address of one with IPv6 and the kept one is freed.
func TestIPv6FixedIP(t *testing.T) {
	e := newEnv(t, true)
	e.vswitch(t, "vsw-4", "zone-a", "198.19.128.0/24")
	e.host(t, "h1", "zone-a", 16000, 65536, 100)
	a := tenantPrincipal("a")
	keyed := func(name string, ipv6 bool) *apiv1.ContainerGroup {
		t.Helper()
		g := groupSpec(name, 1, 2)
		g.Spec.FixedIPKey, g.Spec.EnableIPv6 = "cluster-a/default/db-0", ipv6
		g, _, err := e.svc.CreateGroup(e.ctx, a, g)
		if err != nil {
			t.Fatal(err)
		}
		return e.waitState(t, g.Metadata.ID, apiv1.StatePending)
	}
	first := keyed("db-0", false)
	if _, err := e.svc.ReportStatus(e.ctx, hostPrincipal("h1"), first.Metadata.ID, apiv1.StatusReport{State: apiv1.StateSucceeded}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.CreateVSwitch(e.ctx, auth.Admin, &apiv1.VSwitch{Metadata: apiv1.ObjectMeta{Name: "vsw-6"},
		Spec: apiv1.VSwitchSpec{Zone: "zone-a", CIDR: "198.19.129.0/24", IPv6CIDR: "2001:2:0:1::/64"}}); err != nil {
		t.Fatal(err)
	}
	next := keyed("db-0-again", true)
	if next.Status.VSwitchID != "vsw-6" || next.Status.IPv6Address == "" {
		t.Fatalf("the key's group with enableIpv6: %s %s %q", next.Status.VSwitchID, next.Status.IP, next.Status.IPv6Address)
	}
	if _, err := e.svc.ips.Get(e.ctx, ipID("vsw-4", first.Status.IP)); !errdefs.IsNotFound(err) {
		t.Fatalf("the address kept on vsw-4 (%s) is still kept: %v", first.Status.IP, err)
	}
}
