package v1

import "time"

// Host is a machine of the pool, registered by its agent.
type Host struct {
	Metadata ObjectMeta `json:"metadata"`
	Spec     HostSpec   `json:"spec"`
	Status   HostStatus `json:"status,omitzero"`
}

// HostSpec is what the agent registers and what operators change.
type HostSpec struct {
	Zone string `json:"zone"`
	// Capacity is the machine; Allocatable what groups may use of it.
	Capacity    Resources `json:"capacity"`
	Allocatable Resources `json:"allocatable"`
	// RuntimeHandlers the host can run groups with: runc, and kata or gvisor
	// where installed.
	RuntimeHandlers []string `json:"runtimeHandlers,omitempty"`
	// GPUModel names the model of the host's GPUs (nvidia-t4), which a
	// price book may price apart (docs/billing.md).
	GPUModel string `json:"gpuModel,omitempty"`
	// Unschedulable hosts get no new groups (cordon). Draining hosts get none
	// either and show as Draining while their groups end: an instance never
	// migrates; its owner (a virtual node, a user) deletes and recreates it.
	Unschedulable bool `json:"unschedulable,omitempty"`
	Draining      bool `json:"draining,omitempty"`
	// Address is where the control plane reaches the agent's stream server
	// (logs, exec, attach, port-forward, stats): https://ip:port.
	Address string `json:"address,omitempty"`
	// StreamCA is the PEM CA of the agent's stream server certificate: the
	// server trusts exactly this for Address (the agent registered it with
	// its host token, so it is pinned by that token).
	StreamCA string `json:"streamCA,omitempty"`
	// StreamToken is the bearer secret the server presents to the agent's
	// stream server. Write-only: the API never returns it.
	StreamToken string `json:"streamToken,omitempty"`
	// TunnelIP is the host's address on the network between hosts (the
	// underlay), where the other hosts' tunnels reach it (VXLAN,
	// docs/networking.md). Empty: the host routes to no other host's
	// instances.
	TunnelIP string `json:"tunnelIP,omitempty"`
	// WarmPool is the agent's pool of ready sandboxes (warmpool.go).
	WarmPool *WarmPoolSpec `json:"warmPool,omitempty"`
	// WarmPoolTarget, set by an operator (HostUpdate), replaces the
	// agent's pool size (raised before an expected burst); kept when
	// the agent registers again.
	WarmPoolTarget *int `json:"warmPoolTarget,omitempty"`
}

// Resources of a host.
type Resources struct {
	MilliCPU  int64 `json:"milliCPU"`
	MemoryMiB int64 `json:"memoryMiB"`
	GPU       int   `json:"gpu,omitempty"`
	Pods      int   `json:"pods"`
}

// Add is r and o together.
func (r Resources) Add(o Resources) Resources {
	return Resources{MilliCPU: r.MilliCPU + o.MilliCPU, MemoryMiB: r.MemoryMiB + o.MemoryMiB, GPU: r.GPU + o.GPU, Pods: r.Pods + o.Pods}
}

// Sub is r less o.
func (r Resources) Sub(o Resources) Resources {
	return r.Add(Resources{MilliCPU: -o.MilliCPU, MemoryMiB: -o.MemoryMiB, GPU: -o.GPU, Pods: -o.Pods})
}

// Held is what placed group g holds of its host: its size, its GPUs and
// one group.
func (g *ContainerGroup) Held() Resources {
	return Resources{MilliCPU: g.Status.MilliCPU, MemoryMiB: g.Status.MemoryMiB, GPU: g.Spec.GPU, Pods: 1}
}

// HostStatus is kept by the server.
type HostStatus struct {
	// Ready while the agent's lease is fresh.
	Ready bool `json:"ready"`
	// LastHeartbeat is the agent's last lease renewal.
	LastHeartbeat time.Time `json:"lastHeartbeat,omitzero"`
	// LeaseSeconds is the server's lease: a host that has not renewed it for
	// this long is lost, and its agent stops its groups before (fencing).
	// Set on the answers to the agent's registration and heartbeats.
	LeaseSeconds int `json:"leaseSeconds,omitempty"`
	// Allocated is the sum of the sizes of the groups placed on the host.
	Allocated Resources `json:"allocated"`
	Groups    int       `json:"groups"`
	// WarmPool is the host's pool of ready sandboxes, as its agent last
	// told (none: no pool).
	WarmPool *WarmPoolStatus `json:"warmPool,omitempty"`
}
