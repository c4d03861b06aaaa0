package control

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/errdefs"
)

// The group state machine, written out by hand: one row per state ("new":
// not stored yet), one column per event. "-" is refused; otherwise the state
// reached, and after "+" the timestamps the move sets: S ScheduledAt, P
// PendingAt, R RunningAt, F FinishedAt, X RestartRequestedAt.
const stateMachineTable = `
from            Created     Placed      Unschedulable  ScheduleFailed    ReportedPending  ReportedRunning  ReportedRestarting  ReportedSucceeded  ReportedFailed  RestartRequested  DeleteRequested  HostLost  PendingTimeout  SpotReleased
new             Scheduling  -           -              -                 -                -                -                   -                  -               -                 -                -         -               -
Scheduling      -           Pending+SP  Scheduling     ScheduleFailed+F  Pending          Running+R        Restarting          Succeeded+F        Failed+F        -                 -                -         -               -
ScheduleFailed  -           -           -              -                 -                -                -                   -                  -               -                 -                -         -               -
Pending         -           -           -              -                 Pending          Running+R        Restarting          Succeeded+F        Failed+F        Restarting+X      Terminating      Failed+F  Failed+F        Expired+F
Running         -           -           -              -                 Pending          Running+R        Restarting          Succeeded+F        Failed+F        Restarting+X      Terminating      Failed+F  -               Expired+F
Restarting      -           -           -              -                 Pending          Running+R        Restarting          Succeeded+F        Failed+F        -                 Terminating      Failed+F  -               Expired+F
Updating        -           -           -              -                 Pending          Running+R        Restarting          Succeeded+F        Failed+F        -                 Terminating      Failed+F  -               Expired+F
Terminating     -           -           -              -                 -                -                -                   Succeeded+F        Failed+F        -                 -                -         -               -
Succeeded       -           -           -              -                 -                -                -                   -                  -               -                 -                -         -               -
Failed          -           -           -              -                 -                -                -                   -                  -               -                 -                -         -               -
Expired         -           -           -              -                 -                -                -                   -                  -               -                 -                -         -               -
`

type stateMachineRow struct {
	from  apiv1.State
	moves []string
}

// parseStateMachineTable reads the table: its columns (events) and rows.
func parseStateMachineTable(t *testing.T) ([]string, []stateMachineRow) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(stateMachineTable), "\n")
	columns := strings.Fields(lines[0])[1:]
	var rows []stateMachineRow
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) != len(columns)+1 {
			t.Fatalf("row %q has %d cells, want %d", f[0], len(f)-1, len(columns))
		}
		from := apiv1.State(f[0])
		if from == "new" {
			from = stateNew
		}
		rows = append(rows, stateMachineRow{from, f[1:]})
	}
	return columns, rows
}

