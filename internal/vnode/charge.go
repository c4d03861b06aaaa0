package vnode

import (
	"context"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/log"
)

// chargeEvery is how often the node tells the service it is Ready: it is
// billed as one 2 vCPU / 8 GiB instance while it does (docs/billing.md;
// the service allows 90 s between two).
const chargeEvery = 30 * time.Second

// reportReady sends the node's heartbeat to the instance service until ctx
// ends: at once, then every chargeEvery (Config.ChargeInterval in tests).
func (v *VNode) reportReady(ctx context.Context) {
	every := v.cfg.ChargeInterval
	if every <= 0 {
		every = chargeEvery
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		err := v.cfg.ECI.VirtualNodeHeartbeat(ctx, v.cfg.NodeName, apiv1.VirtualNodeHeartbeat{Tags: v.cfg.Tags})
		if err != nil && ctx.Err() == nil {
			log.G(ctx).Warn("tell the service the node is Ready (its charge)", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
