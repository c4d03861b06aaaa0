package vnode

import (
	"context"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/record"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/client"
	"github.com/eci-dev/eci/internal/log"
)

// podEvents gives each pod of the node the events of its instance as
// Kubernetes Events, as the kubelet records them (source kubelet on the
// node, its reasons and wording, a container's event referring to
// spec.containers{name}): the agents' (Pulling, Pulled, Created, Started,
// Killing, Unhealthy, BackOff, Failed, FailedMount, Evicted...) and the
// server's warnings (FailedScheduling: the instance waits for capacity)
// and SuccessfulHitImageCache (its host held its images, docs/fast-start.md).
// A series' new occurrence is recorded again: the recorder's correlator
// counts it, as the kubelet's does. What the first list of the watch
// holds is not (the pods had it before the node started); a relist gives
// nothing twice.
type podEvents struct {
	p        *Provider
	recorder record.EventRecorder

	mu     sync.Mutex
	listed bool           // the first list is replayed
	seen   map[string]int // event id: the count recorded (or listed)
	// relisted are the events a relist replays, to forget the others.
	relisted map[string]bool
}

func newPodEvents(p *Provider, recorder record.EventRecorder) *podEvents {
	return &podEvents{p: p, recorder: recorder, seen: map[string]int{}}
}

// run watches the tenant's events until ctx ends.
func (e *podEvents) run(ctx context.Context) {
	e.p.cfg.ECI.InformEvents(ctx, client.Handler[apiv1.Event]{
		Synced: func() { e.mu.Lock(); e.listed = true; e.mu.Unlock() },
		Relist: func() { e.mu.Lock(); e.relisted = map[string]bool{}; e.mu.Unlock() },
		Relisted: func() {
			e.mu.Lock()
			defer e.mu.Unlock()
			for id := range e.seen {
				if !e.relisted[id] {
					delete(e.seen, id) // deleted while the watch was gone
				}
			}
			e.relisted = nil
		},
		Event: func(ev client.WatchEvent[apiv1.Event]) {
			if ev.Object == nil {
				return
			}
			if ev.Type == apiv1.Deleted {
				e.mu.Lock()
				delete(e.seen, ev.Object.Metadata.ID)
				e.mu.Unlock()
				return
			}
			e.record(ev.Object)
		},
		Error: func(err error) { log.G(ctx).Warn("watch the instance service's events", "err", err) },
	})
}

// record gives ev to its pod, unless it was given already, is of the
// first list, or is none of the node's pods'. Only events of its pods are
// remembered.
func (e *podEvents) record(ev *apiv1.Event) {
	if ev.Object.Kind != "ContainerGroup" || !forPods(ev) {
		return
	}
	pod := e.p.podOfGroup(ev.Object.ID)
	if pod == nil {
		return
	}
	e.mu.Lock()
	prev, known := e.seen[ev.Metadata.ID]
	e.seen[ev.Metadata.ID] = ev.Count
	if e.relisted != nil {
		e.relisted[ev.Metadata.ID] = true
	}
	give := e.listed && (!known || ev.Count > prev)
	e.mu.Unlock()
	if give {
		e.recorder.Event(containerRef(pod, ev.Container), ev.Type, ev.Reason, ev.Message)
	}
}

// forPods tells whether a pod shows ev: what the agents say, and the
// server's warnings (its own Created and Scheduled are the group's: the
// API server and the scheduler gave the pod theirs).
func forPods(ev *apiv1.Event) bool {
	return strings.HasPrefix(ev.Source, "agent/") || ev.Source == "server" && (ev.Type == apiv1.EventWarning || ev.Reason == "SuccessfulHitImageCache")
}

// containerRef refers to pod, or to its container name (a field path
// spec.containers{name}, spec.initContainers{name}, as the kubelet's
// events do).
func containerRef(pod *corev1.Pod, name string) *corev1.ObjectReference {
	ref := &corev1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID, ResourceVersion: pod.ResourceVersion}
	for _, c := range pod.Spec.InitContainers {
		if c.Name == name {
			ref.FieldPath = "spec.initContainers{" + name + "}"
		}
	}
	for _, c := range pod.Spec.Containers {
		if c.Name == name {
			ref.FieldPath = "spec.containers{" + name + "}"
		}
	}
	return ref
}

// podOfGroup is the pod of group id, if the node runs it.
func (p *Provider) podOfGroup(id string) *corev1.Pod {
	p.mu.Lock()
	defer p.mu.Unlock()
	for uid, g := range p.groups {
		if g.Metadata.ID != id {
			continue
		}
		pod := p.pods[podKey(g.Metadata.Labels[LabelPodNamespace], g.Metadata.Labels[LabelPodName])]
		if pod != nil && string(pod.UID) == uid {
			return pod
		}
	}
	return nil
}
