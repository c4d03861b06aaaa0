package vnode

import (
	"crypto/sha256"
	"encoding/json"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// pushedStatuses remembers the last status the node pushed for each pod,
// and holds a pod's next push until the last one is seen back.
//
// virtual-kubelet writes a pushed status with a PUT of pods/status at the
// resourceVersion its pod lister has. A second push made before the
// lister has seen the first write back is written at the old version, is
// refused as a conflict, and is retried with back-off until the lister
// catches up: in a 100-pod burst 167 of 384 status writes were refused so
// (docs/benchmarks.md), each a request the apiserver served for nothing,
// and a pod's Running waited on the back-off. So a push made while the
// pod's previous one is not yet seen back (its echo: podupdates.go) waits
// for that echo, at most holdPush; a later push replaces a waiting one
// (only the newest status matters). Deliveries of one pod run one at a
// time, in the order they were decided; one decided before another that
// went already is dropped (a held push released just as a terminal one
// went at once must not land after it).
type pushedStatuses struct {
	mu       sync.Mutex
	last     map[string][32]byte // by pod UID
	inFlight map[string]time.Time
	held     map[string]*heldPush
	seq      map[string]uint64      // the latest delivery decided (a number of next)
	order    map[string]*sync.Mutex // held while a delivery runs
	next     uint64                 // deliveries decided, of all pods
}

// holdPush bounds how long a push waits for its predecessor's echo (a
// write that failed, or was changed by someone else, never comes back as
// pushed).
const holdPush = time.Second

type heldPush struct {
	sum     [32]byte
	deliver func()
}

// statusSum is a status's SHA-256, without its qosClass (the apiserver
// sets it when the pod is made and keeps it over what the node writes),
// nor the observed generations (a cluster without PodObservedGenerationTracking
// drops them).
func statusSum(st *corev1.PodStatus) ([32]byte, bool) {
	c := *st
	c.QOSClass = ""
	c.ObservedGeneration = 0
	c.Conditions = append([]corev1.PodCondition(nil), st.Conditions...)
	for i := range c.Conditions {
		c.Conditions[i].ObservedGeneration = 0
	}
	data, err := json.Marshal(&c)
	if err != nil {
		return [32]byte{}, false
	}
	return sha256.Sum256(data), true
}

// send delivers a push of st for pod uid now, or once its previous push is
// seen back (confirm), or after holdPush; now delivers it at once. A push
// of the status pushed last, while none waits, goes at once too: it may
// never be seen back (virtual-kubelet skips an unchanged status; the
// apiserver makes no event of a write that changes nothing).
func (s *pushedStatuses) send(uid string, st *corev1.PodStatus, now bool, deliver func()) {
	sum, ok := statusSum(st)
	s.mu.Lock()
	s.init()
	if !ok {
		delete(s.last, uid)
		delete(s.inFlight, uid)
		delete(s.held, uid)
		n := s.decide(uid)
		s.mu.Unlock()
		s.deliverInOrder(uid, n, deliver)
		return
	}
	if last, known := s.last[uid]; known && last == sum && s.held[uid] == nil {
		n := s.decide(uid)
		s.mu.Unlock()
		s.deliverInOrder(uid, n, deliver)
		return
	}
	if since, waiting := s.inFlight[uid]; waiting && !now && time.Since(since) < holdPush {
		first := s.held[uid] == nil
		s.held[uid] = &heldPush{sum: sum, deliver: deliver}
		s.mu.Unlock()
		if first {
			time.AfterFunc(holdPush-time.Since(since), func() { s.release(uid, since) })
		}
		return
	}
	s.last[uid], s.inFlight[uid] = sum, time.Now()
	delete(s.held, uid)
	n := s.decide(uid)
	s.mu.Unlock()
	s.deliverInOrder(uid, n, deliver)
}

func (s *pushedStatuses) init() {
	if s.last == nil {
		s.last, s.inFlight, s.held = map[string][32]byte{}, map[string]time.Time{}, map[string]*heldPush{}
		s.seq, s.order = map[string]uint64{}, map[string]*sync.Mutex{}
	}
}

// decide numbers a delivery of pod uid (under s.mu), never with a number
// given before (a pod forgotten and pushed again included).
func (s *pushedStatuses) decide(uid string) uint64 {
	s.next++
	s.seq[uid] = s.next
	return s.next
}

// deliverInOrder runs delivery n of pod uid unless a later one was decided
// meanwhile; one pod's deliveries run one at a time.
func (s *pushedStatuses) deliverInOrder(uid string, n uint64, deliver func()) {
	s.mu.Lock()
	m := s.order[uid]
	if m == nil {
		m = &sync.Mutex{}
		s.order[uid] = m
	}
	s.mu.Unlock()
	m.Lock()
	defer m.Unlock()
	s.mu.Lock()
	latest := s.seq[uid] == n
	s.mu.Unlock()
	if latest {
		deliver()
	}
}

// confirm says pod uid's last push was seen back: a push waiting for it
// goes, on its own goroutine (confirm is called from the informer's event
// handler, which virtual-kubelet's callback must not hold up).
func (s *pushedStatuses) confirm(uid string) {
	s.mu.Lock()
	delete(s.inFlight, uid)
	waiting := s.held[uid] != nil
	s.mu.Unlock()
	if waiting {
		go s.release(uid, time.Time{})
	}
}

// release delivers pod uid's waiting push, if any: on confirm (at the
// zero time), or when the wait for the push of time since ends (unless
// another push went meanwhile).
func (s *pushedStatuses) release(uid string, since time.Time) {
	s.mu.Lock()
	h := s.held[uid]
	if h == nil || !since.IsZero() && !s.inFlight[uid].Equal(since) {
		s.mu.Unlock()
		return
	}
	delete(s.held, uid)
	s.last[uid], s.inFlight[uid] = h.sum, time.Now()
	n := s.decide(uid)
	s.mu.Unlock()
	s.deliverInOrder(uid, n, h.deliver)
}

// forget drops pod uid, and a push waiting for it.
func (s *pushedStatuses) forget(uid string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.last, uid)
	delete(s.inFlight, uid)
	delete(s.held, uid)
	delete(s.seq, uid)
	delete(s.order, uid)
}

// isLast tells whether st is the status pushed last for pod uid.
func (s *pushedStatuses) isLast(uid string, st *corev1.PodStatus) bool {
	s.mu.Lock()
	want, ok := s.last[uid]
	s.mu.Unlock()
	if !ok {
		return false
	}
	got, ok := statusSum(st)
	return ok && got == want
}
