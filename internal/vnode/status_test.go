package vnode

import (
	"testing"

	corev1 "k8s.io/api/core/v1"

	apiv1 "github.com/eci-dev/eci/api/v1"
)

// A dual-stack group's pod has both addresses in status.podIPs, IPv4
// first (status.podIP), and its IPv6 address written back as
// allocated-ipv6Address; an IPv4-only group's has one address and no such
// annotation.
func TestDualStackPodStatus(t *testing.T) {
	p := &Provider{cfg: Config{InternalIP: "198.18.64.1"}}
	group := func(ipv6 string) *apiv1.ContainerGroup {
		return &apiv1.ContainerGroup{Metadata: apiv1.ObjectMeta{ID: "eci-1"}, Status: apiv1.ContainerGroupStatus{
			State: apiv1.StateRunning, Host: "h1", IP: "198.19.128.5", IPv6Address: ipv6, InstanceSpec: "2.0-4.0Gi"}}
	}
	dual := group("2001:2:0:1::5")
	st := p.podStatus(pod(nil), dual)
	if st.PodIP != "198.19.128.5" || len(st.PodIPs) != 2 || st.PodIPs[0].IP != "198.19.128.5" || st.PodIPs[1].IP != "2001:2:0:1::5" {
		t.Fatalf("dual stack: podIP %q, podIPs %v", st.PodIP, st.PodIPs)
	}
	ann := writtenBack(dual)
	if ann[AnnAllocatedIPv6] != "2001:2:0:1::5" || ann[AnnInstanceSpec] != "2.0-4.0Gi" {
		t.Fatalf("written back: %v", ann)
	}
	annotated := pod(func(p *corev1.Pod) { p.Annotations = ann })
	if !carries(annotated, ann) || carries(pod(nil), ann) {
		t.Fatal("carries: the annotated pod must carry them, a bare one must not")
	}

	v4 := group("")
	if st := p.podStatus(pod(nil), v4); st.PodIP != "198.19.128.5" || len(st.PodIPs) != 1 {
		t.Fatalf("IPv4 only: podIP %q, podIPs %v", st.PodIP, st.PodIPs)
	}
	if _, ok := writtenBack(v4)[AnnAllocatedIPv6]; ok {
		t.Fatalf("IPv4 only: written back %v", writtenBack(v4))
	}
	pending := group("")
	pending.Status = apiv1.ContainerGroupStatus{State: apiv1.StateScheduling}
	if st := p.podStatus(pod(nil), pending); st.PodIP != "" || len(st.PodIPs) != 0 {
		t.Fatalf("not placed: podIP %q, podIPs %v", st.PodIP, st.PodIPs)
	}
}

// While init containers have not all succeeded, the containers that wait
// for them say PodInitializing, as on a kubelet; a failing init container
// keeps its own reason (kubectl: Init:CrashLoopBackOff).
func TestPodInitializing(t *testing.T) {
	p := &Provider{cfg: Config{InternalIP: "198.18.64.1"}}
	po := pod(func(p *corev1.Pod) {
		p.Spec.InitContainers = []corev1.Container{{Name: "a", Image: "busybox"}, {Name: "b", Image: "busybox"}}
	})
	g := &apiv1.ContainerGroup{Metadata: apiv1.ObjectMeta{ID: "eci-1"}, Status: apiv1.ContainerGroupStatus{State: apiv1.StatePending, Host: "h1", IP: "198.19.128.5",
		InitContainers: []apiv1.ContainerStatus{{Name: "a", RestartCount: 2, State: apiv1.ContainerState{Waiting: &apiv1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}}}}}}
	st := p.podStatus(po, g)
	if r := st.InitContainerStatuses[0].State.Waiting.Reason; r != "CrashLoopBackOff" {
		t.Errorf("failing init container: %s", r)
	}
	if r := st.InitContainerStatuses[1].State.Waiting.Reason; r != "PodInitializing" {
		t.Errorf("next init container: %s", r)
	}
	if r := st.ContainerStatuses[0].State.Waiting.Reason; r != "PodInitializing" {
		t.Errorf("app container: %s", r)
	}
	done := apiv1.ContainerState{Terminated: &apiv1.ContainerStateTerminated{ExitCode: 0, Reason: "Completed"}}
	g.Status.InitContainers = []apiv1.ContainerStatus{{Name: "a", State: done}, {Name: "b", State: done}}
	if r := p.podStatus(po, g).ContainerStatuses[0].State.Waiting.Reason; r != "ContainerCreating" {
		t.Errorf("app container after init: %s", r)
	}
}

// A restartPolicy Never pod failed by an init container: the containers
// that never ran wait (PodInitializing), they did not end.
func TestInitFailedPod(t *testing.T) {
	p := &Provider{cfg: Config{InternalIP: "198.18.64.1"}}
	po := pod(func(p *corev1.Pod) {
		p.Spec.RestartPolicy = corev1.RestartPolicyNever
		p.Spec.InitContainers = []corev1.Container{{Name: "a", Image: "busybox"}}
	})
	g := &apiv1.ContainerGroup{Metadata: apiv1.ObjectMeta{ID: "eci-1"}, Status: apiv1.ContainerGroupStatus{State: apiv1.StateFailed, Host: "h1",
		InitContainers: []apiv1.ContainerStatus{{Name: "a", ContainerID: "c1", State: apiv1.ContainerState{Terminated: &apiv1.ContainerStateTerminated{ExitCode: 3, Reason: "Error"}}}}}}
	st := p.podStatus(po, g)
	if st.Phase != corev1.PodFailed || st.InitContainerStatuses[0].State.Terminated == nil || st.InitContainerStatuses[0].State.Terminated.ExitCode != 3 {
		t.Fatalf("init: %s %+v", st.Phase, st.InitContainerStatuses)
	}
	if w := st.ContainerStatuses[0].State.Waiting; w == nil || w.Reason != "PodInitializing" {
		t.Fatalf("app container: %+v", st.ContainerStatuses[0].State)
	}
}

// The status says which generation of the pod it is of, on the pod and on
// each condition, as a 1.35 kubelet's.
func TestObservedGeneration(t *testing.T) {
	p := &Provider{cfg: Config{InternalIP: "198.18.64.1"}}
	po := pod(func(p *corev1.Pod) { p.Generation = 3 })
	st := p.podStatus(po, &apiv1.ContainerGroup{Metadata: apiv1.ObjectMeta{ID: "eci-1"}, Status: apiv1.ContainerGroupStatus{State: apiv1.StateRunning, Host: "h1"}})
	if st.ObservedGeneration != 3 || len(st.Conditions) == 0 {
		t.Fatalf("observedGeneration %d, conditions %v", st.ObservedGeneration, st.Conditions)
	}
	for _, c := range st.Conditions {
		if c.ObservedGeneration != 3 {
			t.Errorf("condition %s: observedGeneration %d", c.Type, c.ObservedGeneration)
		}
	}
}
