package vnode

import (
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// A probe or hook naming a host is refused, naming it and what to use: the
// service reaches the pod's own address only.
func TestProbeHostRefused(t *testing.T) {
	p := pod(func(p *corev1.Pod) {
		p.Spec.Containers[0].Lifecycle = &corev1.Lifecycle{PostStart: &corev1.LifecycleHandler{
			HTTPGet: &corev1.HTTPGetAction{Host: "198.18.0.1", Port: intstr.FromInt32(80)}}}
	})
	var r *refusal
	if _, err := container(p, p.Spec.Containers[0]); !errors.As(err, &r) || r.Reason != "ProbeHostNotSupported" ||
		!strings.Contains(r.Message, `lifecycle.postStart: host "198.18.0.1"`) || !strings.Contains(r.Message, "exec action") {
		t.Fatalf("%v", err)
	}
	p.Spec.Containers[0].Lifecycle.PostStart.HTTPGet.Host = ""
	if _, err := container(p, p.Spec.Containers[0]); err != nil {
		t.Fatalf("no host: %v", err)
	}
}
