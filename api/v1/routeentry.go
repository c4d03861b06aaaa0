package v1

// RouteEntry is an entry of the default VPC's route table: its instances
// reach Destination through NextHop, an address on the hosts' network (a
// real Kubernetes node whose pods' CIDR it is, in a hybrid cluster). Every
// host routes it; packets to it are never translated by a NAT gateway, so
// the node's pods see the instances' own addresses. The node routes the
// VPC's vSwitches back through a host of the pool (docs/networking.md).
type RouteEntry struct {
	Metadata ObjectMeta     `json:"metadata"`
	Spec     RouteEntrySpec `json:"spec"`
}

// RouteEntrySpec: an IPv4 CIDR and the address it is reached through.
type RouteEntrySpec struct {
	Destination string `json:"destination"`
	NextHop     string `json:"nextHop"`
}

// Meta is the entry's metadata.
func (r *RouteEntry) Meta() *ObjectMeta { return &r.Metadata }
