package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/imageref"
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

// ensureImage pulls c's image unless it is present (or the policy says
// Always), with the registry transport the group asked for, and returns the
// image's id, which the container is made from (as the kubelet does: a tag
// moved by a later pull changes nothing of it). An image another group
// pulled without verified TLS is pulled again over verified TLS for a group
// that did not ask for that; the check, the pull and the mark are made
// under the registry's lock (pullguard.go).
func (a *Agent) ensureImage(ctx context.Context, g *apiv1.ContainerGroup, c apiv1.Container, sbCfg *runtimeapi.PodSandboxConfig) (string, error) {
	reg, err := imageref.RegistryOf(c.Image)
	if err != nil {
		return "", &waitingError{reason: "InvalidImageName", err: err}
	}
	wish := registryWishes(g)[reg]
	spec := &runtimeapi.ImageSpec{Image: c.Image}
	auth := pullAuth(g, c.Image)
	name, _ := imageref.Normal(c.Image)
	var image string
	err = a.withTransport(reg, wish, func() error {
		st, err := a.cfg.Runtime.ImageStatus(ctx, spec, false)
		present := err == nil && st.GetImage() != nil
		openID := "" // the image's id when it is here for anyone (imageowners.go)
		if present && a.owners.isOpen(st.GetImage().GetId(), name) {
			openID = st.GetImage().GetId()
		}
		if c.ImagePullPolicy != apiv1.PullAlways {
			unverified := present && wish == "" && a.pulls.isTainted(c.Image)
			private := present && !a.owners.mayUse(st.GetImage().GetId(), name, g.Metadata.Tenant)
			switch {
			case present && !unverified && !private:
				image = st.GetImage().GetId()
				a.containerEvent(ctx, g, c.Name, apiv1.EventNormal, "Pulled", fmt.Sprintf("Container image %q already present on machine", c.Image))
				return nil
			case c.ImagePullPolicy == apiv1.PullNever && unverified:
				return &waitingError{reason: "ErrImageNeverPull", err: fmt.Errorf("image %s on this host was pulled without TLS verification for another group, and imagePullPolicy Never forbids pulling it again", c.Image)}
			case c.ImagePullPolicy == apiv1.PullNever && private:
				return &waitingError{reason: "ErrImageNeverPull", err: fmt.Errorf("image %s on this host was pulled with another tenant's registry credential, and imagePullPolicy Never forbids pulling it with this group's", c.Image)}
			case c.ImagePullPolicy == apiv1.PullNever:
				return &waitingError{reason: "ErrImageNeverPull", err: fmt.Errorf("image %s is not present and imagePullPolicy is Never", c.Image)}
			}
		}
		// Only a pull reaches the registry: an image present needs no check.
		if err := a.checkLocalRegistry(ctx, reg); err != nil {
			return err
		}
		if wish != "" {
			// Marked before the pull: a copy that may be anyone's is never
			// taken for a verified one, even if the pull fails midway.
			if err := a.pulls.mark(c.Image, true); err != nil {
				return err
			}
		}
		done, err := a.owners.pulling(name, g.Metadata.Tenant, auth != nil) // before: a crash midway leaves it private
		if err != nil {
			return err
		}
		defer done()
		ref, err := a.pull(ctx, g, c, spec, sbCfg)
		if err != nil {
			return err
		}
		image = ref
		if err := a.owners.pulled(ref, name, g.Metadata.Tenant, auth != nil, ref == openID); err != nil {
			return err
		}
		if wish == "" {
			return a.pulls.mark(c.Image, false)
		}
		return nil
	})
	var we *waitingError
	if err != nil && !errors.As(err, &we) {
		err = &waitingError{reason: "ErrImagePull", err: err}
	}
	if image == "" && err == nil {
		image = c.Image
	}
	return image, err
}
