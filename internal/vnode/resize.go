package vnode

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/errdefs"
)

// In-place resize, as a 1.35 kubelet does it: a pod's containers' CPU and
// memory changed through the resize subresource are sent to the group
// (GroupUpdate.Resources), which takes them within its instance's size;
// more is refused and the pod says so with PodResizePending (Infeasible),
// as a kubelet does for more than its node has. While the host applies
// them the pod has PodResizeInProgress, and its container statuses say
// what each runs with; the kubelet's Events (ResizeStarted, -Infeasible,
// -Error, -Completed) tell the story.

// resizeState is what the node holds of one pod's resize, by pod UID.
type resizeState struct {
	refused    string    // the resources the group refused (not sent again)
	message    string    // why
	generation int64     // the pod's generation then
	since      time.Time // when the pending or in-progress condition began
	started    bool      // a resize was taken: ResizeCompleted is said when done
	errorSaid  string    // the last ResizeError said as an Event
}

// limitsOf is a container's own CPU (vCPU) and memory (GiB) in its
// group: its limits, as translated.
func limitsOf(c corev1.Container) apiv1.ContainerResources {
	return apiv1.ContainerResources{
		CPU:    quantity(c.Resources.Limits, corev1.ResourceCPU) / 1000,
		Memory: quantity(c.Resources.Limits, corev1.ResourceMemory) / (1 << 30),
	}
}

// wantedResources are the CPU and memory of pod's app containers, as
// translated for a group.
func wantedResources(pod *corev1.Pod) map[string]apiv1.ContainerResources {
	out := map[string]apiv1.ContainerResources{}
	for _, c := range pod.Spec.Containers {
		out[c.Name] = limitsOf(c)
	}
	return out
}

// changedResources are those of wantedResources that g's containers
// differ from.
func changedResources(pod *corev1.Pod, g *apiv1.ContainerGroup) map[string]apiv1.ContainerResources {
	want := wantedResources(pod)
	out := map[string]apiv1.ContainerResources{}
	for _, c := range g.Spec.Containers {
		if w, ok := want[c.Name]; ok && (w.CPU != c.CPU || w.Memory != c.Memory) {
			out[c.Name] = w
		}
	}
	return out
}

// resizeToSend is pod key, its group, and the resources to send it: none
// for a group that ended, or the very ones it refused.
func (p *Provider) resizeToSend(key string) (*corev1.Pod, *apiv1.ContainerGroup, map[string]apiv1.ContainerResources) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pod, g := p.liveGroup(key)
	if pod == nil {
		return nil, nil, nil
	}
	res := changedResources(pod, g)
	if st := p.resizes[string(pod.UID)]; len(res) == 0 || (st != nil && st.refused == fmt.Sprint(res)) {
		return nil, nil, nil
	}
	return pod, g, res
}

// sendResize sends what resizeToSend finds; retry says a failure may pass.
// A refusal is kept (the pod shows it) until the pod asks for other
// resources.
func (p *Provider) sendResize(ctx context.Context, key string) (retry bool, err error) {
	pod, g, res := p.resizeToSend(key)
	if pod == nil {
		return false, nil
	}
	began := time.Now()
	out, err := p.cfg.ECI.UpdateGroup(ctx, g.Metadata.ID, apiv1.GroupUpdate{Resources: res})
	p.metrics.operation("update_container_group", began)
	switch {
	case errdefs.IsInvalid(err):
		p.mu.Lock()
		p.resizes[string(pod.UID)] = &resizeState{refused: fmt.Sprint(res), message: err.Error(), generation: pod.Generation, since: time.Now()}
		st := p.withStatus(pod)
		p.mu.Unlock()
		p.event(pod, corev1.EventTypeWarning, "ResizeInfeasible", resizeMessage(pod, "Pod resize Infeasible", err.Error()))
		p.push(st)
		return false, err
	case errdefs.IsNotFound(err):
		return false, err
	case err != nil:
		return true, err
	}
	p.mu.Lock()
	p.resizes[string(pod.UID)] = &resizeState{started: true, generation: pod.Generation, since: time.Now()}
	p.mu.Unlock()
	p.event(pod, corev1.EventTypeNormal, "ResizeStarted", resizeMessage(pod, "Pod resize started", ""))
	p.remember(ctx, out)
	return false, nil
}

// resizeMessage is the kubelet's message of a resize Event: what it says,
// then the pod's containers' resources, its generation and the error.
func resizeMessage(pod *corev1.Pod, prefix, errMsg string) string {
	type alloc struct {
		Name      string                      `json:"name"`
		Resources corev1.ResourceRequirements `json:"resources,omitempty"`
	}
	summary := struct {
		InitContainers []alloc `json:"initContainers,omitempty"`
		Containers     []alloc `json:"containers,omitempty"`
		Generation     int64   `json:"generation"`
		Error          string  `json:"error,omitempty"`
	}{Generation: pod.Generation, Error: errMsg}
	for _, c := range pod.Spec.InitContainers {
		summary.InitContainers = append(summary.InitContainers, alloc{c.Name, c.Resources})
	}
	for _, c := range pod.Spec.Containers {
		summary.Containers = append(summary.Containers, alloc{c.Name, c.Resources})
	}
	b, err := json.Marshal(summary)
	if err != nil {
		return prefix
	}
	return prefix + ": " + string(b)
}

