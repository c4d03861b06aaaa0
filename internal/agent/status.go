package agent

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/errdefs"
	"github.com/eci-dev/eci/internal/log"
)

// status derives the group's state and its containers' states from the runtime.
func (a *Agent) status(_ context.Context, g *apiv1.ContainerGroup, ctrs map[string]attempts) apiv1.StatusReport {
	now := time.Now()
	r := apiv1.StatusReport{}
	initDone := true
	for _, c := range g.Spec.InitContainers {
		st := a.containerStatus(g, c, ctrs[c.Name], now)
		r.InitContainers = append(r.InitContainers, st)
		if t := st.State.Terminated; t == nil || t.ExitCode != 0 {
			initDone = false
			if t != nil && g.Spec.RestartPolicy == apiv1.RestartNever {
				r.State, r.Reason = apiv1.StateFailed, "InitContainerFailed"
				r.Message = "init container " + c.Name + " failed"
				return r
			}
		}
	}
	running, ended, failed, ready := 0, 0, 0, 0
	for _, c := range g.Spec.Containers {
		st := a.containerStatus(g, c, ctrs[c.Name], now)
		r.Containers = append(r.Containers, st)
		switch {
		case st.State.Running != nil:
			running++
			if st.Ready {
				ready++
			}
		case st.State.Terminated != nil && !shouldRestart(g.Spec.RestartPolicy, st.State.Terminated.ExitCode):
			ended++
			if st.State.Terminated.ExitCode != 0 {
				failed++
			}
		}
	}
	n := len(g.Spec.Containers)
	switch {
	case !initDone:
		r.State, r.Reason = apiv1.StatePending, "PodInitializing"
	case ended == n && failed == 0:
		r.State, r.Reason = apiv1.StateSucceeded, "Completed"
	case ended == n:
		r.State, r.Reason = apiv1.StateFailed, "Error"
	case g.Status.State == apiv1.StateRestarting && running < n:
		r.State, r.Reason = apiv1.StateRestarting, "Restarting"
	case running > 0 || g.Status.RunningAt != nil:
		r.State, r.Reason = apiv1.StateRunning, "Started"
	default:
		r.State, r.Reason = apiv1.StatePending, "ContainerCreating"
	}
	r.EphemeralContainers = a.ephemeralStatuses(g, ctrs, now) // ephemeral.go
	r.Conditions = []apiv1.Condition{
		{Type: "Initialized", Status: initDone},
		{Type: "ContainersReady", Status: ready == n},
		{Type: "Ready", Status: ready == n},
	}
	return r
}

// containerStatus is the API view of container c from its attempts.
func (a *Agent) containerStatus(g *apiv1.ContainerGroup, c apiv1.Container, at attempts, now time.Time) apiv1.ContainerStatus {
	st := apiv1.ContainerStatus{Name: c.Name, Image: c.Image}
	last := at.latest()
	if last == nil {
		w := apiv1.ContainerStateWaiting{Reason: "ContainerCreating"}
		a.states.read(g.Metadata.ID, func(s groupState) {
			if stuck := s.containerOf(c.Name).wait; stuck != nil {
				w = *stuck
			}
		})
		st.State.Waiting = &w
		return st
	}
	st.ContainerID, st.ImageID, st.RestartCount = last.Id, last.ImageRef, int(last.Metadata.Attempt)
	st.State = state(last)
	if t := st.State.Terminated; t != nil {
		t.Message = joinMessage(t.Message, a.terminationMessage(g, c, last)) // termination.go
	}
	if len(at) > 1 {
		st.LastState = state(at[len(at)-2])
		if t := st.LastState.Terminated; t != nil {
			t.Message = joinMessage(t.Message, a.terminationMessage(g, c, at[len(at)-2]))
		}
	}
	if st.State.Terminated != nil && shouldRestart(g.Spec.RestartPolicy, st.State.Terminated.ExitCode) &&
		a.inBackoff(g.Metadata.ID, c.Name, now) {
		st.LastState, st.State = st.State, apiv1.ContainerState{Waiting: &apiv1.ContainerStateWaiting{
			Reason: "CrashLoopBackOff", Message: "back-off restarting failed container " + c.Name,
		}}
	}
	if r := last.GetResources().GetLinux(); r != nil && st.State.Running != nil {
		st.Limits = &apiv1.Limits{MilliCPU: r.CpuQuota / 100, MemoryMiB: r.MemoryLimitInBytes >> 20}
		a.states.read(g.Metadata.ID, func(s groupState) { st.ResizeError = s.containerOf(c.Name).resizeError })
	}
	st.Started = st.State.Running != nil && a.startedOK(g.Metadata.ID, c)
	st.Ready = st.Started && a.readyOK(g.Metadata.ID, c.Name, c.ReadinessProbe != nil)
	return st
}

