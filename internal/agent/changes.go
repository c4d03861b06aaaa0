package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"google.golang.org/grpc/status"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/log"
)

// A running container's definition changes as a pod's does on a kubelet:
// a new image restarts it; new CPU or memory (in-place resize) is applied
// to it, or restarts it where its resizePolicy says so.

// imageChanged tells whether c's running (or created) container last was
// made of another image than the spec's now: the kubelet restarts a
// container whose definition changed; an exited one starts again (or
// not) by its restart policy, with the new image.
func imageChanged(last *runtimeapi.ContainerStatus, c apiv1.Container) bool {
	made := last.GetLabels()[LabelImage]
	if made == "" {
		// Made before the label: the image the runtime was asked for.
		made = last.GetImage().GetUserSpecifiedImage()
	}
	live := last.State == runtimeapi.ContainerState_CONTAINER_RUNNING || last.State == runtimeapi.ContainerState_CONTAINER_CREATED
	return live && made != "" && made != c.Image
}

// replace stops c's container last, saying why in a Killing event, and
// starts its next attempt (with c's image and resources now).
func (a *Agent) replace(ctx context.Context, g *apiv1.ContainerGroup, c apiv1.Container, last *runtimeapi.ContainerStatus, why string, sbID string, sbCfg *runtimeapi.PodSandboxConfig) error {
	a.containerEvent(ctx, g, c.Name, apiv1.EventNormal, "Killing", why)
	if err := a.stopContainer(ctx, g, c.Name, last.Id, a.sandboxIP(ctx, sbID), grace(g)); err != nil {
		return err
	}
	return a.waiting(ctx, g, c, a.start(ctx, g, c, last.Metadata.Attempt+1, false, sbID, sbCfg))
}

// resizeOf is the resources c's running container last must be given to
// run with the spec's (nil when it has them, or the runtime does not say
// what it has).
func resizeOf(g *apiv1.ContainerGroup, c apiv1.Container, last *runtimeapi.ContainerStatus) *runtimeapi.LinuxContainerResources {
	have := last.GetResources().GetLinux()
	if last.State != runtimeapi.ContainerState_CONTAINER_RUNNING || have == nil {
		return nil
	}
	want := resources(g, c)
	if have.CpuQuota == want.CpuQuota && have.MemoryLimitInBytes == want.MemoryLimitInBytes {
		return nil
	}
	return want
}

// resizeRetry is how soon a resize that could not be applied is tried
// again (the kubelet retries at each sync of the pod).
const resizeRetry = 10 * time.Second

// resize gives c's running container last the spec's CPU and memory: in
// place through the runtime, or by a restart when its resizePolicy says so
// for a resource that changed. A memory limit is not lowered below what
// the container uses (the kernel would kill it): the resize waits, with
// the kubelet's words in the status, and is tried again.
func (a *Agent) resize(ctx context.Context, g *apiv1.ContainerGroup, c apiv1.Container, last *runtimeapi.ContainerStatus, sbID string, sbCfg *runtimeapi.PodSandboxConfig) error {
	want, have := resizeOf(g, c, last), last.GetResources().GetLinux()
	cpu, mem := have.CpuQuota != want.CpuQuota, have.MemoryLimitInBytes != want.MemoryLimitInBytes
	if (cpu && c.RestartsOnResize("cpu")) || (mem && c.RestartsOnResize("memory")) {
		a.setResizeError(g, c.Name, "")
		return a.replace(ctx, g, c, last, fmt.Sprintf("Container %s resize requires restart", c.Name), sbID, sbCfg)
	}
	if mem && (have.MemoryLimitInBytes == 0 || want.MemoryLimitInBytes < have.MemoryLimitInBytes) {
		used, err := a.memoryUsage(ctx, last.Id)
		if err == nil && used >= uint64(want.MemoryLimitInBytes) {
			err = fmt.Errorf("attempting to set container %q memory limit (%d) below current usage (%d)", c.Name, want.MemoryLimitInBytes, used)
		}
		if err != nil {
			a.setResizeError(g, c.Name, "cannot decrease memory limits: "+err.Error())
			a.queue.addAfter(ctx, g.Metadata.ID, resizeRetry)
			return nil
		}
	}
	if err := a.cfg.Runtime.UpdateContainerResources(ctx, last.Id, &runtimeapi.ContainerResources{Linux: want}); err != nil {
		// Said in the status and tried again; the group's other
		// containers go on.
		log.G(ctx).Warn("resize a container in place (will retry)", "group", g.Metadata.ID, "container", c.Name, "err", err)
		a.setResizeError(g, c.Name, "the runtime refused the new resources: "+runtimeWords(err))
		a.queue.addAfter(ctx, g.Metadata.ID, resizeRetry)
		return nil
	}
	a.setResizeError(g, c.Name, "")
	log.G(ctx).Info("resized a container in place", "group", g.Metadata.ID, "container", c.Name,
		"milliCPU", want.CpuQuota/100, "memoryBytes", want.MemoryLimitInBytes)
	return nil
}

// memoryUsage is what container id uses of memory, as the kubelet reads
// it before lowering a limit (usage, page cache included).
func (a *Agent) memoryUsage(ctx context.Context, id string) (uint64, error) {
	stats, err := a.cfg.Runtime.ListContainerStats(ctx, &runtimeapi.ContainerStatsFilter{Id: id})
	if err != nil {
		return 0, fmt.Errorf("unable to read memory usage of container %s: %w", short(id), err)
	}
	for _, s := range stats {
		if s.GetAttributes().GetId() == id && s.GetMemory().GetUsageBytes() != nil {
			return s.GetMemory().GetUsageBytes().GetValue(), nil
		}
	}
	return 0, fmt.Errorf("missing container %s memory usage", short(id))
}

// setResizeError records why c's resize can't be applied ("" when it
// was).
func (a *Agent) setResizeError(g *apiv1.ContainerGroup, name, msg string) {
	a.states.update(g.Metadata.ID, func(s *groupState) {
		if msg != "" || s.containerOf(name).resizeError != "" {
			s.container(name).resizeError = msg
		}
	})
}

// runtimeWords is err without the host's paths a runtime may name (a
// tenant reads it; the agent's log has the whole): a runtime's gRPC error
// by its code alone.
func runtimeWords(err error) string {
	if st, ok := status.FromError(err); ok {
		return "the runtime's " + st.Code().String() + " error (the host's log has it)"
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Op + ": " + pe.Err.Error()
	}
	return err.Error()
}
