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
	push := func(phase corev1.PodPhase) {
		st := &corev1.PodStatus{Phase: phase}
		s.send("uid-1", st, func() { mu.Lock(); got = append(got, string(phase)); mu.Unlock() })
	}
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
	want("after the echo", "Pending", "Succeeded")
	if !s.isLast("uid-1", &corev1.PodStatus{Phase: corev1.PodSucceeded}) {
		t.Fatal("the last delivered status is not Succeeded")
	}

	// No echo comes: the waiting push goes after holdPush.
	push(corev1.PodFailed)
	want("no echo yet", "Pending", "Succeeded")
	deadline := time.Now().Add(3 * holdPush)
	for len(delivered()) < 3 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	want("after holdPush", "Pending", "Succeeded", "Failed")

	// A pod forgotten: its waiting push never goes.
	push(corev1.PodUnknown)
	s.forget("uid-1")
	time.Sleep(holdPush + 200*time.Millisecond)
	want("forgotten", "Pending", "Succeeded", "Failed")
	// Another pod's push is never held by this one's.
	s.send("uid-2", &corev1.PodStatus{Phase: corev1.PodRunning}, func() { mu.Lock(); got = append(got, "other"); mu.Unlock() })
	want("other pod", "Pending", "Succeeded", "Failed", "other")
}
