package up

import (
	"context"
	"strings"
	"testing"

	"github.com/eci-dev/eci/internal/server/servertest"
)

// The local vSwitch is dual stack with --pod-ipv6-cidr; a restart on the
// same data dir accepts the same CIDRs and names the flag of another.
func TestLocalVSwitchIPv6(t *testing.T) {
	srv := servertest.Start(t)
	ctx := context.Background()
	cfg := Config{PodCIDR: "198.19.200.0/24", PodIPv6CIDR: "fd00:ec1::/64"}
	for range 2 { // made, then found again
		if err := localVSwitch(ctx, srv.Admin, cfg); err != nil {
			t.Fatal(err)
		}
	}
	v, err := srv.Admin.GetVSwitch(ctx, "vsw-local")
	if err != nil || v.Spec.IPv6CIDR != "fd00:ec1::/64" || v.Spec.IPv6Gateway != "fd00:ec1::1" {
		t.Fatalf("vsw-local: %+v, %v", v, err)
	}
	for _, other := range []string{"", "fd00:ec2::/64"} {
		c := cfg
		c.PodIPv6CIDR = other
		if err := localVSwitch(ctx, srv.Admin, c); err == nil || !strings.Contains(err.Error(), "--pod-ipv6-cidr") || !strings.Contains(err.Error(), "fd00:ec1::/64") {
			t.Errorf("restart with --pod-ipv6-cidr %q: %v", other, err)
		}
	}
	c := cfg
	c.PodCIDR = "198.19.201.0/24"
	if err := localVSwitch(ctx, srv.Admin, c); err == nil || !strings.Contains(err.Error(), "--pod-cidr") {
		t.Errorf("restart with another --pod-cidr: %v", err)
	}
}
