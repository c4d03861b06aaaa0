package v1

import (
	"strings"
	"testing"
)

// A rule's cidr is an IPv4 or an IPv6 CIDR; an IPv4-mapped IPv6 one (which
// would match neither family's packets) and what does not parse are
// refused, naming the field.
func TestSecurityRuleCIDRs(t *testing.T) {
	sg := func(cidr string) *SecurityGroup {
		return &SecurityGroup{Metadata: ObjectMeta{Name: "web"}, Spec: SecurityGroupSpec{
			Ingress: []SecurityRule{{Protocol: "TCP", PortRange: "80/80", CIDR: "198.18.0.0/15"}},
			Egress:  []SecurityRule{{Protocol: "ALL", CIDR: cidr}}}}
	}
	for _, ok := range []string{"0.0.0.0/0", "198.18.0.0/15", "::/0", "fd00::/8", "2001:2::/48", "2001:2::5/128"} {
		if err := ValidateSecurityGroup(sg(ok)); err != nil {
			t.Errorf("cidr %q: %v", ok, err)
		}
	}
	for _, bad := range []string{"198.18.0.0", "fd00::", "198.18.0.0/33", "fd00::/129", "::ffff:198.18.0.0/111", "any"} {
		err := ValidateSecurityGroup(sg(bad))
		if err == nil || !strings.Contains(err.Error(), "spec.egress[0].cidr") || !strings.Contains(err.Error(), "allowed: an IPv4 or IPv6 CIDR") {
			t.Errorf("cidr %q: %v", bad, err)
		}
	}
}
