package vnode

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	apiv1 "github.com/eci-dev/eci/api/v1"
)

// podStatus maps a group's status onto its pod's (docs/spec.md section 5).
func (p *Provider) podStatus(pod *corev1.Pod, g *apiv1.ContainerGroup) corev1.PodStatus {
	st := g.Status
	out := corev1.PodStatus{
		Phase:   phase(st.State),
		Reason:  st.Reason,
		Message: st.Message,
		HostIP:  p.cfg.InternalIP,
		PodIP:   st.IP,
	}
	if p.cfg.InternalIP != "" {
		out.HostIPs = []corev1.HostIP{{IP: p.cfg.InternalIP}}
	}
	if st.IP != "" {
		out.PodIPs = []corev1.PodIP{{IP: st.IP}}
		if st.IPv6Address != "" { // dual stack: podIP (IPv4) first, as the kubelet's
			out.PodIPs = append(out.PodIPs, corev1.PodIP{IP: st.IPv6Address})
		}
	}
	if out.Phase == corev1.PodPending || out.Phase == corev1.PodRunning {
		out.Reason, out.Message = "", "" // the containers say why
	}
	start := groupStart(g)
	out.StartTime = &metav1.Time{Time: start}
	cond := map[string]apiv1.Condition{}
	for _, c := range st.Conditions {
		cond[c.Type] = c
	}
	scheduled := st.Host != ""
	out.Conditions = []corev1.PodCondition{
		podCondition(corev1.PodScheduled, scheduled || out.Phase != corev1.PodPending, start),
		podCondition(corev1.PodInitialized, cond["Initialized"].Status || out.Phase == corev1.PodSucceeded, cond["Initialized"].LastTransitionTime),
		podCondition(corev1.ContainersReady, cond["ContainersReady"].Status && out.Phase == corev1.PodRunning, cond["ContainersReady"].LastTransitionTime),
		podCondition(corev1.PodReady, cond["Ready"].Status && out.Phase == corev1.PodRunning, cond["Ready"].LastTransitionTime),
	}
	if at := st.SpotReleaseAt; at != nil {
		// A spot instance whose capacity is taken back: the condition a
		// Job's podFailurePolicy and disruption-aware controllers read,
		// before and after it ends.
		c := podCondition(corev1.DisruptionTarget, true, time.Time{})
		c.Reason, c.Message = "SpotToBeReleased", "the spot instance is released at "+at.UTC().Format(time.RFC3339)+": its capacity goes to a pay-as-you-go instance"
		out.Conditions = append(out.Conditions, c)
	}
	// The generation of the spec this status is of, as a 1.35 kubelet
	// writes it (PodObservedGenerationTracking): the pod's, which the node
	// translated and sent on (images, files) when it changed.
	out.ObservedGeneration = pod.Generation
	for i := range out.Conditions {
		out.Conditions[i].ObservedGeneration = pod.Generation
	}
	out.InitContainerStatuses = containerStatuses(pod.Spec.InitContainers, st.InitContainers, out.Phase)
	out.ContainerStatuses = containerStatuses(pod.Spec.Containers, st.Containers, out.Phase)
	out.EphemeralContainerStatuses = ephemeralStatuses(pod, g, out.Phase) // ephemeral.go
	if !initDone(pod.Spec.InitContainers, out.InitContainerStatuses) {
		// The kubelet's word for containers that wait for the init ones;
		// kubectl then shows Init:N/M, or Init:<reason> of a failing one.
		// A pod failed by an init container never started the others.
		for _, list := range [][]corev1.ContainerStatus{out.InitContainerStatuses, out.ContainerStatuses} {
			for i := range list {
				cs := &list[i]
				if w := cs.State.Waiting; w != nil && w.Reason == "ContainerCreating" && out.Phase == corev1.PodPending {
					w.Reason = "PodInitializing"
				}
				if cs.ContainerID == "" && out.Phase == corev1.PodFailed {
					cs.State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "PodInitializing"}}
				}
			}
		}
	}
	if st.State == apiv1.StateScheduling && st.Message != "" {
		// Not placed yet: say why where kubectl shows it.
		for i := range out.ContainerStatuses {
			if w := out.ContainerStatuses[i].State.Waiting; w != nil && w.Message == "" {
				w.Message = "the instance waits for capacity: " + st.Message
			}
		}
	}
	p.resizeStatus(pod, g, &out)
	return out
}

func phase(s apiv1.State) corev1.PodPhase {
	switch s {
	case apiv1.StateRunning, apiv1.StateTerminating:
		return corev1.PodRunning
	case apiv1.StateSucceeded:
		return corev1.PodSucceeded
	case apiv1.StateFailed, apiv1.StateExpired, apiv1.StateScheduleFailed:
		return corev1.PodFailed
	}
	return corev1.PodPending
}

func podCondition(t corev1.PodConditionType, ok bool, at time.Time) corev1.PodCondition {
	c := corev1.PodCondition{Type: t, Status: corev1.ConditionFalse}
	if ok {
		c.Status = corev1.ConditionTrue
	}
	if !at.IsZero() {
		c.LastTransitionTime = metav1.Time{Time: at}
	}
	return c
}

