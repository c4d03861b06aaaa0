package agent

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"sigs.k8s.io/knftables"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/datapath"
)

// The host enforces the groups of its own instances, with members from the
// whole pool (each in its VPC's mark); a rule's group is the tenant's; ALL
// is every protocol; nothing is written before both lists are in.
func TestFirewallOfTheHost(t *testing.T) {
	book := newAddressBook()
	vnis := map[string]int{"vsw-a": 1, "vsw-x": 7}
	f, err := newFirewall("eci0", "h1", book, func(_ context.Context, id string) (int, error) { return vnis[id], nil })
	if err != nil {
		t.Fatal(err)
	}
	fake := knftables.NewFake(datapath.InetFamily, datapath.FirewallTable("eci0"))
	f.fw.NFT, f.oldDropped = fake, true // no table of the machine's
	ctx := context.Background()
	if err := f.sync(ctx); err != nil || fake.Table != nil {
		t.Fatalf("a sync before the lists: %v, table %v", err, fake.Table)
	}
	book.set(map[string]apiv1.InstanceAddressSpec{
		"web":    {IP: "198.19.1.10", IPv6: "2001:2:0:1::a", VSwitchID: "vsw-x", Host: "h1", SecurityGroups: []string{"t/web"}},
		"client": {IP: "198.19.1.11", IPv6: "2001:2:0:1::b", VSwitchID: "vsw-x", Host: "h2", SecurityGroups: []string{"t/client"}},
		"plain":  {IP: "198.19.1.12", VSwitchID: "vsw-a", Host: "h1"},
	})
	f.sgs.synced = true
	f.sgs.items["t/web"] = &apiv1.SecurityGroup{Metadata: apiv1.ObjectMeta{ID: "t/web", Name: "web", Tenant: "t"}, Spec: apiv1.SecurityGroupSpec{
		Ingress: []apiv1.SecurityRule{{Protocol: "TCP", PortRange: "80/81", GroupID: "client"}, {Protocol: "ALL", CIDR: "198.18.0.0/15"}}}}
	f.sgs.items["t/client"] = &apiv1.SecurityGroup{Metadata: apiv1.ObjectMeta{ID: "t/client", Name: "client", Tenant: "t"}}
	if err := f.sync(ctx); err != nil {
		t.Fatal(err)
	}
	dump := fake.Dump()
	for _, want := range []string{
		"0x70000 . 198.19.1.10 : jump p-",        // web is this host's, in VPC 7
		"meta l4proto tcp th dport 80-81 accept", // the group rule's protocol and ports
		"ip saddr 198.18.0.0/15 accept",          // ALL: no protocol match
		"0x70000 . 198.19.1.11",                  // client is a member, though on h2
		"0x70000 . 2001:2:0:1::a : jump p-",      // web's IPv6 address too
		"0x70000 . 2001:2:0:1::b",                // and client's, a member by IPv6
	} {
		if !strings.Contains(dump, want) {
			t.Errorf("the table lacks %q:\n%s", want, dump)
		}
	}
	if strings.Contains(dump, "198.19.1.12") {
		t.Errorf("an instance in no group is in the table:\n%s", dump)
	}
	ep := datapath.Endpoint{Addr: netip.MustParseAddr("198.19.1.10"), Mark: 7 << 16}
	ep6 := datapath.Endpoint{Addr: netip.MustParseAddr("2001:2:0:1::a"), Mark: 7 << 16}
	if !f.enforced[ep] || !f.enforced[ep6] || len(f.enforced) != 2 {
		t.Errorf("enforced %v", f.enforced)
	}
}

// Fail closed: a group of this host whose VPC can't be read keeps the last
// table (the sync fails); a group that names a security group the host has
// not seen gets nothing either way.
func TestFirewallFailsClosed(t *testing.T) {
	book := newAddressBook()
	f, err := newFirewall("eci0", "h1", book, func(_ context.Context, id string) (int, error) {
		if id == "vsw-unread" {
			return 0, errors.New("the server can't be reached")
		}
		return 1, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	fake := knftables.NewFake(datapath.InetFamily, datapath.FirewallTable("eci0"))
	f.fw.NFT, f.oldDropped = fake, true // no table of the machine's
	f.sgs.synced = true
	addrs := map[string]apiv1.InstanceAddressSpec{"web": {IP: "198.19.1.10", VSwitchID: "vsw-a", Host: "h1", SecurityGroups: []string{"t/gone"}}}
	book.set(addrs)
	if err := f.sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	dump := fake.Dump()
	if !strings.Contains(dump, "-out drop") || strings.Contains(dump, "-out return") {
		t.Errorf("egress of a group not seen is not refused:\n%s", dump)
	}
	addrs["db"] = apiv1.InstanceAddressSpec{IP: "198.19.1.11", VSwitchID: "vsw-unread", Host: "h1", SecurityGroups: []string{"t/gone"}}
	book.set(addrs)
	if err := f.sync(context.Background()); err == nil {
		t.Fatal("a sync without one of the host's instances succeeded")
	}
	if fake.Dump() != dump {
		t.Error("the table changed on a failed sync")
	}
}
