package server

import (
	"context"
	"errors"
	"testing"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/client"
	"github.com/eci-dev/eci/internal/errdefs"
)

// VPCs get distinct VNIs; vSwitches of different VPCs may overlap, never
// two of one VPC; a tenant's VPC holds only that tenant's vSwitches and is
// seen by no other tenant; a VPC with vSwitches can't be deleted, and its
// VNI is free again once it is.
func TestVPCs(t *testing.T) {
	r := start(t, t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, name := range []string{"a", "b"} {
		if _, err := r.admin.PutTenant(ctx, &apiv1.Tenant{Metadata: apiv1.ObjectMeta{Name: name}}); err != nil {
			t.Fatal(err)
		}
	}
	vpc := func(name, tenant, cidr string) (*apiv1.VPC, error) {
		return r.admin.CreateVPC(ctx, &apiv1.VPC{Metadata: apiv1.ObjectMeta{Name: name, Tenant: tenant}, Spec: apiv1.VPCSpec{CIDR: cidr}})
	}
	vsw := func(name, tenant, vpcID, cidr string) (*apiv1.VSwitch, error) {
		return r.admin.CreateVSwitch(ctx, &apiv1.VSwitch{Metadata: apiv1.ObjectMeta{Name: name, Tenant: tenant}, Spec: apiv1.VSwitchSpec{Zone: "z", CIDR: cidr, VPCID: vpcID}})
	}
	field := func(err error) string {
		var ae *client.APIError
		if errors.As(err, &ae) && len(ae.Status.Fields) == 1 {
			return ae.Status.Fields[0].Field
		}
		return ""
	}
	va, err := vpc("vpc-a", "a", "198.19.0.0/16")
	if err != nil || va.Status.VNI != 2 {
		t.Fatalf("vpc-a: %+v, %v", va, err)
	}
	vb, err := vpc("vpc-b", "b", "")
	if err != nil || vb.Status.VNI != 3 {
		t.Fatalf("vpc-b: %+v, %v", vb, err)
	}
	if _, err := vpc("vpc-a", "", ""); !errdefs.IsAlreadyExists(err) {
		t.Fatalf("a second vpc-a: %v", err)
	}
	if _, err := vpc(apiv1.DefaultVPC, "", ""); field(err) != "metadata.name" {
		t.Fatalf("the default VPC stored: %v", err)
	}
	if _, err := vpc("vpc-x", "", "198.19.0.0/30"); field(err) != "spec.cidr" {
		t.Fatalf("a /30 VPC: %v", err)
	}

	// One CIDR in three VPCs: the default, a's and b's.
	for _, c := range []struct{ name, tenant, vpc string }{{"vsw-d", "", ""}, {"vsw-a", "a", "vpc-a"}, {"vsw-b", "b", "vpc-b"}} {
		v, err := vsw(c.name, c.tenant, c.vpc, "198.19.10.0/24")
		want := map[string]int{"": 1, "vpc-a": 2, "vpc-b": 3}[c.vpc]
		if err != nil || v.Status.VNI != want {
			t.Fatalf("%s in %q: %+v, %v", c.name, c.vpc, v, err)
		}
	}
	if _, err := vsw("vsw-a2", "a", "vpc-a", "198.19.10.128/25"); field(err) != "spec.cidr" {
		t.Fatalf("overlapping in one VPC: %v", err)
	}
	if _, err := vsw("vsw-a3", "a", "vpc-a", "198.18.10.0/24"); field(err) != "spec.cidr" {
		t.Fatalf("outside the VPC's CIDR: %v", err)
	}
	if _, err := vsw("vsw-ba", "b", "vpc-a", "198.19.20.0/24"); field(err) != "spec.vpcId" {
		t.Fatalf("b's vSwitch in a's VPC: %v", err)
	}
	if _, err := vsw("vsw-sa", "", "vpc-a", "198.19.21.0/24"); field(err) != "spec.vpcId" {
		t.Fatalf("a shared vSwitch in a's VPC: %v", err)
	}
	if _, err := vsw("vsw-n", "", "vpc-none", "198.19.22.0/24"); field(err) != "spec.vpcId" {
		t.Fatalf("a VPC that does not exist: %v", err)
	}

	ta := r.token(t, apiv1.TokenSpec{Kind: apiv1.TokenTenant, Tenant: "a"})
	list, err := ta.ListVPCs(ctx)
	if err != nil || len(list) != 2 || list[0].Metadata.ID != apiv1.DefaultVPC || list[1].Metadata.ID != "vpc-a" {
		t.Fatalf("a's VPCs: %+v, %v", list, err)
	}
	if _, err := ta.CreateVPC(ctx, &apiv1.VPC{Metadata: apiv1.ObjectMeta{Name: "mine"}}); !errdefs.IsPermissionDenied(err) {
		t.Fatalf("a tenant creates a VPC: %v", err)
	}
	// a's virtual IP may lead to an address of its VPC that b's VPC has too.
	vip := &apiv1.VirtualService{Spec: apiv1.VirtualServiceSpec{Table: "c1", IP: "198.18.100.10",
		Ports: []apiv1.VirtualPort{{Protocol: apiv1.ProtocolTCP, Port: 80, Backends: []apiv1.Backend{{IP: "198.19.10.5", Port: 8080}}}}}}
	if _, err := ta.PutVirtualService(ctx, vip); err != nil {
		t.Fatalf("a backend in a's VPC that b's VPC overlaps: %v", err)
	}

	if err := r.admin.DeleteVPC(ctx, "vpc-a"); !errdefs.IsConflict(err) {
		t.Fatalf("delete a VPC with a vSwitch: %v", err)
	}
	if err := r.admin.DeleteVSwitch(ctx, "vsw-a"); err != nil {
		t.Fatal(err)
	}
	if err := r.admin.DeleteVPC(ctx, "vpc-a"); err != nil {
		t.Fatalf("delete an empty VPC: %v", err)
	}
	if vc, err := vpc("vpc-c", "", ""); err != nil || vc.Status.VNI != 2 {
		t.Fatalf("vpc-a's VNI free again: %+v, %v", vc, err)
	}
}
