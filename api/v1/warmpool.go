package v1

// A host's warm pool is sandboxes made before any group asks for one
// (docs/fast-start.md): each has its network namespace, interface and
// address, its pause process and its cgroup, so that a group placed on
// one only creates and starts its containers. Each address is reserved
// from the vSwitch's pool by the server, counted as the host's and given
// to no other group; a sandbox is used once.

// WarmPoolSpec is what the agent registers of its pool (--warm-pool-size).
type WarmPoolSpec struct {
	// Size is how many ready sandboxes the host keeps on each of its
	// vSwitches (0 to MaxWarmPoolSize).
	Size int `json:"size"`
	// VSwitchIDs are the vSwitches it keeps them on; empty: every vSwitch
	// of its zone without IPv6 (a sandbox of the pool has no IPv6
	// address).
	VSwitchIDs []string `json:"vSwitchIds,omitempty"`
}

// MaxWarmPoolSize bounds a host's pool on one vSwitch.
const MaxWarmPoolSize = 128

// WarmAddress is one address of a host's pool.
type WarmAddress struct {
	VSwitchID string `json:"vSwitchId"`
	IP        string `json:"ip"`
}

// WarmPoolSync is the body of PUT /v1/hosts/{name}/warmpool: the agent
// tells which of its reserved addresses have a ready sandbox.
type WarmPoolSync struct {
	Ready []WarmAddress `json:"ready"`
}

// WarmPool is the answer: the pool's size and the addresses reserved for
// it, on which the agent keeps sandboxes (and removes any other).
type WarmPool struct {
	Size     int           `json:"size"`
	Reserved []WarmAddress `json:"reserved"`
}

// WarmPoolStatus is a host's pool as the server last heard of it.
type WarmPoolStatus struct {
	// Size is the pool's size on each vSwitch: the operator's
	// (spec.warmPoolTarget) when set, else the agent's.
	Size int `json:"size"`
	// Reserved counts the addresses the server reserved for it, Ready
	// those with a ready sandbox (the placer prefers hosts that have one).
	Reserved int           `json:"reserved"`
	Ready    []WarmAddress `json:"ready,omitempty"`
}

// Warmable tells whether a group can take a sandbox of a warm pool: one
// made for no group in particular. A group that needs something of its
// sandbox made for it (its own address, IPv6, sysctls, a shared process
// namespace, a runtime handler it names, GPUs, bandwidth limits) gets
// its own, made when it is placed.
func Warmable(s *ContainerGroupSpec) bool {
	return s.PrivateIPAddress == "" && s.FixedIPKey == "" && !s.EnableIPv6 && len(s.Sysctls) == 0 && !s.ShareProcessNamespace &&
		s.RuntimeHandler == "" && s.GPU == 0 && s.IngressBandwidth == 0 && s.EgressBandwidth == 0
}