// Every (state, event) pair, against the table above: a refused move
// changes nothing and is a Conflict naming the state and the event; an
// allowed one sets the state, the reason and message given, and exactly
// the timestamps the table says.
func TestStateMachineEveryPair(t *testing.T) {
	columns, rows := parseStateMachineTable(t)
	if got := eventNames(events); !slices.Equal(got, columns) {
		t.Fatalf("the state machine's events are %v; the test knows %v", got, columns)
	}
	var rowStates []apiv1.State
	for _, r := range rows {
		rowStates = append(rowStates, r.from)
	}
	if !slices.Equal(rowStates, states) {
		t.Fatalf("the state machine's states are %q; the test knows %q", states, rowStates)
	}
	earlier := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	now := earlier.Add(time.Hour)
	pairs := 0
	for _, row := range rows {
		for i, cell := range row.moves {
			ev := event(columns[i])
			name := fmt.Sprintf("%q+%s", row.from, ev)
			pairs++
			st := apiv1.ContainerGroupStatus{State: row.from, Reason: "Before", Message: "before"}
			before := st
			err := applyEvent(&st, ev, "After", "after", now)
			if cell == "-" {
				if !errdefs.IsConflict(err) || !strings.Contains(err.Error(), string(ev)) || !strings.Contains(err.Error(), fmt.Sprintf("%q", row.from)) {
					t.Errorf("%s: want a Conflict naming the state and the event, got %v", name, err)
				}
				if !reflect.DeepEqual(st, before) {
					t.Errorf("%s: a refused move changed the status to %+v", name, st)
				}
				continue
			}
			if err != nil {
				t.Errorf("%s: want %s, refused: %v", name, cell, err)
				continue
			}
			to, marks, _ := strings.Cut(cell, "+")
			if st.State != apiv1.State(to) || st.Reason != "After" || st.Message != "after" {
				t.Errorf("%s: got %s (%s: %s), want %s (After: after)", name, st.State, st.Reason, st.Message, to)
			}
			checkStamps(t, name, &st, marks, now)

			// Set-once stamps keep an earlier time; a restart request
			// always takes the new one.
			set := &earlier
			st = apiv1.ContainerGroupStatus{State: row.from, ScheduledAt: set, PendingAt: set, RunningAt: set, FinishedAt: set, RestartRequestedAt: set}
			if err := applyEvent(&st, ev, "After", "after", now); err != nil {
				t.Errorf("%s with timestamps set: %v", name, err)
				continue
			}
			for mark, got := range map[string]*time.Time{"S": st.ScheduledAt, "P": st.PendingAt, "R": st.RunningAt, "F": st.FinishedAt, "X": st.RestartRequestedAt} {
				want := earlier
				if mark == "X" && strings.Contains(marks, "X") {
					want = now
				}
				if got == nil || !got.Equal(want) {
					t.Errorf("%s with timestamps set: timestamp %s is %v, want %v", name, mark, got, want)
				}
			}
		}
	}
	if want := len(states) * len(events); pairs != want {
		t.Fatalf("walked %d pairs, want %d", pairs, want)
	}
}

// checkStamps: the timestamps named in marks are at, the others nil.
func checkStamps(t *testing.T, name string, st *apiv1.ContainerGroupStatus, marks string, at time.Time) {
	t.Helper()
	for _, c := range []struct {
		mark string
		got  *time.Time
	}{{"S", st.ScheduledAt}, {"P", st.PendingAt}, {"R", st.RunningAt}, {"F", st.FinishedAt}, {"X", st.RestartRequestedAt}} {
		switch {
		case strings.Contains(marks, c.mark):
			if c.got == nil || !c.got.Equal(at) {
				t.Errorf("%s: timestamp %s is %v, want %v", name, c.mark, c.got, at)
			}
		case c.got != nil:
			t.Errorf("%s: timestamp %s was set (%v); the move sets only %q", name, c.mark, c.got, marks)
		}
	}
}

func eventNames(evs []event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = string(e)
	}
	return out
}

// An event the machine does not know is invalid, whatever the state; the
// states an agent reports map to their events and no other state does.
func TestStateMachineUnknownEventsAndReports(t *testing.T) {
	for _, s := range states {
		st := apiv1.ContainerGroupStatus{State: s}
		err := applyEvent(&st, "Teleported", "", "", time.Now())
		if !errdefs.IsInvalid(err) || errors.Is(err, errdefs.ErrConflict) {
			t.Errorf("%q+Teleported: want InvalidArgument, got %v", s, err)
		}
	}
	want := map[apiv1.State]event{
		apiv1.StatePending: "ReportedPending", apiv1.StateRunning: "ReportedRunning", apiv1.StateRestarting: "ReportedRestarting",
		apiv1.StateSucceeded: "ReportedSucceeded", apiv1.StateFailed: "ReportedFailed",
	}
	for _, s := range states {
		ev, ok := reportEvent(s)
		if w, reported := want[s]; ok != reported || ev != w {
			t.Errorf("reportEvent(%q) = %q, %v; want %q, %v", s, ev, ok, w, reported)
		}
	}
}
