package agent

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"sigs.k8s.io/knftables"

	"github.com/eci-dev/eci/internal/datapath"
	"github.com/eci-dev/eci/internal/log"
)

// hostNetwork is what the sandboxes' attaches and the tunnels share: the
// isolation of the host's VPCs (datapath.Isolation), changed one at a time
// so that a rebuild of the marks never drops a link being attached.
type hostNetwork struct {
	ra  sync.Once // the warning of warnRouterAdvertisements
	mu  sync.Mutex
	iso *datapath.Isolation // nil: no nftables; only the default VPC is served
}

// newHostNetwork sets the host's sysctls and rebuilds the VPCs' marks from
// the kernel's routes (an agent that starts again keeps its instances
// apart). Without nftables the host serves the default VPC alone, and says
// why.
func newHostNetwork(ctx context.Context, network string, tunnelIP netip.Addr) *hostNetwork {
	hn := &hostNetwork{}
	if err := datapath.SweepShapers(); err != nil {
		log.G(ctx).Warn("remove the bandwidth shapers of instances gone", "err", err)
	}
	nft, err := knftables.New(datapath.InetFamily, datapath.IsolationTable(network))
	if err != nil {
		log.G(ctx).Error("VPCs are off: groups of vSwitches outside the default VPC can't start on this host", "err", err)
		return hn
	}
	if err := datapath.HostSysctls(); err != nil {
		log.G(ctx).Error("VPCs are off: groups of vSwitches outside the default VPC can't start on this host", "err", err)
		return hn
	}
	hn.iso = &datapath.Isolation{NFT: nft, Network: network, Tunnel: tunnelIP.IsValid(), Local: tunnelIP}
	if tunnelIP.IsValid() {
		// The default VPC's tunnel takes what a real node's pods send
		// through another host (route entries): the kernel's check of
		// its sources must be off (datapath.Overlay).
		if raw, err := os.ReadFile("/proc/sys/net/ipv4/conf/all/rp_filter"); err == nil && strings.TrimSpace(string(raw)) != "0" {
			log.G(ctx).Warn("net.ipv4.conf.all.rp_filter is not 0: a real node's pods reach no instance of another host through this one (route entries)", "rp_filter", strings.TrimSpace(string(raw)))
		}
	}
	if err := hn.iso.Sync(ctx); err != nil {
		// Every attach gives its link its mark anyway.
		log.G(ctx).Error("VPCs: rebuild the marks of the host's links", "err", err)
	} else if err := datapath.DropIPv4Table(ctx, datapath.IsolationTable(network)); err != nil {
		// (The new table is in: the old one, of family ip, of an agent
		// of before IPv6, only repeats it.)
		log.G(ctx).Warn("the VPCs' table of before IPv6 stays", "err", err)
	}
	return hn
}

// attach makes a sandbox's link, given its VPC's mark and zone before it
// is up, under the lock a rebuild of the marks takes too.
func (hn *hostNetwork) attach(ctx context.Context, a datapath.Attachment) (*datapath.Attached, error) {
	hn.mu.Lock()
	defer hn.mu.Unlock()
	link := datapath.HostInterfaceName(a.ContainerID)
	if err := hn.markLocked(ctx, link, a.VNI); err != nil {
		return nil, err
	}
	if a.Address6.IsValid() {
		// IPv6 has no reverse-path filter and no NAT: the table's guards
		// must be in before the link is up.
		if hn.iso == nil {
			return nil, fmt.Errorf("IPv6 address %s: this host serves IPv4 alone (no nftables; see the agent's log)", a.Address6)
		}
		if err := hn.iso.Ensure(ctx); err != nil {
			return nil, err
		}
		hn.ra.Do(func() { warnRouterAdvertisements(ctx) })
	}
	at, err := datapath.Attach(a)
	if err != nil && hn.iso != nil && a.VNI > datapath.DefaultVNI {
		_ = hn.iso.Remove(ctx, link)
	}
	return at, err
}

// ensureTunnel makes (or checks) a VPC's tunnel, marked before it is up.
func (hn *hostNetwork) ensureTunnel(ctx context.Context, dev *datapath.Overlay) error {
	hn.mu.Lock()
	defer hn.mu.Unlock()
	if err := hn.markLocked(ctx, dev.Device, dev.VNI); err != nil {
		return err
	}
	return dev.Ensure()
}

// markLocked gives link VPC vni's mark and zone (hn.mu held).
func (hn *hostNetwork) markLocked(ctx context.Context, link string, vni int) error {
	if vni <= datapath.DefaultVNI {
		return nil
	}
	if hn.iso == nil {
		return fmt.Errorf("VPC %d: this host serves the default VPC alone (no nftables; see the agent's log)", vni)
	}
	return hn.iso.Add(ctx, link, vni)
}

// setPeers makes the other hosts' tunnel IPs the only senders to the
// tunnels' port.
func (hn *hostNetwork) setPeers(ctx context.Context, peers []netip.Addr) error {
	if hn.iso == nil {
		return nil
	}
	hn.mu.Lock()
	defer hn.mu.Unlock()
	return hn.iso.SetPeers(ctx, peers)
}

// detach removes a sandbox's link and forgets its mark.
func (hn *hostNetwork) detach(ctx context.Context, containerID string) error {
	hn.mu.Lock()
	defer hn.mu.Unlock()
	if err := datapath.Detach(containerID); err != nil {
		return err
	}
	if hn.iso != nil {
		if err := hn.iso.Remove(ctx, datapath.HostInterfaceName(containerID)); err != nil {
			log.G(ctx).Warn("VPCs: the mark of a link that is gone stays until the agent starts again", "err", err)
		}
	}
	return nil
}

// warnRouterAdvertisements says, before the host's first instance with
// IPv6 makes it forward IPv6, which of its interfaces take router
// advertisements (accept_ra=1): a router ignores them, so that an address
// or a default route learned from them would expire.
func warnRouterAdvertisements(ctx context.Context) {
	if raw, err := os.ReadFile("/proc/sys/net/ipv6/conf/all/forwarding"); err != nil || strings.TrimSpace(string(raw)) == "1" {
		return
	}
	dirs, _ := filepath.Glob("/proc/sys/net/ipv6/conf/*/accept_ra")
	var ifaces []string
	for _, d := range dirs {
		name := filepath.Base(filepath.Dir(d))
		if raw, err := os.ReadFile(d); err == nil && strings.TrimSpace(string(raw)) == "1" && name != "all" && name != "default" && name != "lo" &&
			!strings.HasPrefix(name, datapath.InterfacePrefix) {
			ifaces = append(ifaces, name)
		}
	}
	if len(ifaces) > 0 {
		log.G(ctx).Warn("the host forwards IPv6 from now on (an instance has IPv6): these interfaces take router advertisements, which a router ignores; set net.ipv6.conf.<interface>.accept_ra=2 on those whose address or route comes from them", "interfaces", ifaces)
	}
}
