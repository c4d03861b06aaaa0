package vnode

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/errdefs"
	"github.com/eci-dev/eci/internal/log"
)

// syncUpdates sends the images of pod key that its group does not have yet
// (and a changed activeDeadlineSeconds, and its containers' resized CPU and
// memory: resize.go) to the group
// (UpdateContainerGroup), in the background, until the group has them: called on every change of the pod and of its group, so that
// none is lost (a failed update, one made while the node was down). A set
// of images the service refuses is said once, as an Event on the
// container, and not sent again.
func (p *Provider) syncUpdates(ctx context.Context, key string) {
	pod, _, _ := p.updateToSend(key)
	if resized, _, _ := p.resizeToSend(key); pod == nil && resized == nil && !p.hasNewEphemeral(key) {
		return
	}
	p.mu.Lock()
	if p.imaging[key] {
		p.mu.Unlock()
		return
	}
	p.imaging[key] = true
	p.mu.Unlock()
	bg := p.background(ctx)
	go func() {
		defer func() { p.mu.Lock(); delete(p.imaging, key); p.mu.Unlock() }()
		wait := time.Second
		for range 8 {
			retry, err := p.sendUpdate(bg, key)
			retryResize, errResize := p.sendResize(bg, key)          // resize.go
			retryEphemeral, errEphemeral := p.sendEphemeral(bg, key) // ephemeral.go
			if !retry && !retryResize && !retryEphemeral {
				return
			}
			err = cmp.Or(err, errResize, errEphemeral)
			log.G(bg).Warn("update a pod's group: images, deadline, resources or ephemeral containers (will retry)", "pod", key, "err", err)
			select {
			case <-bg.Done():
				return
			case <-time.After(wait):
			}
			wait = min(2*wait, 30*time.Second)
		}
	}()
}

// updateToSend is pod key, its group, and the images of the pod's
// containers its group does not have (none for a group that ended, or a
// set its group refused).
func (p *Provider) updateToSend(key string) (*corev1.Pod, *apiv1.ContainerGroup, map[string]string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pod, g := p.liveGroup(key)
	if pod == nil {
		return nil, nil, nil
	}
	images := changedImages(pod, g)
	if len(images) == 0 || p.refused[string(pod.UID)] == fmt.Sprint(images) {
		images = nil
	}
	if len(images) == 0 && deadlineToSend(pod, g) == nil {
		return nil, nil, nil
	}
	return pod, g, images
}

// deadlineToSend is the pod's activeDeadlineSeconds when its group's
// differs: Kubernetes lets a pod's be set or lowered, and the service
// takes both.
func deadlineToSend(pod *corev1.Pod, g *apiv1.ContainerGroup) *int64 {
	want, have := pod.Spec.ActiveDeadlineSeconds, g.Spec.ActiveDeadlineSeconds
	if want == nil || (have != nil && *have == *want) {
		return nil
	}
	return want
}

// sendUpdate sends what updateToSend finds, with a changed
// activeDeadlineSeconds; retry says a failure may pass.
func (p *Provider) sendUpdate(ctx context.Context, key string) (retry bool, err error) {
	pod, g, images := p.updateToSend(key)
	if pod == nil {
		return false, nil
	}
	began := time.Now()
	out, err := p.cfg.ECI.UpdateGroup(ctx, g.Metadata.ID, apiv1.GroupUpdate{Images: images, ActiveDeadlineSeconds: deadlineToSend(pod, g)})
	p.metrics.operation("update_container_group", began)
	switch {
	case errdefs.IsInvalid(err):
		p.mu.Lock()
		p.refused[string(pod.UID)] = fmt.Sprint(images)
		p.mu.Unlock()
		for _, name := range slices.Sorted(maps.Keys(images)) {
			if p.cfg.Recorder != nil {
				p.cfg.Recorder.Event(containerRef(pod, name), corev1.EventTypeWarning, "InspectFailed", fmt.Sprintf("Failed to apply image %q: %v", images[name], err))
			}
		}
		return false, err
	case errdefs.IsNotFound(err):
		return false, err // the group is gone: the pod gets its end
	case err != nil:
		return true, err
	}
	p.remember(ctx, out)
	return false, nil
}

// changedImages are the images of pod's containers that g's differ from,
// by container name.
func changedImages(pod *corev1.Pod, g *apiv1.ContainerGroup) map[string]string {
	have := map[string]string{}
	for _, c := range append(slices.Clone(g.Spec.InitContainers), g.Spec.Containers...) {
		have[c.Name] = c.Image
	}
	out := map[string]string{}
	for _, c := range append(slices.Clone(pod.Spec.InitContainers), pod.Spec.Containers...) {
		if img, ok := have[c.Name]; ok && img != c.Image {
			out[c.Name] = c.Image
		}
	}
	return out
}

// liveGroup is pod key and its group while the group lives (nils
// otherwise), mu held: what an update of the group starts from.
func (p *Provider) liveGroup(key string) (*corev1.Pod, *apiv1.ContainerGroup) {
	pod := p.pods[key]
	if pod == nil {
		return nil, nil
	}
	g := p.groups[string(pod.UID)]
	if g == nil || g.Status.State.Terminal() {
		return nil, nil
	}
	return pod, g
}
