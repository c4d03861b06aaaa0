package control

import (
	"fmt"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/errdefs"
)

// The group state machine: every change of a group's state is an event
// applied to it (applyEvent), and the moves table below is the whole list of
// what each state takes. A move the table does not hold is refused, and the
// caller gives the answer it always gave (an agent's report for an ended
// group is a Conflict; a placer's retry for a group no longer Scheduling
// changes nothing).
//
// What happens around a move stays with its caller: a move to an ended state
// releases what the group holds in the same transaction (transitionWith),
// DeleteGroup sets the deletion time and grace period with Terminating, and
// a group's removal (a forced delete, Finalize, an overdue deletion) removes
// the record: it is no state.

// event is what moves a group. Where an event is the server's own verdict
// (HostLost, PendingTimeout) its name is also the reason the group shows.
type event string

const (
	evCreated          event = "Created"         // CreateGroup
	evPlaced           event = "Placed"          // the placer found a host and an IP
	evUnschedulable    event = "Unschedulable"   // no capacity yet: the placer retries
	evScheduleFailed   event = "ScheduleFailed"  // fail-fast, a deadline or a spec that can never be placed
	evReportPending    event = "ReportedPending" // the agent's status reports
	evReportRunning    event = "ReportedRunning" //
	evReportRestarting event = "ReportedRestarting"
	evReportSucceeded  event = "ReportedSucceeded"
	evReportFailed     event = "ReportedFailed"
	evRestartRequested event = "RestartRequested" // RestartGroup
	evDeleteRequested  event = "DeleteRequested"  // a graceful DeleteGroup of a placed group
	evHostLost         event = "HostLost"         // the monitor: the host stopped renewing its lease
	evPendingTimeout   event = "PendingTimeout"   // the monitor: not Running after maxPendingMinutes
	evSpotReleased     event = "SpotReleased"     // the monitor: a spot instance's notice ended (spot.go)
)

// events lists every event, in the order the table's columns are read.
var events = []event{
	evCreated, evPlaced, evUnschedulable, evScheduleFailed,
	evReportPending, evReportRunning, evReportRestarting, evReportSucceeded, evReportFailed,
	evRestartRequested, evDeleteRequested, evHostLost, evPendingTimeout, evSpotReleased,
}

// stateNew is the state of a group not stored yet: only evCreated moves it.
const stateNew apiv1.State = ""

// states lists every state a group can be in (stateNew first).
var states = []apiv1.State{
	stateNew, apiv1.StateScheduling, apiv1.StateScheduleFailed, apiv1.StatePending, apiv1.StateRunning,
	apiv1.StateRestarting, apiv1.StateUpdating, apiv1.StateTerminating,
	apiv1.StateSucceeded, apiv1.StateFailed, apiv1.StateExpired,
}

// stamps are the billing and lifecycle timestamps a move sets.
type stamps uint8

const (
	// ScheduledAt and PendingAt: placed, billing starts.
	stampScheduled stamps = 1 << iota
	stampPending
	// RunningAt: the first time the group runs.
	stampRunning
	// FinishedAt: the group ended, billing stops.
	stampFinished
	// RestartRequestedAt: every restart request (the agent restarts the
	// containers once per request time).
	stampRestart
)

// move is where an event takes a group and what timestamps it sets.
type move struct {
	to     apiv1.State
	stamps stamps
}

// reports are the agent's reports, taken by every live state but
// Terminating; an admin may report for a group not placed yet.
func reports(m map[event]move) map[event]move {
	m[evReportPending] = move{apiv1.StatePending, 0}
	m[evReportRunning] = move{apiv1.StateRunning, stampRunning}
	m[evReportRestarting] = move{apiv1.StateRestarting, 0}
	m[evReportSucceeded] = move{apiv1.StateSucceeded, stampFinished}
	m[evReportFailed] = move{apiv1.StateFailed, stampFinished}
	return m
}