func state(s *runtimeapi.ContainerStatus) apiv1.ContainerState {
	switch s.State {
	case runtimeapi.ContainerState_CONTAINER_RUNNING:
		return apiv1.ContainerState{Running: &apiv1.ContainerStateRunning{StartedAt: time.Unix(0, s.StartedAt).UTC()}}
	case runtimeapi.ContainerState_CONTAINER_EXITED:
		t := &apiv1.ContainerStateTerminated{ExitCode: s.ExitCode, Reason: s.Reason, Message: s.Message,
			FinishedAt: time.Unix(0, s.FinishedAt).UTC()}
		if s.StartedAt > 0 {
			t.StartedAt = time.Unix(0, s.StartedAt).UTC()
		}
		return apiv1.ContainerState{Terminated: t}
	default:
		return apiv1.ContainerState{Waiting: &apiv1.ContainerStateWaiting{Reason: "ContainerCreating"}}
	}
}

// report sends r unless it is what was sent last.
func (a *Agent) report(ctx context.Context, g *apiv1.ContainerGroup, r apiv1.StatusReport) error {
	data, _ := json.Marshal(r)
	id := g.Metadata.ID
	var same bool
	a.states.read(id, func(s groupState) { same = s.reported == string(data) })
	if same {
		return nil
	}
	if _, err := a.cfg.Client.ReportStatus(ctx, id, r); err != nil {
		if errdefs.IsNotFound(err) || errdefs.IsConflict(err) {
			return nil // deleted, moved or ended meanwhile: the watch brings the truth
		}
		return err
	}
	a.states.edit(id, func(s *groupState) { s.reported = string(data) })
	return nil
}

// event records an event of g without waiting: events go out in order from
// one sender, so they never slow a reconcile; if the server is slow and the
// buffer is full, the event is dropped and logged.
func (a *Agent) event(ctx context.Context, g *apiv1.ContainerGroup, typ, reason, msg string) {
	a.containerEvent(ctx, g, "", typ, reason, msg)
}

// maxEventMessage bounds an event's message: a probe's or a hook's output
// (the tenant's) goes into it, and on to the pod's Events (the kubelet's
// are about as long).
const maxEventMessage = 1024

// containerEvent is event of g's container (its name, when not ""): the
// kubelet's reasons and wording, which a virtual node gives the pod.
func (a *Agent) containerEvent(ctx context.Context, g *apiv1.ContainerGroup, container, typ, reason, msg string) {
	if len(msg) > maxEventMessage {
		msg = msg[:maxEventMessage] + "..."
	}
	ev := &apiv1.Event{Object: apiv1.ObjectReference{Kind: "ContainerGroup", ID: g.Metadata.ID}, Type: typ, Reason: reason, Message: msg, Container: container}
	select {
	case a.events <- ev:
	default:
		log.G(ctx).Warn("event dropped (the server is slow)", "group", g.Metadata.ID, "reason", reason)
	}
}

// sendEvents delivers queued events until ctx ends.
func (a *Agent) sendEvents(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-a.events:
			if err := a.cfg.Client.AddEvent(ctx, ev); err != nil && ctx.Err() == nil {
				log.G(ctx).Debug("record event", "group", ev.Object.ID, "reason", ev.Reason, "err", err)
			}
		}
	}
}

// podName is how the kubelet's events name g's pod: its name and id.
func podName(g *apiv1.ContainerGroup) string { return g.Metadata.Name + "(" + g.Metadata.ID + ")" }

// probeTitle is a probe's kind as the kubelet's events begin with it
// ("Liveness probe failed: ...").
func probeTitle(k probeKind) string {
	s := string(k)
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
