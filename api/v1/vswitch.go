package v1

// VSwitch is a subnet in a zone that groups get their IPs from.
type VSwitch struct {
	Metadata ObjectMeta    `json:"metadata"`
	Spec     VSwitchSpec   `json:"spec"`
	Status   VSwitchStatus `json:"status,omitzero"`
}

// VSwitchSpec: an IPv4 CIDR in one zone. The first address (the gateway) and the
// network and broadcast addresses are never given to groups.
type VSwitchSpec struct {
	Zone string `json:"zone"`
	CIDR string `json:"cidr"`
	// Gateway defaults to the first address of the CIDR.
	Gateway string `json:"gateway,omitempty"`
	// VPCID is the VPC the vSwitch belongs to (DefaultVPC when empty): it
	// may overlap vSwitches of other VPCs, never one of its own.
	VPCID string `json:"vpcId,omitempty"`
	// NATGateway lets the vSwitch's instances reach addresses outside their
	// VPC from the address of the host they run on (SNAT); without it they
	// reach nothing outside (the default VPC's: what the hosts route).
	NATGateway bool `json:"natGateway,omitempty"`
	// IPv6CIDR gives the vSwitch IPv6 too (dual stack): a group that asks
	// for it (ContainerGroupSpec.EnableIPv6) gets the address of IPv6CIDR
	// at its IPv4 address's offset in CIDR, so that it holds one with the
	// other. A /48 to /120 of unique-local or global unicast addresses
	// with at least as many host bits as CIDR; IPv6Gateway is its address
	// at the gateway's offset (set by the server).
	IPv6CIDR    string `json:"ipv6Cidr,omitempty"`
	IPv6Gateway string `json:"ipv6Gateway,omitempty"`
}

// VSwitchStatus counts addresses, and gives its VPC's network identifier.
type VSwitchStatus struct {
	Total     int `json:"total"`
	Allocated int `json:"allocated"`
	VNI       int `json:"vni,omitempty"`
}
