package vnode

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/poll"
)

// A pod's resized containers reach its group; the pod says
// PodResizeInProgress until its host runs them with the new limits, and
// the container statuses say what each runs with; a resize beyond the
// instance's size is PodResizePending (Infeasible), not sent again, with
// the allocation kept; an error of the host shows as the in-progress
// condition's. Each step has the kubelet's Event.
func TestResizeStatus(t *testing.T) {
	var mu sync.Mutex
	var sent []apiv1.GroupUpdate
	var version atomic.Int64
	group := func(cpu float64, applied int64, resizeErr string) *apiv1.ContainerGroup {
		return &apiv1.ContainerGroup{Metadata: apiv1.ObjectMeta{ID: "eci-1", ResourceVersion: fmt.Sprint(version.Add(1)), Labels: podLabels("web", "uid-1")},
			Spec: apiv1.ContainerGroupSpec{Containers: []apiv1.Container{{Name: "app", Image: "busybox", CPU: cpu, Memory: 0.5}}},
			Status: apiv1.ContainerGroupStatus{State: apiv1.StateRunning, Host: "h1", MilliCPU: 1000, MemoryMiB: 2048,
				Containers: []apiv1.ContainerStatus{{Name: "app", ContainerID: "c1", Started: true, Ready: true,
					State:  apiv1.ContainerState{Running: &apiv1.ContainerStateRunning{StartedAt: time.Now()}},
					Limits: &apiv1.Limits{MilliCPU: applied, MemoryMiB: 512}, ResizeError: resizeErr}}}}
	}
	eci := updateService(t, func(w http.ResponseWriter, u apiv1.GroupUpdate) {
		mu.Lock()
		defer mu.Unlock()
		sent = append(sent, u)
		if u.Resources["app"].CPU > 1 {
			w.WriteHeader(http.StatusUnprocessableEntity)
			_ = json.NewEncoder(w).Encode(apiv1.Status{Code: http.StatusUnprocessableEntity, Reason: "Invalid", Message: "resources: more than the instance's size"})
			return
		}
		_ = json.NewEncoder(w).Encode(group(u.Resources["app"].CPU, 500, ""))
	})
	rec := &lockedRecorder{}
	p := newProvider(Config{ECI: eci, Recorder: rec})
	limits := func(cpu string) corev1.ResourceRequirements {
		return corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu)},
			Limits: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse("512Mi")}}
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web", UID: types.UID("uid-1"), Generation: 1},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "busybox", Resources: limits("500m")}}}}
	p.pods["default/web"] = pod
	ctx := context.Background()
	p.remember(ctx, group(0.5, 500, ""))
	status := func() corev1.PodStatus {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.withStatus(p.pods["default/web"]).Status
	}
	if st := status(); resizeCondition(st) != nil || st.ContainerStatuses[0].Resources.Limits.Cpu().MilliValue() != 500 ||
		st.ContainerStatuses[0].AllocatedResources.Cpu().MilliValue() != 500 {
		t.Fatalf("before a resize: %+v", st)
	}

	resize := func(cpu string, gen int64) {
		next := pod.DeepCopy()
		next.Generation, next.Spec.Containers[0].Resources = gen, limits(cpu)
		if err := p.UpdatePod(ctx, next); err != nil {
			t.Fatal(err)
		}
	}
	resize("1", 2)
	poll.Eventually(t, 10*time.Second, "in progress, the host at 500m", func() error {
		st := status()
		c := resizeCondition(st)
		if c == nil || c.Type != corev1.PodResizeInProgress || c.Reason != "" || c.ObservedGeneration != 2 {
			return fmt.Errorf("condition %+v", c)
		}
		if cs := st.ContainerStatuses[0]; cs.Resources.Limits.Cpu().MilliValue() != 500 || cs.AllocatedResources.Cpu().MilliValue() != 1000 {
			return fmt.Errorf("container status %+v", cs)
		}
		return rec.has("ResizeStarted", `Pod resize started: {"containers":[{"name":"app","resources":{"limits":{"cpu":"1","memory":"512Mi"},"requests":{"cpu":"1"}}}],"generation":2}`)
	})
	p.remember(ctx, group(1, 1000, ""))
	if st := status(); resizeCondition(st) != nil || st.ContainerStatuses[0].Resources.Limits.Cpu().MilliValue() != 1000 {
		t.Fatalf("after the host applied it: %+v", st)
	}
	if err := rec.has("ResizeCompleted", "Pod resize completed: "); err != nil {
		t.Fatal(err)
	}

	resize("2", 3)
	poll.Eventually(t, 10*time.Second, "pending, infeasible", func() error {
		st := status()
		c := resizeCondition(st)
		if c == nil || c.Type != corev1.PodResizePending || c.Reason != corev1.PodReasonInfeasible || !strings.Contains(c.Message, "more than the instance's size") || c.ObservedGeneration != 3 {
			return fmt.Errorf("condition %+v", c)
		}
		if cs := st.ContainerStatuses[0]; cs.Resources.Limits.Cpu().MilliValue() != 1000 || cs.AllocatedResources.Cpu().MilliValue() != 1000 {
			return fmt.Errorf("container status %+v", cs)
		}
		return rec.has("ResizeInfeasible", "Pod resize Infeasible: ")
	})
	p.syncUpdates(ctx, "default/web")
	time.Sleep(200 * time.Millisecond)
	mu.Lock()
	if len(sent) != 2 {
		t.Errorf("%d updates sent, want 2 (a refused resize is not sent again)", len(sent))
	}
	mu.Unlock()

	// The host can't apply one: the in-progress condition says why.
	resize("750m", 4)
	poll.Eventually(t, 10*time.Second, "sent", func() error {
		if _, _, left := p.resizeToSend("default/web"); left != nil {
			return fmt.Errorf("left %v", left)
		}
		return nil
	})
	p.remember(ctx, group(0.75, 1000, "cannot decrease memory limits: below usage"))
	if c := resizeCondition(status()); c == nil || c.Type != corev1.PodResizeInProgress || c.Reason != corev1.PodReasonError || c.Message != "cannot decrease memory limits: below usage" {
		t.Fatalf("condition %+v", c)
	}
	if err := rec.has("ResizeError", "Pod resize error: "); err != nil {
		t.Fatal(err)
	}
}

func resizeCondition(st corev1.PodStatus) *corev1.PodCondition {
	for _, c := range st.Conditions {
		if c.Type == corev1.PodResizePending || c.Type == corev1.PodResizeInProgress {
			return &c
		}
	}
	return nil
}

// lockedRecorder keeps the Events recorded from any goroutine.
type lockedRecorder struct {
	mu  sync.Mutex
	got []recorded
}

func (r *lockedRecorder) Event(obj runtime.Object, typ, reason, message string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, recorded{nil, typ, reason, message})
}
func (r *lockedRecorder) Eventf(obj runtime.Object, typ, reason, format string, args ...any) {
	r.Event(obj, typ, reason, format)
}
func (r *lockedRecorder) AnnotatedEventf(obj runtime.Object, _ map[string]string, typ, reason, format string, args ...any) {
	r.Event(obj, typ, reason, format)
}

// has says whether an Event of reason whose message begins with prefix
// was recorded.
func (r *lockedRecorder) has(reason, prefix string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.got {
		if e.reason == reason && strings.HasPrefix(e.message, prefix) {
			return nil
		}
	}
	return fmt.Errorf("no %s Event saying %q in %d", reason, prefix, len(r.got))
}
