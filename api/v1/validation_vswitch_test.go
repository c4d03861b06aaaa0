package v1

import (
	"strings"
	"testing"
)

// A vSwitch's ipv6Cidr is optional; when given it must parse as an IPv6
// prefix (its length and range are the IPAM's to check).
func TestValidateVSwitchIPv6(t *testing.T) {
	vsw := func(ipv6 string) *VSwitch {
		return &VSwitch{Metadata: ObjectMeta{Name: "vsw-a"}, Spec: VSwitchSpec{Zone: "z", CIDR: "198.19.128.0/24", IPv6CIDR: ipv6}}
	}
	for _, ok := range []string{"", "fd00:1:2::/64", "2001:2:0:1::/64"} {
		if err := ValidateVSwitch(vsw(ok)); err != nil {
			t.Errorf("ipv6Cidr %q: %v", ok, err)
		}
	}
	for _, bad := range []string{"fd00::1", "198.19.0.0/24", "::ffff:198.19.0.0/120", "fd00::/129", "fd00:eci::/64", "fe80::1%eth0/64"} {
		err := ValidateVSwitch(vsw(bad))
		if err == nil || !strings.Contains(err.Error(), "spec.ipv6Cidr") || !strings.Contains(err.Error(), "allowed: an IPv6 CIDR") {
			t.Errorf("ipv6Cidr %q: %v", bad, err)
		}
	}
}
