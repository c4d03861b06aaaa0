package agent

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/client"
	"github.com/eci-dev/eci/internal/datapath"
	"github.com/eci-dev/eci/internal/runtime"
)

// The tunnel routes the instances of the other hosts whose tunnel IP is
// known, never this host's own.
func TestOverlayRoutesOtherHostsOnly(t *testing.T) {
	o := newOverlay(nil, "h1", "eci0", netip.MustParseAddr("198.18.192.11"), 1450)
	o.addrs = map[string]apiv1.InstanceAddressSpec{
		"own":     {IP: "198.19.128.2", Host: "h1"},
		"remote":  {IP: "198.19.128.3", Host: "h2"},
		"unknown": {IP: "198.19.128.4", Host: "h3"}, // no tunnel IP read yet
		"bad":     {IP: "x", Host: "h2"},
	}
	o.tunnels = map[string]netip.Addr{"h1": netip.MustParseAddr("198.18.192.11"), "h2": netip.MustParseAddr("198.18.192.12")}
	got := o.remotes()
	want := []datapath.Remote{{IP: netip.MustParseAddr("198.19.128.3"), Host: netip.MustParseAddr("198.18.192.12")}}
	if !slices.Equal(got, want) {
		t.Fatalf("remotes %v, want %v", got, want)
	}
	if o.dp.Device != "vx-eci0" || o.dp.MTU != 1450 {
		t.Fatalf("device %+v", o.dp)
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
