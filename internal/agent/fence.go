package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/eci-dev/eci/internal/client"
	"github.com/eci-dev/eci/internal/errdefs"
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

// fence is the agent's lease as it knows it. The time of the last renewal
// is kept in the state dir too: an agent started again after most of a lease
// without one (it was down, or can't reach the server) fences at once.
type fence struct {
	mu        sync.Mutex
	lastRenew time.Time
	lease     time.Duration // the server's, from its answers
	fenced    bool
	file      string
}

// load reads the last renewal an earlier agent recorded, else now.
func (f *fence) load(stateDir string, now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.file = filepath.Join(stateDir, "lease-renewed")
	f.lastRenew = now
	data, err := os.ReadFile(f.file)
	switch {
	case errors.Is(err, os.ErrNotExist):
		// A first start: nothing ran here before.
	case err != nil:
		f.lastRenew = time.Time{}.Add(1) // unreadable: long ago (no fail-open)
	default:
		ns, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
		if err != nil || ns <= 0 {
			f.lastRenew = time.Time{}.Add(1)
		} else {
			f.lastRenew = time.Unix(0, ns)
		}
	}
}

// defaultLease is assumed until the server names its own.
const defaultLease = 40 * time.Second

// renewed records a successful registration or heartbeat; a fence is
// lifted only once the view of the groups was read afresh (refreshed).
func (f *fence) renewed(now time.Time, leaseSeconds int, refreshed bool) (lifted bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastRenew = now
	if leaseSeconds > 0 {
		f.lease = time.Duration(leaseSeconds) * time.Second
	}
	if f.file != "" {
		tmp := f.file + ".tmp"
		if os.WriteFile(tmp, []byte(strconv.FormatInt(now.UnixNano(), 10)), 0o600) == nil {
			_ = os.Rename(tmp, f.file)
		}
	}
	if f.fenced && refreshed {
		f.fenced, lifted = false, true
	}
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

// beatEvery is how often the lease is renewed: HeartbeatInterval, at most
// a quarter of the server's lease (a short lease must not be missed, nor
// fenced between two renewals).
func (a *Agent) beatEvery() time.Duration {
	a.lease.mu.Lock()
	lease := a.lease.lease
	a.lease.mu.Unlock()
	if lease > 0 {
		return min(a.cfg.HeartbeatInterval, lease/4)
	}
	return a.cfg.HeartbeatInterval
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
// (started before the agent registers) fences the host when renewals stop
// for fenceAfter.
func (a *Agent) heartbeat(ctx context.Context) {
	wait := a.beatEvery()
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		// A renewal may take one interval; a failed one is tried again in a
		// second: a hung request must not cost the lease.
		every := a.beatEvery()
		wait = min(time.Second, every)
		sent := time.Now() // the lease counts from the request, not the answer
		hbCtx, cancel := context.WithTimeout(ctx, every)
		h, err := a.cfg.Client.Heartbeat(hbCtx, a.name)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				log.G(ctx).Warn("heartbeat", "err", err)
			}
			continue
		}
		wait = every
		a.pool.setTarget(h.Spec.WarmPoolTarget)
		refreshed := false
		if a.lease.isFenced() {
			// The view of the groups may be stale (the watch was cut too):
			// read them afresh before anything runs again.
			if err := a.refreshView(ctx); err != nil {
				log.G(ctx).Warn("fenced: read the host's groups before lifting the fence", "err", err)
			} else {
				refreshed = true
			}
		}
		if a.lease.renewed(sent, h.Status.LeaseSeconds, refreshed) {
			log.G(ctx).Warn("lease renewed: fence lifted; the groups are reconciled with what the server says of them")
			for _, id := range a.view.ids() {
				a.queue.add(id)
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
	// The warm pool's too: a group may have taken one.
	warm, err := a.cfg.Runtime.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{LabelWarm: "true"}})
	if err != nil {
		log.G(ctx).Error("fencing: list the warm pool's sandboxes", "err", err)
	}
	sbs = append(sbs, warm...)
	for _, sb := range sbs { // one that fails does not keep the others running
		if err := a.removeSandboxes(ctx, nil, []*runtimeapi.PodSandbox{sb}, 0, "fenced: the host's lease was not renewed"); err != nil {
			log.G(ctx).Error("fencing: remove a sandbox (tried again in a second)", "sandbox", short(sb.Id), "err", err)
		}
	}
}

// register registers the host, trying again while the server can't be
// reached or answers otherwise (the fence meanwhile stops the groups once
// most of a lease has passed); a refusal (a bad token, a bad host) is
// returned.
func (a *Agent) register(ctx context.Context) error {
	for wait := time.Second; ; wait = min(2*wait, 30*time.Second) {
		sent := time.Now()
		registered, err := a.cfg.Client.RegisterHost(ctx, &a.cfg.Host)
		if err == nil {
			a.lease.renewed(sent, registered.Status.LeaseSeconds, false)
			a.pool.setTarget(registered.Spec.WarmPoolTarget)
			return nil
		}
		if errdefs.IsUnauthenticated(err) || errdefs.IsPermissionDenied(err) || errdefs.IsInvalid(err) || ctx.Err() != nil {
			return fmt.Errorf("register host %s: %w", a.name, err)
		}
		log.G(ctx).Warn("register the host: the server can't be reached; trying again", "in", wait, "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

// refreshView replaces the agent's view of its groups with the server's
// current one (groupView.refresh).
func (a *Agent) refreshView(ctx context.Context) error {
	list, err := a.cfg.Client.ListGroups(ctx, client.ListOptions{Host: a.name})
	if err != nil {
		return err
	}
	a.view.refresh(list.Items, list.ResourceVersion)
	return nil
}
