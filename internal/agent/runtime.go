package agent

import (
	"context"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/eci-dev/eci/internal/runtime"
)

// Runtime is what the agent needs of a container runtime: the subset of the
// Kubernetes CRI API it calls, with CRI's own types. internal/runtime has
// its implementations: CRI (containerd's CRI plugin) and an in-memory Fake.
type Runtime interface {
	RunPodSandbox(ctx context.Context, config *runtimeapi.PodSandboxConfig, runtimeHandler string) (string, error)
	StopPodSandbox(ctx context.Context, id string) error
	RemovePodSandbox(ctx context.Context, id string) error
	PodSandboxStatus(ctx context.Context, id string, verbose bool) (*runtimeapi.PodSandboxStatusResponse, error)
	ListPodSandbox(ctx context.Context, filter *runtimeapi.PodSandboxFilter) ([]*runtimeapi.PodSandbox, error)

	CreateContainer(ctx context.Context, sandboxID string, config *runtimeapi.ContainerConfig, sandboxConfig *runtimeapi.PodSandboxConfig) (string, error)
	StartContainer(ctx context.Context, id string) error
	StopContainer(ctx context.Context, id string, timeout int64) error
	RemoveContainer(ctx context.Context, id string) error
	// UpdateContainerResources changes a running container's CPU and
	// memory (in-place resize); ContainerStatus reports what it has.
	UpdateContainerResources(ctx context.Context, id string, resources *runtimeapi.ContainerResources) error
	ListContainers(ctx context.Context, filter *runtimeapi.ContainerFilter) ([]*runtimeapi.Container, error)
	ContainerStatus(ctx context.Context, id string, verbose bool) (*runtimeapi.ContainerStatusResponse, error)
	ExecSync(ctx context.Context, id string, cmd []string, timeout time.Duration) (stdout, stderr []byte, err error)
	// Exec, Attach and PortForward return the URL of the runtime's streaming
	// server that serves the session (the kubelet's streaming protocols).
	Exec(ctx context.Context, req *runtimeapi.ExecRequest) (*runtimeapi.ExecResponse, error)
	Attach(ctx context.Context, req *runtimeapi.AttachRequest) (*runtimeapi.AttachResponse, error)
	PortForward(ctx context.Context, req *runtimeapi.PortForwardRequest) (*runtimeapi.PortForwardResponse, error)
	// ReopenContainerLog makes the runtime write a new log file (rotation).
	ReopenContainerLog(ctx context.Context, id string) error
	ListContainerStats(ctx context.Context, filter *runtimeapi.ContainerStatsFilter) ([]*runtimeapi.ContainerStats, error)
	PodSandboxStats(ctx context.Context, id string) (*runtimeapi.PodSandboxStats, error)

	ImageStatus(ctx context.Context, image *runtimeapi.ImageSpec, verbose bool) (*runtimeapi.ImageStatusResponse, error)
	PullImage(ctx context.Context, image *runtimeapi.ImageSpec, auth *runtimeapi.AuthConfig, sandboxConfig *runtimeapi.PodSandboxConfig) (string, error)
	// ListImages and RemoveImage serve the image caches (imagecache.go).
	ListImages(ctx context.Context, filter *runtimeapi.ImageFilter) ([]*runtimeapi.Image, error)
	RemoveImage(ctx context.Context, image *runtimeapi.ImageSpec) error
	ImageFsInfo(ctx context.Context) (*runtimeapi.ImageFsInfoResponse, error)

	// Events streams container state changes until ctx ends; a runtime that
	// can't (or a broken stream) returns, and the agent falls back to its resync.
	Events(ctx context.Context, out chan<- *runtimeapi.ContainerEventResponse) error
}

// The runtimes the agent runs on.
var (
	_ Runtime = (*runtime.CRI)(nil)
	_ Runtime = (*runtime.Fake)(nil)
)
