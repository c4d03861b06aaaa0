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

// Security groups are a tenant's: written whole, read back by their tenant
// alone (and hosts); bad rules name the field; a rule's groupId and a
// group's securityGroupIds name the tenant's own groups only; addresses
// carry the groups their instance names.
func TestSecurityGroups(t *testing.T) {
	r := start(t, t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r.fakeHost(ctx, t, "h1")
	a := r.token(t, apiv1.TokenSpec{Kind: apiv1.TokenTenant, Tenant: "a"})
	b := r.token(t, apiv1.TokenSpec{Kind: apiv1.TokenTenant, Tenant: "b"})
	host := r.token(t, apiv1.TokenSpec{Kind: apiv1.TokenHost, Host: "h1"})
	field := func(err error) string {
		var ae *client.APIError
		if errors.As(err, &ae) && len(ae.Status.Fields) == 1 {
			return ae.Status.Fields[0].Field
		}
		return err.Error()
	}
	sg := func(name string, ingress ...apiv1.SecurityRule) *apiv1.SecurityGroup {
		return &apiv1.SecurityGroup{Metadata: apiv1.ObjectMeta{Name: name}, Spec: apiv1.SecurityGroupSpec{Ingress: ingress}}
	}
	if _, err := a.PutSecurityGroup(ctx, sg("client")); err != nil {
		t.Fatal(err)
	}
	web, err := a.PutSecurityGroup(ctx, sg("web", apiv1.SecurityRule{Protocol: "TCP", PortRange: "80/80", GroupID: "client"}))
	if err != nil || web.Metadata.ID != "a/web" || web.Metadata.Tenant != "a" || web.Spec.InnerAccessPolicy != apiv1.InnerAccept {
		t.Fatalf("web: %+v, %v", web, err)
	}
	for _, c := range []struct {
		rule  apiv1.SecurityRule
		field string
	}{
		{apiv1.SecurityRule{Protocol: "SCTP", CIDR: "198.18.0.0/15"}, "spec.ingress[0].protocol"},
		{apiv1.SecurityRule{Protocol: "TCP", PortRange: "90/80", CIDR: "198.18.0.0/15"}, "spec.ingress[0].portRange"},
		{apiv1.SecurityRule{Protocol: "ICMP", PortRange: "1/2", CIDR: "198.18.0.0/15"}, "spec.ingress[0].portRange"},
		{apiv1.SecurityRule{Protocol: "TCP", CIDR: "::ffff:198.18.0.0/111"}, "spec.ingress[0].cidr"},
		{apiv1.SecurityRule{Protocol: "TCP"}, "spec.ingress[0].cidr"},
		{apiv1.SecurityRule{Protocol: "TCP", CIDR: "198.18.0.0/15", GroupID: "client"}, "spec.ingress[0].groupId"},
		{apiv1.SecurityRule{Protocol: "TCP", GroupID: "nope"}, "spec.ingress[0].groupId"},
	} {
		if _, err := a.PutSecurityGroup(ctx, sg("bad", c.rule)); field(err) != c.field {
			t.Errorf("rule %+v: %v, want the field %s", c.rule, err, c.field)
		}
	}
	// b can't name a's group, in a rule or in a group.
	if _, err := b.PutSecurityGroup(ctx, sg("x", apiv1.SecurityRule{Protocol: "TCP", GroupID: "web"})); field(err) != "spec.ingress[0].groupId" {
		t.Fatalf("b names a's group: %v", err)
	}
	g := group("app")
	g.Spec.SecurityGroupIDs = []string{"web"}
	if _, _, err := b.CreateGroup(ctx, g); field(err) != "spec.securityGroupIds[0]" {
		t.Fatalf("b's group names a's security group: %v", err)
	}
	if list, err := b.ListSecurityGroups(ctx); err != nil || len(list) != 0 {
		t.Fatalf("b lists %+v, %v", list, err)
	}
	if list, err := host.ListSecurityGroups(ctx); err != nil || len(list) != 2 {
		t.Fatalf("the host lists %+v, %v", list, err)
	}
	created, _, err := a.CreateGroup(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	var addrs []apiv1.InstanceAddress
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if addrs, err = host.ListAddresses(ctx); err == nil && len(addrs) == 1 {
			break
		}
	}
	if len(addrs) != 1 || addrs[0].Metadata.ID != created.Metadata.ID || len(addrs[0].Spec.SecurityGroups) != 1 || addrs[0].Spec.SecurityGroups[0] != "a/web" {
		t.Fatalf("addresses %+v (%v)", addrs, err)
	}
	if err := b.DeleteSecurityGroup(ctx, "", "web"); !errdefs.IsNotFound(err) {
		t.Fatalf("b deletes a's group: %v", err)
	}
	if err := a.DeleteSecurityGroup(ctx, "", "web"); err != nil {
		t.Fatal(err)
	}
}
