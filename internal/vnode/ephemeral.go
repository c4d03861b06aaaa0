package vnode

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/errdefs"
)

// Ephemeral containers (kubectl debug): those a pod gained through its
// ephemeralcontainers subresource are translated as its containers are
// (env, mounts, security context) and added to its group; the pod's
// ephemeralContainerStatuses follow the group's. kubectl's attach then
// reaches them through the kubelet API by name.

// ephemeralToSend are pod's ephemeral containers g does not have yet,
// translated; a refusal of the translation (a privileged one) is said as
// an Event on the container and the rest are sent.
func (p *Provider) ephemeralToSend(pod *corev1.Pod, g *apiv1.ContainerGroup) []apiv1.EphemeralContainer {
	var out []apiv1.EphemeralContainer
	p.mu.Lock()
	unsent := p.unsentEphemeral(pod, g)
	p.mu.Unlock()
	for _, e := range unsent {
		c := corev1.Container(e.EphemeralContainerCommon)
		ct, err := container(pod, c)
		if err == nil {
			ct.Env, err = p.containerEnv(pod, c, &g.Spec)
			ct.ExpandEnv = true
		}
		if err != nil {
			p.refuseEphemeral(pod, e.Name, err)
			continue
		}
		out = append(out, apiv1.EphemeralContainer{Container: ct, TargetContainerName: e.TargetContainerName})
	}
	return out
}

// refuseEphemeral says, once, why ephemeral container name can't run.
func (p *Provider) refuseEphemeral(pod *corev1.Pod, name string, err error) {
	key := string(pod.UID) + "/" + name
	p.mu.Lock()
	said := p.refusedEphemeral[key]
	p.refusedEphemeral[key] = true
	p.mu.Unlock()
	if !said && p.cfg.Recorder != nil {
		msg := err.Error()
		var r *refusal
		if errors.As(err, &r) {
			msg = r.Message
		}
		p.cfg.Recorder.Event(containerRef(pod, name), corev1.EventTypeWarning, "Failed", "Error: "+msg)
	}
}

// sendEphemeral adds pod key's new ephemeral containers to its group;
// retry says a failure may pass.
func (p *Provider) sendEphemeral(ctx context.Context, key string) (retry bool, err error) {
	p.mu.Lock()
	pod, g := p.liveGroup(key)
	p.mu.Unlock()
	if pod == nil || len(pod.Spec.EphemeralContainers) == 0 {
		return false, nil
	}
	add := p.ephemeralToSend(pod, g)
	if len(add) == 0 {
		return false, nil
	}
	began := time.Now()
	out, err := p.cfg.ECI.UpdateGroup(ctx, g.Metadata.ID, apiv1.GroupUpdate{EphemeralContainers: add})
	p.metrics.operation("update_container_group", began)
	switch {
	case errdefs.IsInvalid(err):
		for _, e := range add {
			p.refuseEphemeral(pod, e.Name, err)
		}
		return false, err
	case errdefs.IsNotFound(err):
		return false, err
	case err != nil:
		return true, fmt.Errorf("add ephemeral containers: %w", err)
	}
	p.remember(ctx, out)
	return false, nil
}

// ephemeralStatuses are the pod's ephemeral container statuses, from its
// group's: waiting (ContainerCreating) until the host reports one.
func ephemeralStatuses(pod *corev1.Pod, g *apiv1.ContainerGroup, ph corev1.PodPhase) []corev1.ContainerStatus {
	if len(pod.Spec.EphemeralContainers) == 0 {
		return nil
	}
	spec := make([]corev1.Container, 0, len(pod.Spec.EphemeralContainers))
	for _, e := range pod.Spec.EphemeralContainers {
		spec = append(spec, corev1.Container(e.EphemeralContainerCommon))
	}
	return containerStatuses(spec, g.Status.EphemeralContainers, ph)
}

// hasNewEphemeral tells whether pod key has ephemeral containers its
// group lacks.
func (p *Provider) hasNewEphemeral(key string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	pod, g := p.liveGroup(key)
	return pod != nil && len(p.unsentEphemeral(pod, g)) > 0
}

// unsentEphemeral are pod's ephemeral containers that g lacks and that
// were not refused (mu held).
func (p *Provider) unsentEphemeral(pod *corev1.Pod, g *apiv1.ContainerGroup) []corev1.EphemeralContainer {
	var out []corev1.EphemeralContainer
	for _, e := range pod.Spec.EphemeralContainers {
		if !slices.ContainsFunc(g.Spec.EphemeralContainers, func(h apiv1.EphemeralContainer) bool { return h.Name == e.Name }) &&
			!p.refusedEphemeral[string(pod.UID)+"/"+e.Name] {
			out = append(out, e)
		}
	}
	return out
}
