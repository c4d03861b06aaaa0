package vnode

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	apiv1 "github.com/eci-dev/eci/api/v1"
)

// The node shows what the pool can place for its tenant: its groups' use
// plus the pool's free part or its quota's, whichever is less, never above
// the configured capacity.
func TestNodeResources(t *testing.T) {
	max := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1000"), corev1.ResourceMemory: resource.MustParse("4Ti"), corev1.ResourcePods: resource.MustParse("1000")}
	pool := apiv1.Resources{MilliCPU: 8000, MemoryMiB: 16384, Pods: 110}
	for _, tc := range []struct {
		name                  string
		c                     apiv1.Capacity
		spot                  apiv1.Resources
		max                   corev1.ResourceList
		capCPU, cpu, mem, pod string
	}{
		{name: "an empty pool of one tenant", c: apiv1.Capacity{Pool: pool, Free: pool}, max: max,
			capCPU: "8", cpu: "8", mem: "16Gi", pod: "110"},
		{name: "its own groups count as its own", c: apiv1.Capacity{Pool: pool, Free: apiv1.Resources{MilliCPU: 2000, MemoryMiB: 4096, Pods: 104},
			Used: apiv1.Resources{MilliCPU: 6000, MemoryMiB: 12288, Pods: 6}}, max: max, capCPU: "8", cpu: "8", mem: "16Gi", pod: "110"},
		{name: "another tenant's do not", c: apiv1.Capacity{Pool: pool, Free: apiv1.Resources{MilliCPU: 2000, MemoryMiB: 4096, Pods: 104},
			Used: apiv1.Resources{MilliCPU: 2000, MemoryMiB: 4096, Pods: 2}}, max: max, capCPU: "8", cpu: "4", mem: "8Gi", pod: "106"},
		{name: "the quota when smaller", c: apiv1.Capacity{Pool: pool, Free: apiv1.Resources{MilliCPU: 6000, MemoryMiB: 12288, Pods: 108},
			Used: apiv1.Resources{MilliCPU: 2000, MemoryMiB: 4096, Pods: 2}, Quota: apiv1.Quota{MilliCPU: 3000, Groups: 5}},
			max: max, capCPU: "3", cpu: "3", mem: "16Gi", pod: "5"},
		{name: "a quota already spent", c: apiv1.Capacity{Pool: pool, Free: pool, Used: apiv1.Resources{MilliCPU: 4000}, Quota: apiv1.Quota{MilliCPU: 2000}},
			max: max, capCPU: "2", cpu: "2", mem: "16Gi", pod: "110"},
		{name: "no more than configured", c: apiv1.Capacity{Pool: pool, Free: pool},
			max:    corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2"), corev1.ResourceMemory: resource.MustParse("4Ti"), corev1.ResourcePods: resource.MustParse("10")},
			capCPU: "2", cpu: "2", mem: "16Gi", pod: "10"},
		{name: "no host", c: apiv1.Capacity{}, max: max, capCPU: "0", cpu: "0", mem: "0", pod: "0"},
		{name: "spot instances past their protection count twice", c: apiv1.Capacity{Pool: pool, Free: apiv1.Resources{MilliCPU: 6000, MemoryMiB: 12288, Pods: 109},
			Used: apiv1.Resources{MilliCPU: 2000, MemoryMiB: 4096, Pods: 1}}, spot: apiv1.Resources{MilliCPU: 2000, MemoryMiB: 4096, Pods: 1},
			max: max, capCPU: "10", cpu: "10", mem: "20Gi", pod: "111"},
	} {
		capacity, alloc := nodeResources(&tc.c, tc.spot, tc.max)
		for name, want := range map[string]struct {
			got  resource.Quantity
			want string
		}{"capacity cpu": {capacity[corev1.ResourceCPU], tc.capCPU}, "cpu": {alloc[corev1.ResourceCPU], tc.cpu},
			"memory": {alloc[corev1.ResourceMemory], tc.mem}, "pods": {alloc[corev1.ResourcePods], tc.pod}} {
			if want.got.Cmp(resource.MustParse(want.want)) != 0 {
				t.Errorf("%s: %s %s, want %s", tc.name, name, want.got.String(), want.want)
			}
		}
	}
}
