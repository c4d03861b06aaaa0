package agent

import (
	"context"
	"sync"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/eci-dev/eci/internal/log"
)

// Fencing. The server declares a host lost once it has not renewed its
// lease for the lease's length, fails its groups and, a little later, gives
// their addresses to others. An agent cut off from the server (a partition,
// a server it can't reach) may still run those groups: two sandboxes would
// then answer at one address. So an agent that has not renewed its lease
// for three quarters of it stops every sandbox of its groups (no preStop,
// no grace: the groups are lost for the service) and starts nothing until
// a renewal succeeds again. A shorter outage changes nothing.

// fence is the agent's lease as it knows it.
type fence struct {
	mu        sync.Mutex
	lastRenew time.Time
	lease     time.Duration // the server's, from its answers
	fenced    bool
}

// defaultLease is assumed until the server names its own.
const defaultLease = 40 * time.Second

// renewed records a successful registration or heartbeat.
func (f *fence) renewed(now time.Time, leaseSeconds int) (lifted bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastRenew = now
	if leaseSeconds > 0 {
		f.lease = time.Duration(leaseSeconds) * time.Second
	}
	lifted, f.fenced = f.fenced, false
	return lifted
}

// due tells whether the agent must fence itself now (and marks it fenced).
func (f *fence) due(now time.Time, after time.Duration) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fenced || f.lastRenew.IsZero() || now.Sub(f.lastRenew) <= after {
		return false
	}
	f.fenced = true
	return true
}

func (f *fence) isFenced() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fenced
}

// fenceAfter is how long without a renewal the agent runs its groups.
func (a *Agent) fenceAfter() time.Duration {
	if a.cfg.FenceAfter > 0 {
		return a.cfg.FenceAfter
	}
	a.lease.mu.Lock()
	lease := a.lease.lease
	a.lease.mu.Unlock()
	if lease <= 0 {
		lease = defaultLease
	}
	return lease * 3 / 4
}

// heartbeat renews the lease every HeartbeatInterval (each renewal given at
// most that long: a cut-off server must not hold the loop), while watchFence
// fences the host when renewals stop for fenceAfter.
func (a *Agent) heartbeat(ctx context.Context) {
	go a.watchFence(ctx)
	beat := time.NewTicker(a.cfg.HeartbeatInterval)
	defer beat.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-beat.C:
		}
		hbCtx, cancel := context.WithTimeout(ctx, max(a.cfg.HeartbeatInterval, 2*time.Second))
		h, err := a.cfg.Client.Heartbeat(hbCtx, a.name)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				log.G(ctx).Warn("heartbeat", "err", err)
			}
			continue
		}
		if a.lease.renewed(time.Now(), h.Status.LeaseSeconds) {
			log.G(ctx).Warn("lease renewed: fence lifted; the groups are reconciled with what the server says of them")
			a.mu.Lock()
			ids := make([]string, 0, len(a.groups))
			for id := range a.groups {
				ids = append(ids, id)
			}
			a.mu.Unlock()
			for _, id := range ids {
				a.enqueue(id)
			}
		}
	}
}

// watchFence fences the host once renewals stopped for fenceAfter, and,
// while fenced, removes any sandbox a reconcile under way made meanwhile.
func (a *Agent) watchFence(ctx context.Context) {
	check := time.NewTicker(min(time.Second, a.cfg.HeartbeatInterval))
	defer check.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-check.C:
		}
		after := a.fenceAfter()
		if a.lease.due(time.Now(), after) {
			log.G(ctx).Warn("fencing: no lease renewal for most of the lease; stopping every group's sandbox (the server is about to give their addresses to others)", "after", after)
		}
		if a.lease.isFenced() {
			a.stopAll(ctx)
		}
	}
}

// stopAll stops and removes the sandbox of every group of this agent.
func (a *Agent) stopAll(ctx context.Context) {
	sbs, err := a.cfg.Runtime.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{LabelManaged: "true"}})
	if err != nil {
		log.G(ctx).Error("fencing: list sandboxes", "err", err)
		return
	}
	if len(sbs) == 0 {
		return
	}
	if err := a.removeSandboxes(ctx, nil, sbs, 0, "fenced: the host's lease was not renewed"); err != nil {
		log.G(ctx).Error("fencing: remove sandboxes", "err", err)
	}
}