// resizeStatus adds to out, the status of a running pod, its resize
// conditions and what each container was given and runs with (mu held).
func (p *Provider) resizeStatus(pod *corev1.Pod, g *apiv1.ContainerGroup, out *corev1.PodStatus) {
	if out.Phase != corev1.PodRunning {
		return
	}
	uid := string(pod.UID)
	changed := changedResources(pod, g)
	st := p.resizes[uid]
	pending := st != nil && len(changed) > 0 && st.refused == fmt.Sprint(changed)
	prev := map[string]corev1.ContainerStatus{}
	for _, cs := range pod.Status.ContainerStatuses {
		prev[cs.Name] = cs
	}
	actual := map[string]apiv1.ContainerStatus{}
	for _, cs := range g.Status.Containers {
		actual[cs.Name] = cs
	}
	var applying bool
	var errs []string
	for i, c := range pod.Spec.Containers {
		cs := &out.ContainerStatuses[i]
		cs.AllocatedResources = c.Resources.Requests.DeepCopy()
		if pending {
			cs.AllocatedResources = prev[c.Name].AllocatedResources.DeepCopy()
		}
		a := actual[c.Name]
		if cs.State.Running == nil || a.State.Running == nil {
			continue
		}
		gc := g.Spec.Container(c.Name)
		done := a.Limits == nil || gc == nil || *a.Limits == g.Limits(*gc)
		if a.ResizeError != "" {
			errs = append(errs, a.ResizeError)
		}
		applying = applying || !done
		if done && !pending && len(changed) == 0 {
			cs.Resources = c.Resources.DeepCopy()
			continue
		}
		cs.Resources = &corev1.ResourceRequirements{Requests: cs.AllocatedResources, Limits: actualLimits(c, a.Limits)}
	}
	inProgress := !pending && (len(changed) > 0 || applying || len(errs) > 0)
	if !pending && !inProgress {
		if st != nil && !st.started {
			delete(p.resizes, uid)
		}
		return
	}
	if st == nil || (!pending && st.refused != "") {
		st = &resizeState{started: st != nil && st.started, generation: pod.Generation, since: time.Now()}
		p.resizes[uid] = st
	}
	cond := corev1.PodCondition{Type: corev1.PodResizeInProgress, Status: corev1.ConditionTrue, ObservedGeneration: st.generation,
		LastTransitionTime: metav1.Time{Time: st.since}}
	switch {
	case pending:
		cond.Type, cond.Reason, cond.Message = corev1.PodResizePending, corev1.PodReasonInfeasible, st.message
	case len(errs) > 0:
		cond.Reason, cond.Message = corev1.PodReasonError, strings.Join(errs, "; ")
	}
	out.Conditions = append(out.Conditions, cond)
}

// actualLimits are the limits container c of the pod runs with, of those
// its spec gives, from what its host reports.
func actualLimits(c corev1.Container, l *apiv1.Limits) corev1.ResourceList {
	if l == nil || len(c.Resources.Limits) == 0 {
		return c.Resources.Limits.DeepCopy()
	}
	out := corev1.ResourceList{}
	for name := range c.Resources.Limits {
		switch name {
		case corev1.ResourceCPU:
			out[name] = *resource.NewMilliQuantity(l.MilliCPU, resource.DecimalSI)
		case corev1.ResourceMemory:
			out[name] = *resource.NewQuantity(l.MemoryMiB<<20, resource.BinarySI)
		default:
			out[name] = c.Resources.Limits[name]
		}
	}
	return out
}

// resizeNews are the Events a pod's new status tells of its resize: an
// error first seen, or the end of a resize the node started (mu held).
func (p *Provider) resizeNews(pod *corev1.Pod, out *corev1.PodStatus) []func() {
	st := p.resizes[string(pod.UID)]
	if st == nil {
		return nil
	}
	var msg string
	inProgress := false
	for _, c := range out.Conditions {
		if c.Type == corev1.PodResizeInProgress {
			inProgress, msg = true, c.Message
		}
	}
	var news []func()
	if inProgress && msg != "" && msg != st.errorSaid {
		st.errorSaid = msg
		pod := pod.DeepCopy()
		news = append(news, func() {
			p.event(pod, corev1.EventTypeWarning, "ResizeError", resizeMessage(pod, "Pod resize error", msg))
		})
	}
	if !inProgress && st.started && st.refused == "" {
		delete(p.resizes, string(pod.UID))
		pod := pod.DeepCopy()
		news = append(news, func() {
			p.event(pod, corev1.EventTypeNormal, "ResizeCompleted", resizeMessage(pod, "Pod resize completed", ""))
		})
	}
	return news
}
