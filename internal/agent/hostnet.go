package agent

import (
	"context"
	"fmt"
	"sync"

	"sigs.k8s.io/knftables"

	"github.com/eci-dev/eci/internal/datapath"
	"github.com/eci-dev/eci/internal/log"
)

// hostNetwork is what the sandboxes' attaches and the tunnels share: the
// isolation of the host's VPCs (datapath.Isolation), changed one at a time
// so that a rebuild of the marks never drops a link being attached.
type hostNetwork struct {
	mu  sync.Mutex
	iso *datapath.Isolation // nil: no nftables; only the default VPC is served
}

// newHostNetwork sets the host's sysctls and rebuilds the VPCs' marks from
// the kernel's routes (an agent that starts again keeps its instances
// apart). Without nftables the host serves the default VPC alone, and says
// why.
func newHostNetwork(ctx context.Context, network string) *hostNetwork {
	hn := &hostNetwork{}
	nft, err := knftables.New(knftables.IPv4Family, datapath.IsolationTable(network))
	if err != nil {
		log.G(ctx).Error("VPCs are off: groups of vSwitches outside the default VPC can't start on this host", "err", err)
		return hn
	}
	if err := datapath.HostSysctls(); err != nil {
		log.G(ctx).Error("VPCs are off: groups of vSwitches outside the default VPC can't start on this host", "err", err)
		return hn
	}
	hn.iso = &datapath.Isolation{NFT: nft, Network: network}
	if err := hn.iso.Sync(ctx); err != nil {
		// Every attach gives its link its mark anyway; the next detach
		// tries the whole table again.
		log.G(ctx).Error("VPCs: rebuild the marks of the host's links", "err", err)
	}
	return hn
}

// mark gives link (before it is up) VPC vni's mark and zone.
func (hn *hostNetwork) mark(ctx context.Context, link string, vni int) error {
	if vni <= datapath.DefaultVNI {
		return nil
	}
	if hn.iso == nil {
		return fmt.Errorf("VPC %d: this host serves the default VPC alone (no nftables; see the agent's log)", vni)
	}
	hn.mu.Lock()
	defer hn.mu.Unlock()
	return hn.iso.Add(ctx, link, vni)
}

// attach makes a sandbox's link, marked for its VPC before it is up.
func (hn *hostNetwork) attach(ctx context.Context, a datapath.Attachment) (*datapath.Attached, error) {
	if err := hn.mark(ctx, datapath.HostInterfaceName(a.ContainerID), a.VNI); err != nil {
		return nil, err
	}
	hn.mu.Lock()
	defer hn.mu.Unlock()
	return datapath.Attach(a)
}

// detach removes a sandbox's link and the marks of links that are gone.
func (hn *hostNetwork) detach(ctx context.Context, containerID string) error {
	hn.mu.Lock()
	defer hn.mu.Unlock()
	if err := datapath.Detach(containerID); err != nil {
		return err
	}
	if hn.iso != nil {
		if err := hn.iso.Sync(ctx); err != nil {
			log.G(ctx).Warn("VPCs: the marks of links that are gone stay until the next detach", "err", err)
		}
	}
	return nil
}
