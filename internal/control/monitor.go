package control

import (
	"context"
	"fmt"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/errdefs"
	"github.com/eci-dev/eci/internal/log"
)

// RunMonitor watches leases and deadlines until ctx ends (leader only):
//   - a Ready host whose last heartbeat is older than HostLeaseTTL becomes
//     NotReady, and its live groups Failed with reason HostLost (never left
//     silently Running); its groups being deleted are removed;
//   - a graceful delete the agent did not finish within the grace period plus
//     DeletionTimeout is completed by the server;
//   - a placed group that is still not Running after its maxPendingMinutes
//     fails with reason PendingTimeout;
//   - a spot instance whose release time came ends Expired (spot.go);
//   - every imageCacheSyncEvery, the image caches' status is made again
//     from the hosts' reports (imagecachestatus.go);
//   - once a minute, ended groups and events past their retention go
//     (CollectGarbage).
func (s *Service) RunMonitor(ctx context.Context) error {
	ctx = log.With(ctx, "daemon", "monitor")
	defer s.pass.running.Wait() // the usage pass it started (metering.go) ends with it
	interval := min(s.opts.HostLeaseTTL/4, 2*time.Second)
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	var lastGC, lastCaches time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
		if err := s.MonitorOnce(ctx); err != nil && ctx.Err() == nil {
			log.G(ctx).Warn("monitor pass", "err", err)
		}
		if time.Since(lastCaches) >= imageCacheSyncEvery {
			lastCaches = time.Now()
			if err := s.SyncImageCaches(ctx); err != nil && ctx.Err() == nil {
				log.G(ctx).Warn("image caches", "err", err)
			}
			if err := s.SyncDataCaches(ctx); err != nil && ctx.Err() == nil {
				log.G(ctx).Warn("data caches", "err", err)
			}
		}
		if time.Since(lastGC) > time.Minute {
			lastGC = time.Now()
			if err := s.CollectGarbage(ctx); err != nil && ctx.Err() == nil {
				log.G(ctx).Warn("garbage collection", "err", err)
			}
		}
	}
}

// MonitorOnce runs one pass of the monitor.
func (s *Service) MonitorOnce(ctx context.Context) error {
	now := s.now()
	hosts, _, _, err := s.hosts.List(ctx, storeOpts(0, 0, ""))
	if err != nil {
		return err
	}
	lost := map[string]time.Time{}
	for _, h := range hosts {
		if !h.Status.Ready {
			lost[h.Metadata.Name] = h.Status.LastHeartbeat
			continue
		}
		if now.Sub(h.Status.LastHeartbeat) <= s.opts.HostLeaseTTL {
			continue
		}
		name := h.Metadata.Name
		_, err := s.hosts.Mutate(ctx, name, func(h *apiv1.Host) error {
			if now.Sub(h.Status.LastHeartbeat) > s.opts.HostLeaseTTL {
				h.Status.Ready = false
			}
			return nil
		})
		if err != nil {
			return err
		}
		lost[name] = h.Status.LastHeartbeat
		s.recordEvent(ctx, "Host", name, "", apiv1.EventWarning, "HostNotReady",
			fmt.Sprintf("no heartbeat since %s (lease %s)", h.Status.LastHeartbeat.Format(time.RFC3339), s.opts.HostLeaseTTL), "server")
	}

	if err := s.releaseWarmOf(ctx, lost); err != nil {
		return err
	}
	if err := s.releaseQuarantined(ctx, now); err != nil {
		return err
	}
	groups, _, _, err := s.groups.List(ctx, storeOpts(0, 0, ""))
	if err != nil {
		return err
	}
	paid := waitingPaid(groups) // spot.go
	for _, g := range groups {
		st := g.Status
		switch {
		case g.Metadata.DeletionRequestedAt != nil && s.deletionOverdue(g, now, lost):
			if err := s.removeGroup(ctx, g, false); err != nil {
				log.G(ctx).Warn("complete deletion", "group", g.Metadata.ID, "err", err)
				continue
			}
			s.recordEvent(ctx, "ContainerGroup", g.Metadata.ID, g.Metadata.Tenant, apiv1.EventWarning, "DeletionCompleted",
				"the host did not confirm the deletion in time; the server completed it", "server")
		case st.Host != "" && !st.State.Terminal() && g.Metadata.DeletionRequestedAt == nil:
			if since, isLost := lost[st.Host]; isLost {
				s.failGroup(ctx, g, evHostLost, fmt.Sprintf("host %s stopped renewing its lease (last heartbeat %s)", st.Host, since.Format(time.RFC3339)))
			} else if !s.expireSpot(ctx, g, now, paid) && st.State == apiv1.StatePending && pendingOverdue(g, now) { // spot.go
				s.failGroup(ctx, g, evPendingTimeout, fmt.Sprintf("not running %d minutes after creation (maxPendingMinutes)", maxPendingMinutes(g)))
			}
		}
	}
	return nil
}

func (s *Service) deletionOverdue(g *apiv1.ContainerGroup, now time.Time, lost map[string]time.Time) bool {
	if _, isLost := lost[g.Status.Host]; isLost || g.Status.Host == "" {
		return true
	}
	grace := int64(30)
	if g.Metadata.DeletionGracePeriodSeconds != nil {
		grace = *g.Metadata.DeletionGracePeriodSeconds
	}
	return now.Sub(*g.Metadata.DeletionRequestedAt) > time.Duration(grace)*time.Second+s.opts.DeletionTimeout
}

func maxPendingMinutes(g *apiv1.ContainerGroup) int {
	if g.Spec.MaxPendingMinutes > 0 {
		return g.Spec.MaxPendingMinutes
	}
	return DefaultMaxPendingMinutes
}

func pendingOverdue(g *apiv1.ContainerGroup, now time.Time) bool {
	return g.Status.RunningAt == nil && now.Sub(g.Metadata.CreatedAt) > time.Duration(maxPendingMinutes(g))*time.Minute
}

// failGroup ends g for the server (its agent did not say so) on ev, which is
// also the reason it shows: its IP is quarantined for a lease, the time its
// host takes to fence itself. An ended group, or one being deleted, is left
// as it is (the state machine refuses).
func (s *Service) failGroup(ctx context.Context, g *apiv1.ContainerGroup, ev event, message string) {
	reason := string(ev)
	_, err := s.transitionWith(ctx, g.Metadata.ID, s.opts.HostLeaseTTL, func(cur *apiv1.ContainerGroup) bool {
		return applyEvent(&cur.Status, ev, reason, message, s.now()) == nil
	})
	if err != nil {
		log.G(ctx).Warn("fail group", "group", g.Metadata.ID, "reason", reason, "err", err)
		return
	}
	s.recordEvent(ctx, "ContainerGroup", g.Metadata.ID, g.Metadata.Tenant, apiv1.EventWarning, reason, message, "server")
}

// releaseQuarantined frees the addresses whose quarantine ended (releaseOps).
func (s *Service) releaseQuarantined(ctx context.Context, now time.Time) error {
	ips, _, _, err := s.ips.List(ctx, storeOpts(0, 0, ""))
	if err != nil {
		return err
	}
	freed := 0
	for _, rec := range ips {
		if rec.ReleaseAfter == nil || now.Before(*rec.ReleaseAfter) {
			continue
		}
		if err := s.ips.Delete(ctx, rec); err != nil && !errdefs.IsNotFound(err) && !errdefs.IsConflict(err) {
			return err
		}
		freed++
	}
	if freed > 0 {
		s.wake()
	}
	return nil
}
