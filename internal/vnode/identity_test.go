package vnode

import (
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	apiv1 "github.com/eci-dev/eci/api/v1"
)

// Pods that Kubernetes accepts are accepted, and their group carries the
// pod's whole identity.
func TestPodsKubernetesAccepts(t *testing.T) {
	long := strings.Repeat("a", 62) + "." + strings.Repeat("b", 100) + "-0" // a pod name of 165 characters, with a dot at 63
	node := "eci-vnode-" + strings.Repeat("x", 40)                          // a node name of 50 characters
	p := &Provider{cfg: Config{NodeName: node, ClusterID: node, Files: noFiles{}}}

	g, err := p.toGroup(t.Context(), pod(func(p *corev1.Pod) { p.Name = long }))
	if err != nil {
		t.Fatal(err)
	}
	if g.Metadata.Labels[LabelPodName] != long || g.Metadata.Labels[LabelNode] != node {
		t.Errorf("labels %v: want the whole pod name and the node", g.Metadata.Labels)
	}
	if len(g.Spec.ClientToken) > 64 {
		t.Errorf("client token of %d characters", len(g.Spec.ClientToken))
	}
	again, _ := p.toGroup(t.Context(), pod(func(p *corev1.Pod) { p.Name = long }))
	other, _ := p.toGroup(t.Context(), pod(func(p *corev1.Pod) { p.Name = long; p.UID = "uid-2" }))
	if again.Spec.ClientToken != g.Spec.ClientToken || other.Spec.ClientToken == g.Spec.ClientToken {
		t.Errorf("client tokens %q %q %q: want one per pod UID, the same every time", g.Spec.ClientToken, again.Spec.ClientToken, other.Spec.ClientToken)
	}
	if g.Spec.Hostname != strings.Repeat("a", 62) {
		t.Errorf("hostname %q: want the name cut to 63 without a trailing '.' or '-'", g.Spec.Hostname)
	}
	if err := apiv1.ValidateContainerGroup(g); err != nil {
		t.Fatalf("the service would refuse it: %v", err)
	}
	dotted, err := p.toGroup(t.Context(), pod(func(p *corev1.Pod) { p.Name = "web.v1" }))
	if err != nil || dotted.Spec.Hostname != "web.v1" || apiv1.ValidateContainerGroup(dotted) != nil {
		t.Fatalf("a pod named with a dot: hostname %q (%v)", dotted.Spec.Hostname, err)
	}

	named := func(p *corev1.Pod) {
		c := &p.Spec.Containers[0]
		c.Ports = []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}, {Name: "admin", ContainerPort: 9090}}
		c.LivenessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/", Port: intstr.FromString("http")}}}
		c.ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromString("admin")}}}
		c.StartupProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/", Port: intstr.FromInt32(7070)}}}
		c.Lifecycle = &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/quit", Port: intstr.FromString("admin")}}}
	}
	g, err = p.toGroup(t.Context(), pod(named))
	if err != nil {
		t.Fatal(err)
	}
	c := g.Spec.Containers[0]
	if c.LivenessProbe.HTTPGet.Port != 8080 || c.ReadinessProbe.TCPSocket.Port != 9090 || c.StartupProbe.HTTPGet.Port != 7070 || c.Lifecycle.PreStop.HTTPGet.Port != 9090 {
		t.Fatalf("named ports resolved to %d %d %d %d", c.LivenessProbe.HTTPGet.Port, c.ReadinessProbe.TCPSocket.Port, c.StartupProbe.HTTPGet.Port, c.Lifecycle.PreStop.HTTPGet.Port)
	}
	_, err = p.toGroup(t.Context(), pod(func(p *corev1.Pod) {
		named(p)
		p.Spec.Containers[0].LivenessProbe.HTTPGet.Port = intstr.FromString("metrics")
	}))
	var r *refusal
	if !errors.As(err, &r) || r.Reason != "InvalidPort" || !strings.Contains(r.Message, `livenessProbe.httpGet.port: no port named "metrics"`) {
		t.Fatalf("an unknown port name: %v", err)
	}
}
