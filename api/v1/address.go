package v1

// InstanceAddress is where one group's address is routed: the host that
// runs the group. The server derives it from the group (from placement
// until the group ends); hosts read every one, each to route the others'
// instances (docs/networking.md), and learn nothing else of the group.
type InstanceAddress struct {
	// Metadata has the group's id and the resourceVersion alone.
	Metadata ObjectMeta          `json:"metadata"`
	Spec     InstanceAddressSpec `json:"spec"`
}

// InstanceAddressSpec: the group's address on its vSwitch, and its host.
type InstanceAddressSpec struct {
	IP        string `json:"ip"`
	VSwitchID string `json:"vSwitchId"`
	Host      string `json:"host"`
	// IPv6 is the group's IPv6 address, if it has one.
	IPv6 string `json:"ipv6,omitempty"`
	// SecurityGroups the group names, as "<tenant>/<name>" (the members'
	// addresses of a rule's groupId).
	SecurityGroups []string `json:"securityGroups,omitempty"`
}
