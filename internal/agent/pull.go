package agent

import (
	"context"
	"fmt"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	apiv1 "github.com/eci-dev/eci/api/v1"
)

// pullProgressEvery is how often a pull still under way is reported.
const pullProgressEvery = 10 * time.Second

// pull pulls c's image with the group's credential for its registry. The CRI
// reports no progress of a pull, so while it lasts a Pulling event says for
// how long every pullProgressEvery; Pulled gives the time and the size.
func (a *Agent) pull(ctx context.Context, g *apiv1.ContainerGroup, c apiv1.Container, spec *runtimeapi.ImageSpec, sbCfg *runtimeapi.PodSandboxConfig) (string, error) {
	auth := pullAuth(g, c.Image)
	a.containerEvent(ctx, g, c.Name, apiv1.EventNormal, "Pulling", fmt.Sprintf("Pulling image %q", c.Image))
	start := time.Now()
	done := make(chan struct{})
	defer close(done)
	go func() {
		t := time.NewTicker(pullProgressEvery)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				a.containerEvent(ctx, g, c.Name, apiv1.EventNormal, "Pulling", fmt.Sprintf("Still pulling image %q (%s)", c.Image, time.Since(start).Round(time.Second)))
			}
		}
	}()
	ref, err := a.cfg.Runtime.PullImage(ctx, spec, auth, sbCfg)
	if err != nil {
		return "", &waitingError{reason: "ErrImagePull", err: fmt.Errorf("pull %s: %w", c.Image, err)}
	}
	size := ""
	if st, err := a.cfg.Runtime.ImageStatus(ctx, &runtimeapi.ImageSpec{Image: ref}, false); err == nil && st.GetImage() != nil {
		size = fmt.Sprintf(" Image size: %d bytes.", st.GetImage().GetSize())
	}
	took := time.Since(start).Round(time.Millisecond)
	a.containerEvent(ctx, g, c.Name, apiv1.EventNormal, "Pulled", fmt.Sprintf("Successfully pulled image %q in %s (%s including waiting).%s", c.Image, took, took, size))
	return ref, nil
}