// moves is the table: state -> event -> move. A pair not in it is refused.
// ScheduleFailed, Succeeded, Failed and Expired take nothing (the record is
// kept, then removed). Terminating takes only the end of the group: until
// then the group stays Terminating whatever the agent reports. No event
// leads to Updating yet (updates in place keep a group Running); a spot
// instance whose capacity was taken back ends Expired; Updating takes what
// any running group takes.
var moves = map[apiv1.State]map[event]move{
	stateNew: {
		evCreated: {apiv1.StateScheduling, 0},
	},
	apiv1.StateScheduling: reports(map[event]move{
		evPlaced:         {apiv1.StatePending, stampScheduled | stampPending},
		evUnschedulable:  {apiv1.StateScheduling, 0},
		evScheduleFailed: {apiv1.StateScheduleFailed, stampFinished},
	}),
	apiv1.StatePending: reports(map[event]move{
		evRestartRequested: {apiv1.StateRestarting, stampRestart},
		evDeleteRequested:  {apiv1.StateTerminating, 0},
		evHostLost:         {apiv1.StateFailed, stampFinished},
		evPendingTimeout:   {apiv1.StateFailed, stampFinished},
		evSpotReleased:     {apiv1.StateExpired, stampFinished},
	}),
	apiv1.StateRunning: reports(map[event]move{
		evRestartRequested: {apiv1.StateRestarting, stampRestart},
		evDeleteRequested:  {apiv1.StateTerminating, 0},
		evHostLost:         {apiv1.StateFailed, stampFinished},
		evSpotReleased:     {apiv1.StateExpired, stampFinished},
	}),
	apiv1.StateRestarting: reports(map[event]move{
		evDeleteRequested: {apiv1.StateTerminating, 0},
		evHostLost:        {apiv1.StateFailed, stampFinished},
		evSpotReleased:    {apiv1.StateExpired, stampFinished},
	}),
	apiv1.StateUpdating: reports(map[event]move{
		evDeleteRequested: {apiv1.StateTerminating, 0},
		evHostLost:        {apiv1.StateFailed, stampFinished},
		evSpotReleased:    {apiv1.StateExpired, stampFinished},
	}),
	apiv1.StateTerminating: {
		evReportSucceeded: {apiv1.StateSucceeded, stampFinished},
		evReportFailed:    {apiv1.StateFailed, stampFinished},
	},
	apiv1.StateScheduleFailed: {},
	apiv1.StateSucceeded:      {},
	apiv1.StateFailed:         {},
	apiv1.StateExpired:        {},
}

// reportEvent is the event of an agent reporting state s (false: a state an
// agent does not report).
func reportEvent(s apiv1.State) (event, bool) {
	ev, ok := map[apiv1.State]event{
		apiv1.StatePending: evReportPending, apiv1.StateRunning: evReportRunning, apiv1.StateRestarting: evReportRestarting,
		apiv1.StateSucceeded: evReportSucceeded, apiv1.StateFailed: evReportFailed,
	}[s]
	return ev, ok
}

// applyEvent moves the group whose status is st on ev: its state, reason and
// message, and the timestamps the move sets (at now; ScheduledAt, PendingAt,
// RunningAt and FinishedAt only when not set yet). A move the table does not
// hold is refused with ErrConflict (ErrInvalidArgument for an unknown event)
// and changes nothing.
func applyEvent(st *apiv1.ContainerGroupStatus, ev event, reason, message string, now time.Time) error {
	m, ok := moves[st.State][ev]
	if !ok {
		if !knownEvent(ev) {
			return fmt.Errorf("group state machine: no event %q: %w", ev, errdefs.ErrInvalidArgument)
		}
		return fmt.Errorf("group state machine: a group in state %q does not take %s: %w", st.State, ev, errdefs.ErrConflict)
	}
	st.State, st.Reason, st.Message = m.to, reason, message
	once := func(t **time.Time) {
		if *t == nil {
			*t = &now
		}
	}
	if m.stamps&stampScheduled != 0 {
		once(&st.ScheduledAt)
	}
	if m.stamps&stampPending != 0 {
		once(&st.PendingAt)
	}
	if m.stamps&stampRunning != 0 {
		once(&st.RunningAt)
	}
	if m.stamps&stampFinished != 0 {
		once(&st.FinishedAt)
	}
	if m.stamps&stampRestart != 0 {
		st.RestartRequestedAt = &now
	}
	return nil
}

func knownEvent(ev event) bool {
	for _, e := range events {
		if e == ev {
			return true
		}
	}
	return false
}
