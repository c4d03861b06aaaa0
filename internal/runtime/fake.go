package runtime

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Fake is an in-memory Runtime: sandboxes get IPs from a counter, containers
// run as soon as they start and stay running until Exit or StopContainer.
type Fake struct {
	mu         sync.Mutex
	seq        int
	nextIP     netip.Addr
	sandboxes  map[string]*fakeSandbox
	containers map[string]*fakeContainer
	images     map[string]bool
	subs       []chan<- *runtimeapi.ContainerEventResponse
	updates    int   // calls of UpdateContainerResources
	updateErr  error // what UpdateContainerResources answers (FailUpdates)
}

type fakeSandbox struct {
	config  *runtimeapi.PodSandboxConfig
	state   runtimeapi.PodSandboxState
	ip      string
	created int64
}

type fakeContainer struct {
	sandbox string
	config  *runtimeapi.ContainerConfig
	status  runtimeapi.ContainerStatus
	memory  uint64 // its memory usage (SetMemoryUsage)
}

// NewFake returns an empty fake runtime whose sandboxes get IPs from base on.
func NewFake(base netip.Addr) *Fake {
	return &Fake{nextIP: base, sandboxes: map[string]*fakeSandbox{}, containers: map[string]*fakeContainer{}, images: map[string]bool{}}
}

func (f *Fake) id(prefix string) string {
	f.seq++
	return fmt.Sprintf("%s-%06d", prefix, f.seq)
}

// RunPodSandbox makes a ready sandbox.
func (f *Fake) RunPodSandbox(_ context.Context, config *runtimeapi.PodSandboxConfig, _ string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := f.id("sandbox")
	f.sandboxes[id] = &fakeSandbox{config: config, state: runtimeapi.PodSandboxState_SANDBOX_READY, ip: f.nextIP.String(), created: time.Now().UnixNano()}
	f.nextIP = f.nextIP.Next()
	return id, nil
}

// StopPodSandbox stops the sandbox and its containers.
func (f *Fake) StopPodSandbox(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	sb, ok := f.sandboxes[id]
	if !ok {
		return nil
	}
	sb.state = runtimeapi.PodSandboxState_SANDBOX_NOTREADY
	for cid, c := range f.containers {
		if c.sandbox == id {
			f.exitLocked(cid, c, 137, "Error")
		}
	}
	return nil
}

// RemovePodSandbox removes the sandbox and its containers.
func (f *Fake) RemovePodSandbox(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.sandboxes, id)
	for cid, c := range f.containers {
		if c.sandbox == id {
			delete(f.containers, cid)
		}
	}
	return nil
}

// PodSandboxStatus reports a sandbox.
func (f *Fake) PodSandboxStatus(_ context.Context, id string, _ bool) (*runtimeapi.PodSandboxStatusResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	sb, ok := f.sandboxes[id]
	if !ok {
		return nil, fmt.Errorf("sandbox %s not found", id)
	}
	return &runtimeapi.PodSandboxStatusResponse{Status: &runtimeapi.PodSandboxStatus{
		Id: id, Metadata: sb.config.Metadata, State: sb.state, CreatedAt: sb.created,
		Network: &runtimeapi.PodSandboxNetworkStatus{Ip: sb.ip}, Labels: sb.config.Labels, Annotations: sb.config.Annotations,
	}}, nil
}

// ListPodSandbox lists sandboxes matching the filter's labels and state.
func (f *Fake) ListPodSandbox(_ context.Context, filter *runtimeapi.PodSandboxFilter) ([]*runtimeapi.PodSandbox, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*runtimeapi.PodSandbox
	for id, sb := range f.sandboxes {
		if filter != nil && !labelsMatch(sb.config.Labels, filter.LabelSelector) {
			continue
		}
		if filter != nil && filter.State != nil && filter.State.State != sb.state {
			continue
		}
		out = append(out, &runtimeapi.PodSandbox{Id: id, Metadata: sb.config.Metadata, State: sb.state, CreatedAt: sb.created, Labels: sb.config.Labels})
	}
	return out, nil
}

