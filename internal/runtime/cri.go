package runtime

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/go-logr/logr"
	internalapi "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	remote "k8s.io/cri-client/pkg"
	"k8s.io/klog/v2"
)

// CRI is a Runtime over a CRI endpoint (unix:///run/containerd/containerd.sock).
type CRI struct {
	internalapi.RuntimeService
	images internalapi.ImageManagerService
}

// NewCRI connects to endpoint; the CRI client's own logs go to logger.
func NewCRI(endpoint string, logger *slog.Logger) (*CRI, error) {
	if logger == nil {
		logger = slog.Default()
	}
	lg := logr.FromSlogHandler(logger.Handler())
	return newCRI(endpoint, &lg)
}

func newCRI(endpoint string, logger *klog.Logger) (*CRI, error) {
	rs, err := remote.NewRemoteRuntimeService(endpoint, 10*time.Second, nil, logger)
	if err != nil {
		return nil, fmt.Errorf("connect to the CRI runtime at %s: %w", endpoint, err)
	}
	is, err := remote.NewRemoteImageService(endpoint, 10*time.Minute, nil, logger)
	if err != nil {
		return nil, fmt.Errorf("connect to the CRI image service at %s: %w", endpoint, err)
	}
	return &CRI{RuntimeService: rs, images: is}, nil
}

// ImageStatus reports whether an image is present.
func (c *CRI) ImageStatus(ctx context.Context, image *runtimeapi.ImageSpec, verbose bool) (*runtimeapi.ImageStatusResponse, error) {
	return c.images.ImageStatus(ctx, image, verbose)
}

// PullImage pulls an image.
func (c *CRI) PullImage(ctx context.Context, image *runtimeapi.ImageSpec, auth *runtimeapi.AuthConfig, sandboxConfig *runtimeapi.PodSandboxConfig) (string, error) {
	return c.images.PullImage(ctx, image, auth, sandboxConfig)
}

// ListImages lists the images the runtime holds.
func (c *CRI) ListImages(ctx context.Context, filter *runtimeapi.ImageFilter) ([]*runtimeapi.Image, error) {
	return c.images.ListImages(ctx, filter)
}

// RemoveImage removes an image (all its names).
func (c *CRI) RemoveImage(ctx context.Context, image *runtimeapi.ImageSpec) error {
	return c.images.RemoveImage(ctx, image)
}

// ImageFsInfo reports the filesystems that hold images.
func (c *CRI) ImageFsInfo(ctx context.Context) (*runtimeapi.ImageFsInfoResponse, error) {
	return c.images.ImageFsInfo(ctx)
}

// Events streams CRI container events (containerd implements them).
func (c *CRI) Events(ctx context.Context, out chan<- *runtimeapi.ContainerEventResponse) error {
	ch := make(chan *runtimeapi.ContainerEventResponse, 128)
	errc := make(chan error, 1)
	go func() { errc <- c.GetContainerEvents(ctx, ch, nil) }()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-errc:
			return err
		case ev := <-ch:
			select {
			case out <- ev:
			case <-ctx.Done():
				return nil
			}
		}
	}
}
