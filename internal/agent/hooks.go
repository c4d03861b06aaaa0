package agent

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/log"
)

// Lifecycle hooks run as the kubelet runs them: postStart right after the
// container starts (a failure kills it, and the restart policy decides what
// next), preStop before the container is stopped, inside the grace period,
// whatever the stop is for (deletion, a failed liveness probe, a restart).

// minGrace is the kubelet's floor for what is left of a grace period after a
// preStop hook, so that the process still gets its SIGTERM.
const minGrace = 2

// spec is the container of g named name (nil when unknown).
func spec(g *apiv1.ContainerGroup, name string) *apiv1.Container {
	if g == nil {
		return nil
	}
	return g.Spec.Container(name)
}

// runHook runs a lifecycle handler against a container; ip is the group's.
func (a *Agent) runHook(ctx context.Context, h *apiv1.Handler, containerID, ip string, timeout time.Duration) error {
	if h.SleepSeconds != nil {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(*h.SleepSeconds) * time.Second):
			return nil
		}
	}
	return a.probeOnce(ctx, &apiv1.Probe{Exec: h.Exec, HTTPGet: h.HTTPGet, TCPSocket: h.TCPSocket}, containerID, ip, timeout)
}

// sandboxIP is the IP of a sandbox ("" when it has none).
func (a *Agent) sandboxIP(ctx context.Context, sandboxID string) string {
	st, err := a.cfg.Runtime.PodSandboxStatus(ctx, sandboxID, false)
	if err != nil {
		return ""
	}
	return st.GetStatus().GetNetwork().GetIp()
}

// postStart runs c's postStart hook on container id; when it fails the
// container is killed (FailedPostStartHook) and restarted as the policy says.
func (a *Agent) postStart(ctx context.Context, g *apiv1.ContainerGroup, c apiv1.Container, id, sandboxID string) {
	if c.Lifecycle == nil || c.Lifecycle.PostStart == nil {
		return
	}
	timeout := time.Duration(max(grace(g), 30)) * time.Second
	hctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	err := a.runHook(a.probeContext(hctx, g), c.Lifecycle.PostStart, id, a.sandboxIP(ctx, sandboxID), timeout)
	if err == nil || ctx.Err() != nil {
		return
	}
	a.containerEvent(ctx, g, c.Name, apiv1.EventWarning, "FailedPostStartHook", fmt.Sprintf("PostStartHook failed: %v", err))
	if err := a.cfg.Runtime.StopContainer(ctx, id, 0); err != nil {
		log.G(ctx).Warn("kill a container whose postStart hook failed", "group", g.Metadata.ID, "container", c.Name, "err", err)
	}
}

// stopContainer stops container id (c's name in g; g may be nil for an
// orphan): preStop first, then the runtime's stop with what is left of
// grace seconds. ip is the group's, for httpGet and tcpSocket hooks.
func (a *Agent) stopContainer(ctx context.Context, g *apiv1.ContainerGroup, name, id, ip string, grace int64) error {
	deadline := time.Now().Add(time.Duration(grace) * time.Second)
	if c := spec(g, name); grace > 0 && c != nil && c.Lifecycle != nil && c.Lifecycle.PreStop != nil {
		hctx, cancel := context.WithDeadline(ctx, deadline)
		err := a.runHook(a.probeContext(hctx, g), c.Lifecycle.PreStop, id, ip, time.Until(deadline))
		cancel()
		if err != nil && ctx.Err() == nil {
			a.containerEvent(ctx, g, name, apiv1.EventWarning, "FailedPreStopHook", fmt.Sprintf("PreStopHook failed: %v", err))
		}
		grace = max(int64(time.Until(deadline).Seconds()), minGrace)
		log.G(ctx).Debug("preStop hook ran", "container", name, "err", err, "grace left", grace)
	}
	start := time.Now()
	err := a.cfg.Runtime.StopContainer(ctx, id, grace)
	log.G(ctx).Debug("stopped container", "container", name, "grace", grace, "took", time.Since(start), "err", err)
	return err
}

// stopContainers stops the running containers of a sandbox together, as the
// kubelet does: their preStop hooks and grace periods overlap.
func (a *Agent) stopContainers(ctx context.Context, g *apiv1.ContainerGroup, sandboxID string, ctrs []*runtimeapi.Container, grace int64) error {
	ip := ""
	if hasPreStop(g) {
		ip = a.sandboxIP(ctx, sandboxID)
	}
	var wg sync.WaitGroup
	errs := make([]error, len(ctrs))
	for i, c := range ctrs {
		if c.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := c.Labels[LabelContainer]
			if g != nil {
				a.containerEvent(ctx, g, name, apiv1.EventNormal, "Killing", "Stopping container "+name)
			}
			if err := a.stopContainer(ctx, g, name, c.Id, ip, grace); err != nil {
				errs[i] = fmt.Errorf("stop container %s: %w", short(c.Id), err)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func hasPreStop(g *apiv1.ContainerGroup) bool {
	if g == nil {
		return false
	}
	for _, c := range g.Spec.Containers {
		if c.Lifecycle != nil && c.Lifecycle.PreStop != nil {
			return true
		}
	}
	return false
}
