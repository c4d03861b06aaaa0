package v1

// SecurityGroup is a tenant's stateful firewall for its instances, as a
// cloud's: a group that names it (spec.securityGroupIds) takes connections
// only as its ingress rules allow (and from the group's own members, unless
// innerAccessPolicy is Drop), and opens them as its egress rules allow
// (all, when it has none); answers of an allowed connection always pass.
// A group that names several is allowed what any of them allows. A group
// that names none is not filtered.
type SecurityGroup struct {
	Metadata ObjectMeta        `json:"metadata"`
	Spec     SecurityGroupSpec `json:"spec"`
}

// SecurityGroupSpec: the rules.
type SecurityGroupSpec struct {
	// InnerAccessPolicy: Accept (default) lets the members reach each
	// other; Drop leaves them to the rules.
	InnerAccessPolicy string         `json:"innerAccessPolicy,omitempty"`
	Ingress           []SecurityRule `json:"ingress,omitempty"`
	// Egress rules; none: every destination is allowed.
	Egress []SecurityRule `json:"egress,omitempty"`
}

// SecurityRule allows one kind of traffic from a source (ingress) or to a
// destination (egress): a CIDR or the members of a security group of the
// same tenant, exactly one of them.
type SecurityRule struct {
	// Protocol: TCP, UDP, ICMP or ALL.
	Protocol string `json:"protocol"`
	// PortRange "from/to" (TCP and UDP only; "80/80" is one port); empty:
	// every port.
	PortRange string `json:"portRange,omitempty"`
	// CIDR is an IPv4 or IPv6 CIDR (0.0.0.0/0: any IPv4 address, ::/0:
	// any IPv6 address); a rule of one family says nothing of the other.
	CIDR string `json:"cidr,omitempty"`
	// GroupID names a security group of the tenant: its members'
	// addresses, wherever they run.
	GroupID string `json:"groupId,omitempty"`
}

// Inner access policies.
const (
	InnerAccept = "Accept"
	InnerDrop   = "Drop"
)

// MaxSecurityRules bounds each direction's rules of a group.
const MaxSecurityRules = 200

// Meta is the security group's metadata.
func (g *SecurityGroup) Meta() *ObjectMeta { return &g.Metadata }
