package vnode

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	apiv1 "github.com/eci-dev/eci/api/v1"
)

// The kubelet API's /healthz says ok once the groups are listed; /metrics
// has the kubelet's names: the node's name, its running pods and
// containers by state, the start of a pod the node saw start (observed
// once), the Go runtime's.
func TestKubeletHealthAndMetrics(t *testing.T) {
	p := newProvider(Config{NodeName: "vn-test"})
	created := time.Now().Add(-3 * time.Second)
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web", UID: types.UID("uid-1"), CreationTimestamp: metav1.NewTime(created)}}
	p.pods["default/web"] = pod
	running := created.Add(2 * time.Second)
	g := &apiv1.ContainerGroup{Metadata: apiv1.ObjectMeta{ID: "eci-1", ResourceVersion: "3",
		Labels: podLabels("web", "uid-1")},
		Status: apiv1.ContainerGroupStatus{State: apiv1.StateRunning, RunningAt: &running, Containers: []apiv1.ContainerStatus{
			{Name: "app", State: apiv1.ContainerState{Running: &apiv1.ContainerStateRunning{}}},
			{Name: "side", State: apiv1.ContainerState{Terminated: &apiv1.ContainerStateTerminated{}}}}}}
	placed := *g
	placed.Metadata.ResourceVersion, placed.Status = "2", apiv1.ContainerGroupStatus{State: apiv1.StatePending}
	p.remember(t.Context(), &placed) // the node sees it start
	p.remember(t.Context(), g)
	p.remember(t.Context(), g) // observed once
	api := kubeletAPI(p, nil)
	w := httptest.NewRecorder()
	api.ServeHTTP(w, httptest.NewRequest("GET", "/healthz", nil))
	if w.Code != 500 {
		t.Errorf("/healthz before the groups are listed: %d %s", w.Code, w.Body)
	}
	close(p.synced)
	get := func(path string) string {
		w := httptest.NewRecorder()
		api.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
		if w.Code != 200 {
			t.Fatalf("%s: %d %s", path, w.Code, w.Body)
		}
		return w.Body.String()
	}
	other := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "old", UID: types.UID("uid-2"), CreationTimestamp: metav1.NewTime(created)}}
	p.pods["default/old"] = other
	old := *g
	old.Metadata = apiv1.ObjectMeta{ID: "eci-2", ResourceVersion: "4", Labels: podLabels("old", "uid-2")}
	p.remember(t.Context(), &old) // running before the node started: not a start it saw
	if got := get("/healthz"); got != "ok" {
		t.Errorf("/healthz: %q", got)
	}
	m := get("/metrics")
	for _, want := range []string{
		`kubelet_node_name{node="vn-test"} 1`,
		"kubelet_running_pods 2",
		`kubelet_running_containers{container_state="running"} 2`,
		`kubelet_running_containers{container_state="exited"} 2`,
		"kubelet_pod_start_total_duration_seconds_count 1",
		`kubelet_pod_start_total_duration_seconds_bucket{le="2"} 1`,
		"go_goroutines",
	} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