// CreateContainer makes a created container.
func (f *Fake) CreateContainer(_ context.Context, sandboxID string, config *runtimeapi.ContainerConfig, _ *runtimeapi.PodSandboxConfig) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.sandboxes[sandboxID]; !ok {
		return "", fmt.Errorf("sandbox %s not found", sandboxID)
	}
	id := f.id("container")
	f.containers[id] = &fakeContainer{sandbox: sandboxID, config: config, status: runtimeapi.ContainerStatus{
		Id: id, Metadata: config.Metadata, State: runtimeapi.ContainerState_CONTAINER_CREATED, CreatedAt: time.Now().UnixNano(),
		Image: config.Image, ImageRef: config.Image.GetImage(), Labels: config.Labels, Annotations: config.Annotations,
	}}
	if r := config.GetLinux().GetResources(); r != nil {
		// As containerd's: the status reports the resources it runs with.
		f.containers[id].status.Resources = &runtimeapi.ContainerResources{Linux: proto.Clone(r).(*runtimeapi.LinuxContainerResources)}
	}
	f.emitLocked(id, runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT)
	return id, nil
}

// StartContainer runs it.
func (f *Fake) StartContainer(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.containers[id]
	if !ok {
		return fmt.Errorf("container %s not found", id)
	}
	c.status.State, c.status.StartedAt = runtimeapi.ContainerState_CONTAINER_RUNNING, time.Now().UnixNano()
	f.emitLocked(id, runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT)
	return nil
}

// StopContainer ends it (exit code 137 as if killed).
func (f *Fake) StopContainer(_ context.Context, id string, _ int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c, ok := f.containers[id]; ok && c.status.State == runtimeapi.ContainerState_CONTAINER_RUNNING {
		f.exitLocked(id, c, 137, "Error")
	}
	return nil
}

// Exit makes a running container exit with code (tests).
func (f *Fake) Exit(id string, code int32) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c, ok := f.containers[id]; ok {
		reason := "Completed"
		if code != 0 {
			reason = "Error"
		}
		f.exitLocked(id, c, code, reason)
	}
}

func (f *Fake) exitLocked(id string, c *fakeContainer, code int32, reason string) {
	c.status.State, c.status.ExitCode, c.status.Reason, c.status.FinishedAt = runtimeapi.ContainerState_CONTAINER_EXITED, code, reason, time.Now().UnixNano()
	f.emitLocked(id, runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT)
}

// RemoveContainer deletes it.
func (f *Fake) RemoveContainer(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.containers, id)
	return nil
}

// ListContainers lists containers matching the filter's sandbox and labels.
func (f *Fake) ListContainers(_ context.Context, filter *runtimeapi.ContainerFilter) ([]*runtimeapi.Container, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*runtimeapi.Container
	for id, c := range f.containers {
		if filter != nil && filter.PodSandboxId != "" && filter.PodSandboxId != c.sandbox {
			continue
		}
		if filter != nil && !labelsMatch(c.config.Labels, filter.LabelSelector) {
			continue
		}
		out = append(out, &runtimeapi.Container{Id: id, PodSandboxId: c.sandbox, Metadata: c.config.Metadata, Image: c.config.Image,
			State: c.status.State, CreatedAt: c.status.CreatedAt, Labels: c.config.Labels, Annotations: c.config.Annotations})
	}
	return out, nil
}

// ContainerStatus reports a container.
func (f *Fake) ContainerStatus(_ context.Context, id string, _ bool) (*runtimeapi.ContainerStatusResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.containers[id]
	if !ok {
		return nil, fmt.Errorf("container %s not found", id)
	}
	return &runtimeapi.ContainerStatusResponse{Status: proto.Clone(&c.status).(*runtimeapi.ContainerStatus)}, nil
}

// UpdateContainerResources changes the resources its status reports.
func (f *Fake) UpdateContainerResources(_ context.Context, id string, r *runtimeapi.ContainerResources) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.containers[id]
	if !ok {
		return fmt.Errorf("container %s not found", id)
	}
	f.updates++
	if f.updateErr != nil {
		return f.updateErr
	}
	c.status.Resources = proto.Clone(r).(*runtimeapi.ContainerResources)
	return nil
}

