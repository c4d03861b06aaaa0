package testbed

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Host is one host of a pool (Options.Hosts): a network namespace joined
// to the bed's underlay, with its own containerd, where a test runs an eci
// agent (as a process entered into the namespace: HostCommand).
type Host struct {
	Name string
	// NetNS is the namespace's name (under /var/run/netns).
	NetNS string
	// TunnelIP is the host's address on the underlay (its interface ul0).
	TunnelIP   netip.Addr
	Containerd *Containerd
	// Dir is the host's directory (its containerd's, agent state...).
	Dir string
}

// hostNetNS is the namespace of host i of slot.
func hostNetNS(slot, i int) string { return fmt.Sprintf("eci-s%d-h%d", slot, i) }

// createUnderlay makes the bridge the pool's hosts join, with the
// underlay's gateway address (the bed's end).
func (b *Bed) createUnderlay() error {
	n := b.Network
	return ipAll(
		[]string{"link", "add", n.UnderlayBridge, "type", "bridge"},
		[]string{"addr", "add", netip.PrefixFrom(n.UnderlayGateway, n.UnderlayCIDR.Bits()).String(), "dev", n.UnderlayBridge},
		[]string{"link", "set", n.UnderlayBridge, "up"},
	)
}

// addHost makes host i: its namespace, its link to the underlay (default
// route through the bed's end), and its containerd.
func (b *Bed) addHost(ctx context.Context, i int) (*Host, error) {
	n := b.Network
	h := &Host{Name: fmt.Sprintf("h%d", i), NetNS: hostNetNS(b.Slot, i), Dir: filepath.Join(b.Dir, "hosts", fmt.Sprintf("h%d", i))}
	a := n.UnderlayCIDR.Addr().As4()
	a[3] = byte(10 + i)
	h.TunnelIP = netip.AddrFrom4(a)
	outer := fmt.Sprintf("eciu%dh%d", b.Slot, i)
	in := func(args ...string) []string { return append([]string{"-n", h.NetNS}, args...) }
	if err := ipAll(
		[]string{"netns", "add", h.NetNS},
		in("link", "set", "lo", "up"),
		[]string{"link", "add", outer, "type", "veth", "peer", "name", "ul0", "netns", h.NetNS},
		[]string{"link", "set", outer, "master", n.UnderlayBridge, "up"},
		in("addr", "add", netip.PrefixFrom(h.TunnelIP, n.UnderlayCIDR.Bits()).String(), "dev", "ul0"),
		in("link", "set", "ul0", "up"),
		in("route", "add", "default", "via", n.UnderlayGateway.String()),
	); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(h.Dir, 0o755); err != nil {
		return nil, err
	}
	c, err := b.startContainerdIn(ctx, h.NetNS, filepath.Join(h.Dir, "containerd"))
	if err != nil {
		return nil, fmt.Errorf("containerd of host %s: %w", h.Name, err)
	}
	h.Containerd = c
	return h, nil
}

// HostCommand is a command that runs bin with args in host h's network
// namespace (nsenter), killed with the test process.
func (h *Host) HostCommand(bin string, args ...string) *exec.Cmd {
	return exec.Command("nsenter", append([]string{"--net=/var/run/netns/" + h.NetNS, "--", bin}, args...)...)
}

// removeHosts deletes the namespaces of the pool hosts of slot (their
// links go with them).
func removeHosts(slot int) error {
	entries, err := os.ReadDir("/var/run/netns")
	if err != nil {
		return nil
	}
	prefix := fmt.Sprintf("eci-s%d-h", slot)
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), prefix) {
			continue
		}
		if out, err := exec.Command("ip", "netns", "del", e.Name()).CombinedOutput(); err != nil {
			return fmt.Errorf("delete network namespace %s: %w: %s", e.Name(), err, out)
		}
	}
	return nil
}

// ipAll runs ip(8) with each argument list in turn.
func ipAll(cmds ...[]string) error {
	for _, c := range cmds {
		if out, err := exec.Command("ip", c...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %w: %s", strings.Join(c, " "), err, out)
		}
	}
	return nil
}
