package vnode

import (
	"context"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/eci-dev/eci/internal/client"
)

// nodeStatus keeps the node Ready only while the instance service answers.
type nodeStatus struct {
	eci  *client.Client
	mu   sync.Mutex
	node *corev1.Node
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
	go every(ctx, statusEvery, func() {
		err := s.Ping(ctx)
		if (err == nil) == ready {
			return
		}
		ready = err == nil
		msg := "the instance service answers"
		if err != nil {
			msg = "the instance service does not answer: " + err.Error()
		}
		s.mu.Lock()
		s.node.Status.Conditions = readyConditions(ready, msg)
		n := s.node.DeepCopy()
		s.mu.Unlock()
		cb(n)
	})
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