// ContainerConfig is the config container id was made with (tests; nil
// for none).
func (f *Fake) ContainerConfig(id string) *runtimeapi.ContainerConfig {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c, ok := f.containers[id]; ok {
		return proto.Clone(c.config).(*runtimeapi.ContainerConfig)
	}
	return nil
}

// ResourceUpdates counts the calls of UpdateContainerResources (tests).
func (f *Fake) ResourceUpdates() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.updates
}

// FailUpdates makes UpdateContainerResources answer err (nil: succeed).
func (f *Fake) FailUpdates(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.updateErr = err
}

// SetMemoryUsage makes container id report using bytes of memory (tests).
func (f *Fake) SetMemoryUsage(id string, bytes uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c, ok := f.containers[id]; ok {
		c.memory = bytes
	}
}

// ExecSync runs nothing: it succeeds while the container runs, unless the
// command is ["false"] (tests make probes fail with it).
func (f *Fake) ExecSync(_ context.Context, id string, cmd []string, _ time.Duration) ([]byte, []byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.containers[id]
	if !ok || c.status.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		return nil, nil, fmt.Errorf("container %s is not running", id)
	}
	if len(cmd) == 1 && cmd[0] == "false" {
		return nil, nil, fmt.Errorf("command failed: exit status 1")
	}
	return nil, nil, nil
}

// ImageStatus reports whether the image was pulled.
func (f *Fake) ImageStatus(_ context.Context, image *runtimeapi.ImageSpec, _ bool) (*runtimeapi.ImageStatusResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.images[image.Image] {
		return &runtimeapi.ImageStatusResponse{}, nil
	}
	return &runtimeapi.ImageStatusResponse{Image: &runtimeapi.Image{Id: image.Image, RepoTags: []string{image.Image}}}, nil
}

// PullImage records the image as present.
func (f *Fake) PullImage(_ context.Context, image *runtimeapi.ImageSpec, _ *runtimeapi.AuthConfig, _ *runtimeapi.PodSandboxConfig) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.images[image.Image] = true
	return image.Image, nil
}

// ListImages lists the images pulled (each its own id and name, 1 MiB).
func (f *Fake) ListImages(_ context.Context, _ *runtimeapi.ImageFilter) ([]*runtimeapi.Image, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*runtimeapi.Image
	for img := range f.images {
		out = append(out, &runtimeapi.Image{Id: img, RepoTags: []string{img}, Size: 1 << 20})
	}
	return out, nil
}

// RemoveImage forgets an image.
func (f *Fake) RemoveImage(_ context.Context, image *runtimeapi.ImageSpec) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.images, image.Image)
	return nil
}

// ImageFsInfo reports no filesystem.
func (f *Fake) ImageFsInfo(context.Context) (*runtimeapi.ImageFsInfoResponse, error) {
	return &runtimeapi.ImageFsInfoResponse{}, nil
}

// Events delivers container events until ctx ends.
func (f *Fake) Events(ctx context.Context, out chan<- *runtimeapi.ContainerEventResponse) error {
	f.mu.Lock()
	f.subs = append(f.subs, out)
	f.mu.Unlock()
	<-ctx.Done()
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, s := range f.subs {
		if s == out {
			f.subs = append(f.subs[:i], f.subs[i+1:]...)
			break
		}
	}
	return nil
}

func (f *Fake) emitLocked(id string, typ runtimeapi.ContainerEventType) {
	c := f.containers[id]
	ev := &runtimeapi.ContainerEventResponse{ContainerId: id, ContainerEventType: typ, CreatedAt: time.Now().UnixNano()}
	if sb, ok := f.sandboxes[c.sandbox]; ok {
		ev.PodSandboxStatus = &runtimeapi.PodSandboxStatus{Id: c.sandbox, Labels: sb.config.Labels, Metadata: sb.config.Metadata}
	}
	for _, s := range f.subs {
		select {
		case s <- ev:
		default:
		}
	}
}

func labelsMatch(labels, selector map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}
