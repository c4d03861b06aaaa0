package agent

import (
	"context"
	"maps"
	"slices"
	"sync"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
)

// groupState is everything the agent holds of one group beyond the server's
// view (view.go) and the runtime's truth: what it can lose on a restart and
// rebuild (a back-off starts again, a status is sent once more, a probe runs
// again). One record per group, in one place (groupStates); forgetting a
// group is one delete.
type groupState struct {
	reported     string                     // the last status report sent (JSON)
	missingSince time.Time                  // a started group's sandbox not listed by the runtime, since
	cpu          *cpuSample                 // the last CPU sample, for rates
	containers   map[string]*containerState // by container name
	probers      map[probeKey]*prober       // running probes, by container and kind
}

// containerState is what the agent holds of one container of a group.
type containerState struct {
	restart *backoffEntry                // the back-off of its restarts (CrashLoopBackOff)
	retry   *backoffEntry                // the back-off of its failed starts (ImagePullBackOff ...)
	wait    *apiv1.ContainerStateWaiting // why it can't start, while it can't
	ready   bool                         // its readiness probe's result
	started bool                         // its startup probe succeeded
	// resizeError says why its resize can't be applied, while it can't.
	resizeError string
}

type probeKey struct {
	container string
	kind      probeKind
}

type prober struct {
	containerID string
	cancel      context.CancelFunc
}

// groupStates holds the records, under their own lock (never held while
// calling out: the runtime, the server, another lock).
type groupStates struct {
	mu   sync.Mutex
	byID map[string]*groupState
}

func newGroupStates() *groupStates { return &groupStates{byID: map[string]*groupState{}} }

// edit runs f on group id's record, made if there is none, under the lock.
func (s *groupStates) edit(id string, f func(*groupState)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.byID[id]
	if g == nil {
		g = &groupState{containers: map[string]*containerState{}, probers: map[probeKey]*prober{}}
		s.byID[id] = g
	}
	f(g)
}

// read runs f on a copy of group id's record's top level under the lock
// (the zero record when there is none): f reads, it writes nothing.
func (s *groupStates) read(id string, f func(groupState)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var g groupState
	if cur := s.byID[id]; cur != nil {
		g = *cur
	}
	f(g)
}

// update runs f on group id's record under the lock if there is one: what
// only a group the agent holds can change (a probe result, a CPU sample, a
// wait that ends) never makes a record, so that nothing comes back after a
// group is forgotten. Only reconcile's steps make records (edit).
func (s *groupStates) update(id string, f func(*groupState)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if g := s.byID[id]; g != nil {
		f(g)
	}
}

// container is c's record in g, made if there is none.
func (g *groupState) container(name string) *containerState {
	c := g.containers[name]
	if c == nil {
		c = &containerState{}
		g.containers[name] = c
	}
	return c
}

// containerOf reads c's record: the zero record when there is none.
func (g *groupState) containerOf(name string) containerState {
	if c := g.containers[name]; c != nil {
		return *c
	}
	return containerState{}
}

// forget drops group id's record and stops its probes.
func (s *groupStates) forget(id string) {
	s.mu.Lock()
	g := s.byID[id]
	delete(s.byID, id)
	s.mu.Unlock()
	if g != nil {
		for _, p := range g.probers {
			p.cancel()
		}
	}
}

// ids lists the groups that have a record.
func (s *groupStates) ids() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Collect(maps.Keys(s.byID))
}