// containerStatuses lists one status per container of the spec, in order,
// waiting (ContainerCreating) until the group reports it.
func containerStatuses(spec []corev1.Container, got []apiv1.ContainerStatus, ph corev1.PodPhase) []corev1.ContainerStatus {
	if len(spec) == 0 {
		return nil
	}
	by := map[string]apiv1.ContainerStatus{}
	for _, c := range got {
		by[c.Name] = c
	}
	out := make([]corev1.ContainerStatus, 0, len(spec))
	for _, c := range spec {
		gs, ok := by[c.Name]
		cs := corev1.ContainerStatus{Name: c.Name, Image: c.Image}
		if !ok {
			reason := "ContainerCreating"
			if ph == corev1.PodFailed || ph == corev1.PodSucceeded {
				cs.State.Terminated = &corev1.ContainerStateTerminated{ExitCode: 137, Reason: "ContainerStatusUnknown",
					Message: "the container could not be located when the instance ended"}
			} else {
				cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: reason}
			}
			out = append(out, cs)
			continue
		}
		cs.ImageID = gs.ImageID
		if gs.ContainerID != "" {
			cs.ContainerID = "containerd://" + gs.ContainerID
		}
		cs.Ready, cs.RestartCount = gs.Ready, int32(gs.RestartCount)
		started := gs.Started
		cs.Started = &started
		cs.State = containerState(gs.State)
		cs.LastTerminationState = containerState(gs.LastState)
		if cs.State.Waiting == nil && cs.State.Running == nil && cs.State.Terminated == nil {
			cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}
		}
		out = append(out, cs)
	}
	return out
}

// initDone: every init container has exited with 0 (or there are none).
func initDone(spec []corev1.Container, got []corev1.ContainerStatus) bool {
	if len(spec) == 0 {
		return true
	}
	for _, cs := range got {
		if t := cs.State.Terminated; t == nil || t.ExitCode != 0 {
			return false
		}
	}
	return len(got) == len(spec)
}

func containerState(s apiv1.ContainerState) corev1.ContainerState {
	var out corev1.ContainerState
	switch {
	case s.Waiting != nil:
		out.Waiting = &corev1.ContainerStateWaiting{Reason: s.Waiting.Reason, Message: s.Waiting.Message}
	case s.Running != nil:
		out.Running = &corev1.ContainerStateRunning{StartedAt: metav1.Time{Time: s.Running.StartedAt}}
	case s.Terminated != nil:
		t := s.Terminated
		out.Terminated = &corev1.ContainerStateTerminated{ExitCode: t.ExitCode, Signal: t.Signal, Reason: t.Reason, Message: t.Message,
			StartedAt: metav1.Time{Time: t.StartedAt}, FinishedAt: metav1.Time{Time: t.FinishedAt}}
	}
	return out
}

// refusedStatus is the Failed status of a pod the virtual node won't run.
func refusedStatus(pod *corev1.Pod, r *refusal) corev1.PodStatus {
	now := metav1.Now()
	st := corev1.PodStatus{Phase: corev1.PodFailed, Reason: r.Reason, Message: r.Message, StartTime: &now, ObservedGeneration: pod.Generation}
	for _, c := range pod.Spec.Containers {
		st.ContainerStatuses = append(st.ContainerStatuses, corev1.ContainerStatus{Name: c.Name, Image: c.Image,
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, Reason: r.Reason, Message: r.Message, FinishedAt: now}}})
	}
	return st
}

// deletedStatus is the terminal status of a pod whose group is gone.
func deletedStatus(pod *corev1.Pod) corev1.PodStatus {
	st := *pod.Status.DeepCopy()
	now := metav1.Now()
	if st.Phase != corev1.PodSucceeded {
		st.Phase = corev1.PodFailed
	}
	for i := range st.ContainerStatuses {
		cs := &st.ContainerStatuses[i]
		if cs.State.Terminated == nil {
			cs.State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0, Reason: "Completed", Message: "the instance was deleted", FinishedAt: now}}
		}
		cs.Ready = false
	}
	for i := range st.Conditions {
		if st.Conditions[i].Type == corev1.PodReady || st.Conditions[i].Type == corev1.ContainersReady {
			st.Conditions[i].Status = corev1.ConditionFalse
		}
	}
	return st
}

// waitingStatus is a Pending pod whose containers can't be created yet.
func waitingStatus(pod *corev1.Pod, reason, msg string) corev1.PodStatus {
	now := metav1.Now()
	// The generation, as the node's other statuses (podStatus) and a 1.35
	// kubelet's carry it.
	scheduled := podCondition(corev1.PodScheduled, true, now.Time)
	scheduled.ObservedGeneration = pod.Generation
	st := corev1.PodStatus{Phase: corev1.PodPending, StartTime: &now, ObservedGeneration: pod.Generation,
		Conditions: []corev1.PodCondition{scheduled}}
	for _, c := range pod.Spec.Containers {
		st.ContainerStatuses = append(st.ContainerStatuses, corev1.ContainerStatus{Name: c.Name, Image: c.Image,
			State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: msg}}})
	}
	return st
}
