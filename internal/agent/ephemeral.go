package agent

import (
	"context"
	"fmt"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	apiv1 "github.com/eci-dev/eci/api/v1"
)

// Ephemeral containers (kubectl debug): added to a running group, each
// starts once in its sandbox and is never restarted (as the kubelet's);
// one naming a target joins that container's process namespace, so that
// it sees its processes. Attach and logs find it by name as any other.

// runEphemeral starts the ephemeral containers that never ran.
func (a *Agent) runEphemeral(ctx context.Context, g *apiv1.ContainerGroup, sbID string, sbCfg *runtimeapi.PodSandboxConfig, ctrs map[string]attempts) error {
	for _, e := range g.Spec.EphemeralContainers {
		if ctrs[e.Name].latest() != nil {
			continue
		}
		if err := a.waiting(ctx, g, e.Container, a.start(ctx, g, e.Container, 0, false, sbID, sbCfg)); err != nil {
			return err
		}
	}
	return nil
}

// ephemeralOf is g's ephemeral container name (nil: none of that name).
func ephemeralOf(g *apiv1.ContainerGroup, name string) *apiv1.EphemeralContainer {
	for i := range g.Spec.EphemeralContainers {
		if g.Spec.EphemeralContainers[i].Name == name {
			return &g.Spec.EphemeralContainers[i]
		}
	}
	return nil
}

// joinTarget makes cfg, ephemeral container name's, join its target's
// process namespace (nothing for other containers); the target must run.
func (a *Agent) joinTarget(ctx context.Context, g *apiv1.ContainerGroup, name, sbID string, cfg *runtimeapi.ContainerConfig) error {
	e := ephemeralOf(g, name)
	if e == nil || e.TargetContainerName == "" {
		return nil
	}
	list, err := a.cfg.Runtime.ListContainers(ctx, &runtimeapi.ContainerFilter{PodSandboxId: sbID,
		State:         &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING},
		LabelSelector: map[string]string{LabelGroup: g.Metadata.ID, LabelContainer: e.TargetContainerName}})
	if err != nil {
		return fmt.Errorf("list containers: %w", err)
	}
	if len(list) == 0 {
		return &waitingError{reason: "CreateContainerError", err: fmt.Errorf("target container %q is not running", e.TargetContainerName)}
	}
	ns := namespaces(g)
	ns.Pid, ns.TargetId = runtimeapi.NamespaceMode_TARGET, list[0].Id
	cfg.Linux.SecurityContext.NamespaceOptions = ns
	return nil
}

// ephemeralStatuses are the API view of g's ephemeral containers.
func (a *Agent) ephemeralStatuses(g *apiv1.ContainerGroup, ctrs map[string]attempts, now time.Time) []apiv1.ContainerStatus {
	var out []apiv1.ContainerStatus
	for _, e := range g.Spec.EphemeralContainers {
		out = append(out, a.containerStatus(g, e.Container, ctrs[e.Name], now))
	}
	return out
}
