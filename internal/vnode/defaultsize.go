package vnode

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"

	"github.com/eci-dev/eci/internal/profile"
	"github.com/eci-dev/eci/internal/sizes"
)

// A pod that asks for no CPU and no memory (no requests or limits in any
// container, no k8s.aliyun.com/eci-use-specs) runs at a default size:
// eci-profile's defaultSize, else the node's --default-size, else the
// spec's 2 vCPU / 4 GiB (docs/spec.md section 4). The node tells the pod
// with an Event (DefaultSize) which size it got and why.

// ParseDefaultSize reads --default-size: a supported size, "2-4Gi".
func ParseDefaultSize(v string) (sizes.Size, error) {
	s, err := sizes.Parse(v)
	if err != nil {
		return sizes.Size{}, fmt.Errorf("--default-size: %w", err)
	}
	if !sizes.IsSupported(s) {
		return sizes.Size{}, fmt.Errorf("--default-size %q is not a supported size (docs/spec.md section 4: 0.25-0.5Gi, 0.5-1Gi, 1-2Gi, 2-4Gi, ...)", v)
	}
	return s, nil
}

// asksForNoSize: no container (init ones included) requests or limits CPU
// or memory (a zero counts as none), and no eci-use-specs or
// eci-instance-type annotation names a size.
func asksForNoSize(pod *corev1.Pod) bool {
	if _, ok := pod.Annotations[AnnUseSpecs]; ok {
		return false
	}
	if pod.Annotations[AnnInstanceType] != "" {
		return false
	}
	for _, cs := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for _, c := range cs {
			for _, l := range []corev1.ResourceList{c.Resources.Requests, c.Resources.Limits} {
				if q, ok := l[corev1.ResourceCPU]; ok && !q.IsZero() {
					return false
				}
				if q, ok := l[corev1.ResourceMemory]; ok && !q.IsZero() {
					return false
				}
			}
		}
	}
	return true
}

// defaultSize is the size of a pod that asks for none, and where it comes
// from; ok is false for a pod that asks for a size.
func (p *Provider) defaultSize(pod *corev1.Pod) (size sizes.Size, from string, ok bool) {
	if !asksForNoSize(pod) {
		return sizes.Size{}, "", false
	}
	if p.profile != nil {
		if prof := p.profile(); prof != nil && prof.DefaultSize != (sizes.Size{}) {
			return prof.DefaultSize, "eci-profile's " + profile.KeyDefaultSize, true
		}
	}
	if p.cfg.DefaultSize != (sizes.Size{}) {
		return p.cfg.DefaultSize, "the virtual node's --default-size", true
	}
	return sizes.Default, "the default of docs/spec.md section 4", true
}

// defaultSizeMessage is the DefaultSize Event's text.
func defaultSizeMessage(size sizes.Size, from string) string {
	return fmt.Sprintf("The pod requests no CPU or memory: its instance has %g vCPU and %g GiB (%s), billed at that size. "+
		"Set resources.requests or limits, or the annotation %s, to choose", size.VCPU(), size.GiB(), from, AnnUseSpecs)
}
