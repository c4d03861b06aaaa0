package vnode

import (
	"math"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"

	corev1 "k8s.io/api/core/v1"

	apiv1 "github.com/eci-dev/eci/api/v1"
)

// The node's capacity and allocatable follow what the pool can place for
// its tenant (GET /v1/capacity), so that the cluster's scheduler keeps
// Pending, with its usual Unschedulable events, the pods the pool cannot
// run, instead of binding pods that would wait inside the instance
// service. The configured capacity (--cpu, --memory, --pods) is the most it
// ever shows.
//
//   - capacity: the schedulable hosts' allocatable, or the tenant's quota
//     when smaller;
//   - allocatable: what the tenant's groups hold plus what it can still
//     place: the pool's free resources, or what its quota leaves when less.
//
// The pool's free resources are summed over hosts: a pod larger than any
// one host's free part is still bound, and waits in the service, its status
// saying so. Pods that ask for nothing count as zero for the scheduler (as
// on any node) while their instances have the default size.

// nodeResources is the node's capacity and allocatable for c, neither
// above max (the configured capacity). spot, what the node's spot
// instances past their protected hours hold, is counted twice: held by
// them, and offered again, since a pay-as-you-go pod bound on it takes it
// back (their instances end after a notice; docs/vnode.md).
func nodeResources(c *apiv1.Capacity, spot apiv1.Resources, max corev1.ResourceList) (capacity, allocatable corev1.ResourceList) {
	q, u := c.Quota, c.Used
	pool := apiv1.Resources{MilliCPU: limit(c.Pool.MilliCPU, q.MilliCPU), MemoryMiB: limit(c.Pool.MemoryMiB, q.MemoryMiB),
		Pods: int(limit(int64(c.Pool.Pods), int64(q.Groups))), GPU: int(limit(int64(c.Pool.GPU), int64(q.GPU)))}
	left := apiv1.Resources{
		MilliCPU:  u.MilliCPU + min(c.Free.MilliCPU, quotaLeft(q.MilliCPU, u.MilliCPU)),
		MemoryMiB: u.MemoryMiB + min(c.Free.MemoryMiB, quotaLeft(q.MemoryMiB, u.MemoryMiB)),
		Pods:      u.Pods + int(min(int64(c.Free.Pods), quotaLeft(int64(q.Groups), int64(u.Pods)))),
		GPU:       u.GPU + int(min(int64(c.Free.GPU), quotaLeft(int64(q.GPU), int64(u.GPU)))),
	}
	// A quota lowered below what the groups hold: allocatable is no more
	// than capacity, as on any node.
	left = apiv1.Resources{MilliCPU: min(left.MilliCPU, pool.MilliCPU), MemoryMiB: min(left.MemoryMiB, pool.MemoryMiB), Pods: min(left.Pods, pool.Pods),
		GPU: min(left.GPU, pool.GPU)}
	return resourceList(pool.Add(spot), max), resourceList(left.Add(spot), max)
}

// limit is v, or quota when set and smaller.
func limit(v, quota int64) int64 {
	if quota > 0 {
		return min(v, quota)
	}
	return v
}

// quotaLeft is what a quota leaves beside used; unlimited without one.
func quotaLeft(quota, used int64) int64 {
	if quota <= 0 {
		return 1 << 62
	}
	return max(quota-used, 0)
}

// resourceGPU is the node's extended resource of the pool's GPUs, as the
// NVIDIA device plugin names it on a kubelet's node.
const resourceGPU corev1.ResourceName = "nvidia.com/gpu"

// resourceList is r as the node's cpu, memory, pods and GPUs (when the
// pool has any), each no more than max's.
func resourceList(r apiv1.Resources, most corev1.ResourceList) corev1.ResourceList {
	out := corev1.ResourceList{
		corev1.ResourceCPU:    *resource.NewMilliQuantity(max(r.MilliCPU, 0), resource.DecimalSI),
		corev1.ResourceMemory: *resource.NewQuantity(min(max(r.MemoryMiB, 0), math.MaxInt64>>20)<<20, resource.BinarySI),
		corev1.ResourcePods:   *resource.NewQuantity(int64(max(r.Pods, 0)), resource.DecimalSI),
	}
	if r.GPU > 0 {
		out[resourceGPU] = *resource.NewQuantity(int64(r.GPU), resource.DecimalSI)
	}
	for name, q := range out {
		if m, ok := most[name]; ok && m.Cmp(q) < 0 {
			out[name] = m.DeepCopy()
		}
	}
	return out
}

// reclaimableSpot is what this node's spot instances past their protected
// hours hold: capacity a pay-as-you-go pod may take back.
func (p *Provider) reclaimableSpot() apiv1.Resources {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	var out apiv1.Resources
	for _, g := range p.groups {
		st := g.Status
		// One already told it is released counts once: it is given back.
		if g.Spec.Spot() && !st.State.Terminal() && st.Host != "" && st.SpotReleaseAt == nil && st.PendingAt != nil &&
			!now.Before(st.PendingAt.Add(g.Spec.SpotProtection())) {
			out = out.Add(g.Held())
		}
	}
	return out
}
