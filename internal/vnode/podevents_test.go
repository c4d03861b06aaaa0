package vnode

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	apiv1 "github.com/eci-dev/eci/api/v1"
)

// recorded is one Event a test recorder took.
type recorded struct {
	ref                  *corev1.ObjectReference
	typ, reason, message string
}

// testRecorder keeps what it is given (record.EventRecorder).
type testRecorder struct{ got []recorded }

func (r *testRecorder) Event(obj runtime.Object, typ, reason, message string) {
	ref, _ := obj.(*corev1.ObjectReference)
	r.got = append(r.got, recorded{ref, typ, reason, message})
}
func (r *testRecorder) Eventf(obj runtime.Object, typ, reason, format string, args ...any) {
	r.Event(obj, typ, reason, format)
}
func (r *testRecorder) AnnotatedEventf(obj runtime.Object, _ map[string]string, typ, reason, format string, args ...any) {
	r.Event(obj, typ, reason, format)
}

// podLabels are the labels of the group of pod default/name of uid.
func podLabels(name, uid string) map[string]string {
	return map[string]string{LabelPodNamespace: "default", LabelPodName: name, LabelPodUID: uid}
}

// A pod gets its instance's events once each (a relist replays them), a
// series' next occurrence again; a container's event refers to the
// container; the server's own Created and Scheduled, events of groups of
// no pod of the node, and those of the first list (from before the node
// started) are not given, but a listed series' next occurrence is.
func TestPodEvents(t *testing.T) {
	p := newProvider(Config{})
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web", UID: types.UID("uid-1")},
		Spec: corev1.PodSpec{InitContainers: []corev1.Container{{Name: "setup"}}, Containers: []corev1.Container{{Name: "app"}}}}
	p.pods["default/web"] = pod
	p.groups["uid-1"] = &apiv1.ContainerGroup{Metadata: apiv1.ObjectMeta{ID: "eci-1",
		Labels: podLabels("web", "uid-1")}}
	rec := &testRecorder{}
	e := newPodEvents(p, rec)
	ev := func(id, group, container, source, typ, reason string, count int) *apiv1.Event {
		return &apiv1.Event{Metadata: apiv1.ObjectMeta{ID: id}, Object: apiv1.ObjectReference{Kind: "ContainerGroup", ID: group},
			Container: container, Source: source, Type: typ, Reason: reason, Message: reason + " " + container, Count: count}
	}
	e.record(ev("e0", "eci-1", "app", "agent/h1", apiv1.EventNormal, "Pulled", 1)) // the first list
	e.listed = true
	for _, x := range []*apiv1.Event{
		ev("e0", "eci-1", "app", "agent/h1", apiv1.EventNormal, "Pulled", 1), // replayed
		ev("e1", "eci-1", "app", "agent/h1", apiv1.EventNormal, "Started", 1),
		ev("e1", "eci-1", "app", "agent/h1", apiv1.EventNormal, "Started", 1), // a relist
		ev("e2", "eci-1", "setup", "agent/h1", apiv1.EventWarning, "BackOff", 1),
		ev("e2", "eci-1", "setup", "agent/h1", apiv1.EventWarning, "BackOff", 2), // again
		ev("e3", "eci-1", "", "server", apiv1.EventNormal, "Scheduled", 1),
		ev("e4", "eci-1", "", "server", apiv1.EventWarning, "FailedScheduling", 1),
		ev("e6", "eci-2", "app", "agent/h1", apiv1.EventNormal, "Pulled", 1), // no pod's
		ev("e0", "eci-1", "app", "agent/h1", apiv1.EventNormal, "Pulled", 2), // a listed series, again
	} {
		e.record(x)
	}
	want := []struct{ reason, fieldPath string }{
		{"Started", "spec.containers{app}"}, {"BackOff", "spec.initContainers{setup}"}, {"BackOff", "spec.initContainers{setup}"},
		{"FailedScheduling", ""}, {"Pulled", "spec.containers{app}"},
	}
	if len(rec.got) != len(want) {
		t.Fatalf("recorded %d events, want %d: %+v", len(rec.got), len(want), rec.got)
	}
	for i, w := range want {
		g := rec.got[i]
		if g.reason != w.reason || g.ref == nil || g.ref.FieldPath != w.fieldPath || g.ref.Name != "web" || g.ref.UID != "uid-1" || g.ref.Kind != "Pod" {
			t.Errorf("event %d: %+v (%+v), want %s at %q of pod web", i, g, g.ref, w.reason, w.fieldPath)
		}
	}
	if _, ok := e.seen["e6"]; ok || len(e.seen) != 4 {
		t.Errorf("remembered %v: the node's pods' events alone", e.seen)
	}
}

// A pod's changed images, by container, against its group's (app and
// init); none when they are the same.
func TestChangedImages(t *testing.T) {
	g := &apiv1.ContainerGroup{Spec: apiv1.ContainerGroupSpec{
		InitContainers: []apiv1.Container{{Name: "setup", Image: "busybox:1"}},
		Containers:     []apiv1.Container{{Name: "app", Image: "busybox:1"}, {Name: "side", Image: "busybox:1"}}}}
	pod := &corev1.Pod{Spec: corev1.PodSpec{
		InitContainers: []corev1.Container{{Name: "setup", Image: "busybox:2"}},
		Containers:     []corev1.Container{{Name: "app", Image: "busybox:3"}, {Name: "side", Image: "busybox:1"}}}}
	got := changedImages(pod, g)
	if len(got) != 2 || got["setup"] != "busybox:2" || got["app"] != "busybox:3" {
		t.Errorf("changed %v", got)
	}
	pod.Spec.InitContainers[0].Image, pod.Spec.Containers[0].Image = "busybox:1", "busybox:1"
	if got := changedImages(pod, g); len(got) != 0 {
		t.Errorf("unchanged: %v", got)
	}
}
