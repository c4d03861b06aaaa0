package agent

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/client"
	"github.com/eci-dev/eci/internal/datapath"
	"github.com/eci-dev/eci/internal/errdefs"
	"github.com/eci-dev/eci/internal/runtime"
)

// The tunnels route the instances of the other hosts whose tunnel IP is
// known, each in its VPC's tunnel, never this host's own (whose VPCs get a
// tunnel).
func TestOverlayRoutesOtherHostsOnly(t *testing.T) {
	vnis := map[string]int{"vsw-a": 1, "vsw-x": 7}
	o := newOverlay(nil, "h1", "eci0", netip.MustParseAddr("198.18.192.11"), 1450, nil, newAddressBook(), func(_ context.Context, id string) (int, error) {
		if vni, ok := vnis[id]; ok {
			return vni, nil
		}
		return 0, fmt.Errorf("vSwitch %s: %w", id, errdefs.ErrNotFound)
	})
	addrs := map[string]apiv1.InstanceAddressSpec{
		"own":     {IP: "198.19.128.2", Host: "h1", VSwitchID: "vsw-x"},
		"remote":  {IP: "198.19.128.3", Host: "h2", VSwitchID: "vsw-a"},
		"remote7": {IP: "198.19.128.3", IPv6: "2001:2:0:1::3", Host: "h2", VSwitchID: "vsw-x"},
		"unknown": {IP: "198.19.128.4", Host: "h3", VSwitchID: "vsw-a"}, // no tunnel IP read yet
		"bad":     {IP: "x", Host: "h2", VSwitchID: "vsw-a"},
	}
	o.tunnels = map[string]netip.Addr{"h1": netip.MustParseAddr("198.18.192.11"), "h2": netip.MustParseAddr("198.18.192.12")}
	got, local, err := o.remotes(context.Background(), addrs)
	h2 := netip.MustParseAddr("198.18.192.12")
	want := map[int][]datapath.Remote{1: {{IP: netip.MustParseAddr("198.19.128.3"), Host: h2}}, 7: {{IP: netip.MustParseAddr("198.19.128.3"), Host: h2}, {IP: netip.MustParseAddr("2001:2:0:1::3"), Host: h2}}}
	if err != nil || len(got) != 2 || !slices.Equal(got[1], want[1]) || !slices.Equal(got[7], want[7]) || len(local) != 1 || !local[7] {
		t.Fatalf("remotes %v, local %v (%v); want %v, local VPC 7", got, local, err, want)
	}
	for _, bad := range []string{"::ffff:198.19.128.5", "198.19.128.5", "fe80::1", "ff02::1", "x"} {
		if ip := bookIPv6(apiv1.InstanceAddressSpec{IPv6: bad}); ip.IsValid() {
			t.Errorf("bookIPv6(%q) = %s, want none", bad, ip)
		}
	}
	addrs["gone"] = apiv1.InstanceAddressSpec{IP: "198.19.128.9", Host: "h2", VSwitchID: "vsw-gone"}
	if got, _, err := o.remotes(context.Background(), addrs); err != nil || len(got[1]) != 1 {
		t.Fatalf("an address of a vSwitch that is gone: %v, %v", got, err)
	}
}

func TestTunnelConfig(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Host.Metadata.Name = "h1"
	cfg.Client, cfg.Runtime = &client.Client{}, runtime.NewFake(netip.MustParseAddr("198.19.128.2"))
	cfg.TunnelIP = netip.MustParseAddr("127.0.0.1")
	if err := cfg.validate(); err == nil || !strings.Contains(err.Error(), "--tunnel-ip") {
		t.Errorf("loopback tunnel IP: %v", err)
	}
	cfg.TunnelIP, cfg.NetworkName = netip.MustParseAddr("198.18.192.11"), "a-long-network"
	if err := cfg.validate(); err == nil || !strings.Contains(err.Error(), "--network-name") {
		t.Errorf("network name too long for the tunnel device: %v", err)
	}
	cfg.NetworkName, cfg.MTU = "eci0", 500
	if err := cfg.validate(); err == nil || !strings.Contains(err.Error(), "--mtu") {
		t.Errorf("MTU 500: %v", err)
	}
}
