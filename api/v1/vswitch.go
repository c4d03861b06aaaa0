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
}

// VSwitchStatus counts addresses, and gives its VPC's network identifier.
type VSwitchStatus struct {
	Total     int `json:"total"`
	Allocated int `json:"allocated"`
	VNI       int `json:"vni,omitempty"`
}
