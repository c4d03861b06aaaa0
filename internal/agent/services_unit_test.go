package agent

import (
	"net/netip"
	"testing"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/vservice"
)

// The tables of a host: each address in the table of the group that holds
// it, the newer group when two of the view hold one (the address's next
// owner while the view catches up), and only the virtual IPs of the tables
// its groups name.
func TestServiceTablesOfTheHost(t *testing.T) {
	g := func(id, tenant, table, ip, rv string, allocated bool) *apiv1.ContainerGroup {
		return &apiv1.ContainerGroup{Metadata: apiv1.ObjectMeta{ID: id, Tenant: tenant, ResourceVersion: rv},
			Spec: apiv1.ContainerGroupSpec{ServiceTable: table}, Status: apiv1.ContainerGroupStatus{IP: ip, Allocated: allocated}}
	}
	vs := func(tenant, table, ip string) *apiv1.VirtualService {
		return &apiv1.VirtualService{Metadata: apiv1.ObjectMeta{ID: tenant + "/" + table + "_" + ip, Tenant: tenant},
			Spec: apiv1.VirtualServiceSpec{Table: table, IP: ip, Ports: []apiv1.VirtualPort{{Protocol: apiv1.ProtocolTCP, Port: 80}}}}
	}
	s := &services{}
	vips := map[string]*apiv1.VirtualService{}
	for _, v := range []*apiv1.VirtualService{vs("a", "c1", "198.18.0.10"), vs("b", "c1", "198.18.0.10"), vs("c", "c9", "198.18.0.10")} {
		vips[v.Metadata.ID] = v
	}
	tables, served := s.tables([]*apiv1.ContainerGroup{
		g("old", "b", "c1", "198.19.1.5", "10", true), // gone; its address now...
		g("new", "a", "c1", "198.19.1.5", "42", true), // ...held by tenant a's group
		g("b2", "b", "c1", "198.19.1.6", "11", true),
		g("done", "a", "c1", "198.19.1.7", "12", false), // holds no address
		g("plain", "a", "", "198.19.1.8", "13", true),   // names no table
	}, vips)
	if len(tables) != 2 || tables[0].Key != "a/c1" || tables[1].Key != "b/c1" {
		t.Fatalf("tables %+v", tables)
	}
	if len(tables[0].Clients) != 1 || tables[0].Clients[0] != clientOf("198.19.1.5") || len(tables[0].Services) != 1 {
		t.Errorf("tenant a's table: %+v", tables[0])
	}
	if len(tables[1].Clients) != 1 || tables[1].Clients[0] != clientOf("198.19.1.6") || tables[1].Services[0].Metadata.Tenant != "b" {
		t.Errorf("tenant b's table: %+v", tables[1])
	}
	if served[clientOf("198.19.1.5")] != "a/c1" || len(served) != 2 {
		t.Errorf("served %v", served)
	}
}

func clientOf(ip string) vservice.Client { return vservice.Client{Addr: netip.MustParseAddr(ip)} }

// One address in two VPCs of one host: two clients, each in its own
// tenant's table (told apart by their VPC's mark); a group whose vSwitch
// the agent has not read yet waits.
func TestServiceTablesOfTwoVPCs(t *testing.T) {
	g := func(id, tenant, vsw string) *apiv1.ContainerGroup {
		return &apiv1.ContainerGroup{Metadata: apiv1.ObjectMeta{ID: id, Tenant: tenant, ResourceVersion: "1"},
			Spec: apiv1.ContainerGroupSpec{ServiceTable: "c1"}, Status: apiv1.ContainerGroupStatus{IP: "198.19.1.5", VSwitchID: vsw, Allocated: true}}
	}
	vnis := map[string]int{"vsw-a": 7, "vsw-b": 8}
	s := &services{vniOf: func(id string) (int, bool) { vni, ok := vnis[id]; return vni, ok }}
	tables, served := s.tables([]*apiv1.ContainerGroup{g("a1", "a", "vsw-a"), g("b1", "b", "vsw-b"), g("c1", "c", "vsw-unread")}, nil)
	a := vservice.Client{Addr: netip.MustParseAddr("198.19.1.5"), Mark: 7 << 16}
	b := vservice.Client{Addr: netip.MustParseAddr("198.19.1.5"), Mark: 8 << 16}
	if len(tables) != 2 || tables[0].Clients[0] != a || tables[1].Clients[0] != b || served[a] != "a/c1" || served[b] != "b/c1" || len(served) != 2 {
		t.Fatalf("tables %+v, served %v", tables, served)
	}
}
