// Package fakeagent simulates host agents without containers, for control
// plane tests and scale benchmarks (never as the only test of a feature): it
// registers hosts, renews their leases, reports the groups placed on them
// Running after StartDelay, and confirms graceful deletions. It uses the real
// API through internal/client, like a real agent.
package fakeagent

import (
	"context"
	"sync"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/client"
	"github.com/eci-dev/eci/internal/errdefs"
	"github.com/eci-dev/eci/internal/log"
)

// Config of a fake agent.
type Config struct {
	// Client speaks for the hosts: an admin client, or a host token's client
	// when there is one host.
	Client *client.Client
	Hosts  []apiv1.Host
	// StartDelay is how long a placed group takes to "start".
	StartDelay time.Duration
	// HeartbeatInterval renews the hosts' leases (5 s by default).
	HeartbeatInterval time.Duration
}

// Agent is a running fake agent.
type Agent struct {
	cfg   Config
	hosts map[string]bool
	mu    sync.Mutex
	seen  map[string]string // group id -> what was last done for it
	ready chan struct{}
}

// New returns an agent; Run starts it.
func New(cfg Config) *Agent {
	if cfg.HeartbeatInterval == 0 {
		cfg.HeartbeatInterval = 5 * time.Second
	}
	a := &Agent{cfg: cfg, hosts: map[string]bool{}, seen: map[string]string{}, ready: make(chan struct{})}
	for _, h := range cfg.Hosts {
		a.hosts[h.Metadata.Name] = true
	}
	return a
}

// Ready is closed once the hosts are registered and the watch runs.
func (a *Agent) Ready() <-chan struct{} { return a.ready }

// Run registers the hosts and serves them until ctx ends.
func (a *Agent) Run(ctx context.Context) error {
	for i := range a.cfg.Hosts {
		if _, err := a.cfg.Client.RegisterHost(ctx, &a.cfg.Hosts[i]); err != nil {
			return err
		}
	}
	names := make([]string, 0, len(a.hosts))
	for name := range a.hosts {
		names = append(names, name)
	}
	go a.cfg.Client.KeepAlive(ctx, names, a.cfg.HeartbeatInterval, func(host string, err error) {
		log.G(ctx).Warn("fake agent heartbeat", "host", host, "err", err)
	})
	a.cfg.Client.InformGroups(ctx, client.ListOptions{}, client.GroupHandler{
		Synced: func() { close(a.ready) },
		Event: func(ev client.GroupEvent) {
			if ev.Type != apiv1.Deleted {
				a.handle(ctx, ev.Object)
			}
		},
	})
	return nil
}

// handle moves one group along, at most once per step.
func (a *Agent) handle(ctx context.Context, g *apiv1.ContainerGroup) {
	if !a.hosts[g.Status.Host] {
		return
	}
	id := g.Metadata.ID
	step := ""
	switch {
	case g.Metadata.DeletionRequestedAt != nil:
		step = "finalize"
	case g.Status.State == apiv1.StatePending:
		step = "start"
	case g.Status.State == apiv1.StateRestarting && g.Status.RestartRequestedAt != nil:
		step = "restart " + g.Status.RestartRequestedAt.String()
	default:
		return
	}
	a.mu.Lock()
	done := a.seen[id] == step
	a.seen[id] = step
	a.mu.Unlock()
	if done {
		return
	}
	go func() {
		if step != "finalize" {
			select {
			case <-ctx.Done():
				return
			case <-time.After(a.cfg.StartDelay):
			}
		}
		// A server that goes away mid-report (a failover) is tried again,
		// as a real agent's next reconcile would.
		var err error
		for wait := 100 * time.Millisecond; ctx.Err() == nil; wait = min(2*wait, 5*time.Second) {
			if step == "finalize" {
				err = a.cfg.Client.Finalize(ctx, id)
			} else {
				_, err = a.cfg.Client.ReportStatus(ctx, id, running(g))
			}
			if err == nil || errdefs.IsNotFound(err) || errdefs.IsConflict(err) {
				return
			}
			log.G(ctx).Warn("fake agent: trying again", "group", id, "step", step, "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(wait):
			}
		}
	}()
}

func running(g *apiv1.ContainerGroup) apiv1.StatusReport {
	now := time.Now().UTC()
	r := apiv1.StatusReport{State: apiv1.StateRunning, Reason: "Started"}
	for _, c := range g.Spec.Containers {
		r.Containers = append(r.Containers, apiv1.ContainerStatus{
			Name: c.Name, Image: c.Image, Ready: true, Started: true,
			State: apiv1.ContainerState{Running: &apiv1.ContainerStateRunning{StartedAt: now}},
		})
	}
	return r
}
