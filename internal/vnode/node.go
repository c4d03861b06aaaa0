package vnode

import (
	"context"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/client"
)

// nodeStatus keeps the node Ready only while the instance service answers.
type nodeStatus struct {
	eci *client.Client
	// max is the configured capacity; the node shows what the pool can
	// place for its tenant, up to it (capacity.go).
	max corev1.ResourceList
	// reclaimable is what the node's spot instances past their protected
	// hours hold (Provider.reclaimableSpot).
	reclaimable func() apiv1.Resources
	mu          sync.Mutex
	node        *corev1.Node
}

// statusEvery is how often the instance service is checked.
const statusEvery = 5 * time.Second

// Ping is the node controller's heartbeat check.
func (s *nodeStatus) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return s.eci.Ready(ctx)
}

// NotifyNodeStatus reports the Ready condition each time it changes.
func (s *nodeStatus) NotifyNodeStatus(ctx context.Context, cb func(*corev1.Node)) {
	ready := true
	if s.followCapacity(ctx) {
		s.mu.Lock()
		n := s.node.DeepCopy()
		s.mu.Unlock()
		cb(n)
	}
	go every(ctx, statusEvery, func() {
		err := s.Ping(ctx)
		changed := s.followCapacity(ctx)
		if (err == nil) != ready {
			ready, changed = err == nil, true
			msg := "the instance service answers"
			if err != nil {
				msg = "the instance service does not answer: " + err.Error()
			}
			s.mu.Lock()
			s.node.Status.Conditions = readyConditions(ready, msg)
			s.mu.Unlock()
		}
		if changed {
			s.mu.Lock()
			n := s.node.DeepCopy()
			s.mu.Unlock()
			cb(n)
		}
	})
}

// followCapacity sets the node's capacity and allocatable to what the pool
// can place (capacity.go) and reports whether they changed. When the
// service does not answer, they stay as they were.
func (s *nodeStatus) followCapacity(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c, err := s.eci.Capacity(ctx)
	if err != nil {
		return false
	}
	var spot apiv1.Resources
	if s.reclaimable != nil {
		spot = s.reclaimable()
	}
	capacity, allocatable := nodeResources(c, spot, s.max)
	s.mu.Lock()
	defer s.mu.Unlock()
	if equalResources(s.node.Status.Capacity, capacity) && equalResources(s.node.Status.Allocatable, allocatable) {
		return false
	}
	s.node.Status.Capacity, s.node.Status.Allocatable = capacity, allocatable
	return true
}

func equalResources(a, b corev1.ResourceList) bool {
	if len(a) != len(b) {
		return false
	}
	for name, q := range a {
		if o, ok := b[name]; !ok || o.Cmp(q) != 0 {
			return false
		}
	}
	return true
}

func readyConditions(ready bool, msg string) []corev1.NodeCondition {
	now := metav1.Now()
	st, reason := corev1.ConditionTrue, "KubeletReady"
	if !ready {
		st, reason = corev1.ConditionFalse, "InstanceServiceUnavailable"
	}
	cond := func(t corev1.NodeConditionType, s corev1.ConditionStatus, reason, msg string) corev1.NodeCondition {
		return corev1.NodeCondition{Type: t, Status: s, Reason: reason, Message: msg, LastHeartbeatTime: now, LastTransitionTime: now}
	}
	return []corev1.NodeCondition{
		cond(corev1.NodeReady, st, reason, msg),
		cond(corev1.NodeMemoryPressure, corev1.ConditionFalse, "KubeletHasSufficientMemory", "an instance's memory is its own"),
		cond(corev1.NodeDiskPressure, corev1.ConditionFalse, "KubeletHasNoDiskPressure", "an instance's disk is its own"),
		cond(corev1.NodePIDPressure, corev1.ConditionFalse, "KubeletHasSufficientPID", "an instance's processes are its own"),
		cond(corev1.NodeNetworkUnavailable, corev1.ConditionFalse, "RouteCreated", "every instance has its own network interface"),
	}
}
