package v1

// VPC is a private network: its vSwitches route to each other, and no
// instance of another VPC reaches its instances, whatever their addresses
// (VPCs may overlap). A VPC may belong to a tenant (metadata.tenant), whose
// vSwitches alone it then holds; one without a tenant is shared. vSwitches
// that name no VPC are in the default one, DefaultVPC (never stored).
type VPC struct {
	Metadata ObjectMeta `json:"metadata"`
	Spec     VPCSpec    `json:"spec"`
	Status   VPCStatus  `json:"status,omitzero"`
}

// DefaultVPC is the VPC of the vSwitches that name none, with VNI 1: the
// hosts route it in their main table (docs/networking.md).
const DefaultVPC = "vpc-default"

// DefaultVNI is the default VPC's network identifier.
const DefaultVNI = 1

// MaxVNI is the largest VNI a VPC is given: VPCs are told apart on a host
// by their VNI in 16 bits (connection-tracking zones).
const MaxVNI = 65535

// VPCSpec: optionally, the CIDR its vSwitches must be inside.
type VPCSpec struct {
	CIDR string `json:"cidr,omitempty"`
}

// VPCStatus is the server's: the VPC's network identifier (its VXLAN
// VNI between hosts), and how many vSwitches it has.
type VPCStatus struct {
	VNI       int `json:"vni"`
	VSwitches int `json:"vSwitches"`
}

// Meta is the VPC's metadata.
func (v *VPC) Meta() *ObjectMeta { return &v.Metadata }
