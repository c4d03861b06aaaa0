package vnode

import (
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// A push made while the pod's previous one is not seen back waits for its
// echo (or holdPush); the newest waiting push replaces an older one; a
// forgotten pod's waiting push never goes.
func TestPushWaitsForEcho(t *testing.T) {
	var s pushedStatuses
	var mu sync.Mutex
	var got []string
	pushAs := func(phase corev1.PodPhase, reason string, now bool) {
		st := &corev1.PodStatus{Phase: phase, Reason: reason}
		s.send("uid-1", st, now, func() { mu.Lock(); got = append(got, string(phase)+reason); mu.Unlock() })
	}
	push := func(phase corev1.PodPhase) { pushAs(phase, "", false) }
	delivered := func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), got...) }
	want := func(step string, w ...string) {
		t.Helper()
		g := delivered()
		if len(g) != len(w) {
			t.Fatalf("%s: delivered %v, want %v", step, g, w)
		}
		for i := range w {
			if g[i] != w[i] {
				t.Fatalf("%s: delivered %v, want %v", step, g, w)
			}
		}
	}

	push(corev1.PodPending)
	want("first push", "Pending")
	push(corev1.PodRunning)
	push(corev1.PodSucceeded) // replaces the waiting Running
	want("while the first is not seen back", "Pending")
	if !s.isLast("uid-1", &corev1.PodStatus{Phase: corev1.PodPending}) {
		t.Fatal("the last delivered status is not Pending")
	}
	s.confirm("uid-1")
	deadline := time.Now().Add(time.Second)
	for len(delivered()) < 2 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	want("after the echo", "Pending", "Succeeded")
	if !s.isLast("uid-1", &corev1.PodStatus{Phase: corev1.PodSucceeded}) {
		t.Fatal("the last delivered status is not Succeeded")
	}

	// No echo comes: the waiting push goes after holdPush.
	push(corev1.PodFailed)
	want("no echo yet", "Pending", "Succeeded")
	deadline = time.Now().Add(3 * holdPush)
	for len(delivered()) < 3 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	want("after holdPush", "Pending", "Succeeded", "Failed")

	// The status pushed last again goes at once (it may never be seen
	// back); so does a push that must not wait (a terminal status, the
	// pod forgotten right after it).
	push(corev1.PodFailed)
	want("the same status again", "Pending", "Succeeded", "Failed", "Failed")
	pushAs(corev1.PodFailed, "Deleted", true)
	want("a push that must not wait", "Pending", "Succeeded", "Failed", "Failed", "FailedDeleted")

	// A pod forgotten: its waiting push never goes.
	push(corev1.PodUnknown)
	s.forget("uid-1")
	time.Sleep(holdPush + 200*time.Millisecond)
	want("forgotten", "Pending", "Succeeded", "Failed", "Failed", "FailedDeleted")
	// Another pod's push is never held by this one's.
	s.send("uid-2", &corev1.PodStatus{Phase: corev1.PodRunning}, false, func() { mu.Lock(); got = append(got, "other"); mu.Unlock() })
	want("other pod", "Pending", "Succeeded", "Failed", "Failed", "FailedDeleted", "other")
}

// One pod's deliveries run one at a time, in the order decided, and one
// decided before a later one that went is dropped: an older status held
// and released never lands after a terminal one sent at once.
func TestPushesDeliveredInOrder(t *testing.T) {
	var s pushedStatuses
	s.mu.Lock()
	s.init()
	older, newer := s.decide("uid-1"), s.decide("uid-1")
	s.mu.Unlock()
	var got []string
	s.deliverInOrder("uid-1", newer, func() { got = append(got, "terminal") })
	s.deliverInOrder("uid-1", older, func() { got = append(got, "older") })
	if len(got) != 1 || got[0] != "terminal" {
		t.Fatalf("delivered %v, want only the terminal status", got)
	}

	// A delivery under way holds the next one back until it is done.
	s.send("uid-2", &corev1.PodStatus{Phase: corev1.PodRunning}, true, func() {})
	running := make(chan struct{})
	unblock := make(chan struct{})
	var mu sync.Mutex
	var order []string
	go s.send("uid-2", &corev1.PodStatus{Phase: corev1.PodPending}, true, func() {
		close(running)
		<-unblock
		mu.Lock()
		order = append(order, "first")
		mu.Unlock()
	})
	<-running
	done := make(chan struct{})
	go func() {
		s.send("uid-2", &corev1.PodStatus{Phase: corev1.PodSucceeded}, true, func() { mu.Lock(); order = append(order, "second"); mu.Unlock() })
		close(done)
	}()
	select {
	case <-done:
		t.Fatal("the second delivery ran while the first was under way")
	case <-time.After(100 * time.Millisecond):
	}
	close(unblock)
	<-done
	mu.Lock()
	defer mu.Unlock()
	if len(order) != 2 || order[0] != "first" || order[1] != "second" {
		t.Fatalf("deliveries %v, want first then second", order)
	}
}
