package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"

	"github.com/vishvananda/netlink"

	"github.com/eci-dev/eci/internal/log"
)

// The host's bridge carries the gateway of every vSwitch whose groups it
// runs. The CNI bridge plugin can put one gateway address on a bridge and
// refuses a second subnet ("already has an IP address different from"),
// so the agent's network config leaves the bridge's addresses alone
// (isGateway false) and the agent adds each vSwitch's gateway before the
// runtime wires a sandbox of that vSwitch: groups of several vSwitches then
// share one host.

// ensureGateway puts gw/bits on the agent's bridge (made if missing) and
// lets the host route between the vSwitches, as the bridge plugin's gateway
// mode did. It checks every time (a few netlink calls per sandbox): the
// bridge may have been removed and made again meanwhile.
func (a *Agent) ensureGateway(ctx context.Context, gw netip.Addr, bits int) error {
	if !gw.Is4() {
		return fmt.Errorf("gateway %s: only IPv4 vSwitches are served", gw)
	}
	key := netip.PrefixFrom(gw, bits).String()
	link, err := netlink.LinkByName(a.cfg.CNIBridge)
	var notFound netlink.LinkNotFoundError
	if errors.As(err, &notFound) {
		br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: a.cfg.CNIBridge}}
		if err := netlink.LinkAdd(br); err != nil && !errors.Is(err, syscall.EEXIST) {
			return fmt.Errorf("bridge %s: %w", a.cfg.CNIBridge, err)
		}
		link, err = netlink.LinkByName(a.cfg.CNIBridge)
	}
	if err != nil {
		return fmt.Errorf("bridge %s: %w", a.cfg.CNIBridge, err)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return fmt.Errorf("bridge %s up: %w", a.cfg.CNIBridge, err)
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: gw.AsSlice(), Mask: net.CIDRMask(bits, 32)}}
	if err := netlink.AddrAdd(link, addr); err != nil && !errors.Is(err, syscall.EEXIST) {
		return fmt.Errorf("gateway %s on bridge %s: %w", key, a.cfg.CNIBridge, err)
	}
	if a.svcs != nil {
		// A sandbox needs no Service to start: a failure here is the
		// virtual services' (answers on the bridge keep the backend's
		// source), said, not the sandbox's.
		if err := bridgeNetfilter(a.cfg.CNIBridge); err != nil {
			log.G(ctx).Warn("virtual services: answers of a backend on the same bridge will not be translated back", "err", err)
		}
	}
	return enableForwarding()
}

// bridgeNetfilter makes the bridge's IPv4 traffic pass the host's netfilter
// hooks (br_netfilter's per-bridge switch: this bridge only, not the host's
// others): a backend's answer to an instance of the same bridge is bridged,
// not routed, and conntrack must see it to give it the virtual IP's source
// back, as on a kubelet node with a bridge network.
func bridgeNetfilter(bridge string) error {
	if on, err := os.ReadFile("/proc/sys/net/bridge/bridge-nf-call-iptables"); err == nil && strings.TrimSpace(string(on)) == "1" {
		return nil // every bridge's already (br_netfilter's default)
	}
	if err := sysctlOn("/sys/class/net/" + bridge + "/bridge/nf_call_iptables"); err != nil {
		return fmt.Errorf("bridge %s: pass its traffic to netfilter (virtual services): %w", bridge, err)
	}
	return nil
}

func enableForwarding() error {
	if err := sysctlOn("/proc/sys/net/ipv4/ip_forward"); err != nil {
		return fmt.Errorf("enable IPv4 forwarding: %w", err)
	}
	return nil
}

// sysctlOn sets a boolean sysctl to 1 unless it is.
func sysctlOn(path string) error {
	cur, err := os.ReadFile(path)
	if err == nil && strings.TrimSpace(string(cur)) == "1" {
		return nil
	}
	return os.WriteFile(path, []byte("1"), 0o644)
}
