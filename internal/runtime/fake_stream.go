package runtime

import (
	"context"
	"fmt"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/eci-dev/eci/internal/errdefs"
)

// errNoStreaming: the fake has no streaming server; exec, attach and
// port-forward are tested on containerd.
var errNoStreaming = fmt.Errorf("the fake runtime has no streaming server: %w", errdefs.ErrUnavailable)

// Exec is not served by the fake.
func (f *Fake) Exec(context.Context, *runtimeapi.ExecRequest) (*runtimeapi.ExecResponse, error) {
	return nil, errNoStreaming
}

// Attach is not served by the fake.
func (f *Fake) Attach(context.Context, *runtimeapi.AttachRequest) (*runtimeapi.AttachResponse, error) {
	return nil, errNoStreaming
}

// PortForward is not served by the fake.
func (f *Fake) PortForward(context.Context, *runtimeapi.PortForwardRequest) (*runtimeapi.PortForwardResponse, error) {
	return nil, errNoStreaming
}

// ReopenContainerLog has no file to reopen: the fake writes no logs.
func (f *Fake) ReopenContainerLog(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.containers[id]; !ok {
		return fmt.Errorf("container %s not found", id)
	}
	return nil
}

// ListContainerStats reports each running container's memory usage
// (SetMemoryUsage) and no other.
func (f *Fake) ListContainerStats(_ context.Context, filter *runtimeapi.ContainerStatsFilter) ([]*runtimeapi.ContainerStats, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := time.Now().UnixNano()
	var out []*runtimeapi.ContainerStats
	for id, c := range f.containers {
		if c.status.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
			continue
		}
		if filter != nil && ((filter.PodSandboxId != "" && filter.PodSandboxId != c.sandbox) || !labelsMatch(c.config.Labels, filter.LabelSelector)) {
			continue
		}
		out = append(out, &runtimeapi.ContainerStats{
			Attributes:    &runtimeapi.ContainerAttributes{Id: id, Metadata: c.config.Metadata, Labels: c.config.Labels},
			Cpu:           &runtimeapi.CpuUsage{Timestamp: now, UsageCoreNanoSeconds: &runtimeapi.UInt64Value{}},
			Memory:        &runtimeapi.MemoryUsage{Timestamp: now, WorkingSetBytes: &runtimeapi.UInt64Value{Value: c.memory}, UsageBytes: &runtimeapi.UInt64Value{Value: c.memory}},
			WritableLayer: &runtimeapi.FilesystemUsage{Timestamp: now, UsedBytes: &runtimeapi.UInt64Value{}},
		})
	}
	return out, nil
}

// PodSandboxStats reports zero usage for a known sandbox.
func (f *Fake) PodSandboxStats(_ context.Context, id string) (*runtimeapi.PodSandboxStats, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	sb, ok := f.sandboxes[id]
	if !ok {
		return nil, fmt.Errorf("sandbox %s not found", id)
	}
	return &runtimeapi.PodSandboxStats{
		Attributes: &runtimeapi.PodSandboxAttributes{Id: id, Metadata: sb.config.Metadata, Labels: sb.config.Labels},
		Linux:      &runtimeapi.LinuxPodSandboxStats{Network: &runtimeapi.NetworkUsage{Timestamp: time.Now().UnixNano()}},
	}, nil
}
