package vnode

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/eci-dev/eci/internal/profile"
	"github.com/eci-dev/eci/internal/sizes"
)

// A pod that asks for no size gets eci-profile's defaultSize, else the
// node's --default-size, else 2 vCPU / 4 GiB; a pod that asks for any part
// of a size (an init container's limit, a CPU request alone, eci-use-specs,
// a named instance type) gets no default; a named type wins over the
// containers' resources (the service sizes the group by it).
func TestDefaultSize(t *testing.T) {
	half := sizes.Size{MilliCPU: 500, MemoryMiB: 1024}
	quarter := sizes.Size{MilliCPU: 250, MemoryMiB: 512}
	for _, tc := range []struct {
		name      string
		node      sizes.Size
		prof      sizes.Size
		pod       *corev1.Pod
		cpu, mem  float64
		from      string
		defaulted bool
	}{
		{name: "the spec's", pod: pod(nil), cpu: 2, mem: 4, from: "docs/spec.md", defaulted: true},
		{name: "the node's", node: half, pod: pod(nil), cpu: 0.5, mem: 1, from: "--default-size", defaulted: true},
		{name: "the profile's over the node's", node: half, prof: quarter, pod: pod(nil), cpu: 0.25, mem: 0.5, from: "eci-profile's defaultSize", defaulted: true},
		{name: "a CPU request alone: the smallest size's memory", node: half, pod: pod(func(p *corev1.Pod) { p.Spec.Containers[0].Resources.Requests = res("1", "") }), cpu: 1, mem: 2},
		{name: "a memory limit alone: the smallest size's CPU", node: half, pod: pod(func(p *corev1.Pod) { p.Spec.Containers[0].Resources.Limits = res("", "2Gi") }), cpu: 0.5, mem: 2},
		{name: "an init container's limits", node: half, pod: pod(func(p *corev1.Pod) {
			p.Spec.InitContainers = []corev1.Container{{Name: "init", Image: "busybox", Resources: corev1.ResourceRequirements{Limits: res("1", "2Gi")}}}
		})},
		{name: "eci-use-specs", node: half, pod: pod(func(p *corev1.Pod) { p.Annotations[AnnUseSpecs] = "1-2Gi" })},
		{name: "eci-instance-type, over the containers' resources", node: half, pod: pod(func(p *corev1.Pod) {
			p.Annotations[AnnInstanceType] = "ecs.c6.large"
			p.Spec.Containers[0].Resources.Limits = res("1", "2Gi")
		})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &Provider{cfg: Config{ClusterID: "c1", Files: noFiles{}, DefaultSize: tc.node}}
			if tc.prof != (sizes.Size{}) {
				p.profile = func() *profile.Profile { return &profile.Profile{DefaultSize: tc.prof} }
			}
			g, err := p.toGroup(context.Background(), tc.pod)
			if err != nil {
				t.Fatal(err)
			}
			if g.Spec.CPU != tc.cpu || g.Spec.Memory != tc.mem {
				t.Fatalf("group %g vCPU %g GiB; want %g, %g", g.Spec.CPU, g.Spec.Memory, tc.cpu, tc.mem)
			}
			size, from, ok := p.defaultSize(tc.pod)
			if ok != tc.defaulted || !strings.Contains(from, tc.from) {
				t.Fatalf("defaulted %v from %q; want %v from %q", ok, from, tc.defaulted, tc.from)
			}
			if ok && !strings.Contains(defaultSizeMessage(size, from), "requests no CPU or memory") {
				t.Fatalf("message %q", defaultSizeMessage(size, from))
			}
		})
	}
	if _, err := ParseDefaultSize("3-3Gi"); err == nil || !strings.Contains(err.Error(), "not a supported size") {
		t.Fatalf("an unsupported size: %v", err)
	}
	if s, err := ParseDefaultSize("0.25-0.5Gi"); err != nil || s != quarter {
		t.Fatalf("0.25-0.5Gi: %v, %v", s, err)
	}
}
