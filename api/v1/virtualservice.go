package v1

// VirtualService is one virtual IP of a tenant's service table and the
// backends each of its ports leads to. An instance reaches the virtual IPs of
// the table its group names (spec.serviceTable), and only those: two tables
// (two clusters of one tenant, or of two tenants) may use the same virtual
// IPs. The instance service knows nothing of what fills a table; a virtual
// node fills its cluster's from the Services and EndpointSlices it watches.
//
// A VirtualService is written whole (PUT, last write wins) by its tenant; its
// id is "<table>_<ip>" within the tenant.
type VirtualService struct {
	Metadata ObjectMeta         `json:"metadata"`
	Spec     VirtualServiceSpec `json:"spec"`
}

// VirtualServiceSpec: the virtual IP, its ports and session affinity.
type VirtualServiceSpec struct {
	// Table names the tenant's table (a DNS label, e.g. a cluster id).
	Table string `json:"table"`
	// IP is the virtual IPv4 address.
	IP    string        `json:"ip"`
	Ports []VirtualPort `json:"ports"`
	// SessionAffinity ClientIP keeps a client's connections on one backend
	// for SessionAffinityTimeoutSeconds (default 10800) after its last one;
	// None or empty: each connection picks a backend at random.
	SessionAffinity               SessionAffinity `json:"sessionAffinity,omitempty"`
	SessionAffinityTimeoutSeconds int32           `json:"sessionAffinityTimeoutSeconds,omitempty"`
}

// VirtualPort is a port of a virtual IP and where its connections go. A port
// with no backends refuses connections at once (ICMP port unreachable).
type VirtualPort struct {
	Name     string   `json:"name,omitempty"`
	Protocol Protocol `json:"protocol"`
	Port     int32    `json:"port"`
	// Backends are the ready addresses and ports the connections are spread
	// over.
	Backends []Backend `json:"backends,omitempty"`
}

// Backend is an address and port a virtual port leads to.
type Backend struct {
	IP   string `json:"ip"`
	Port int32  `json:"port"`
}

// Protocol of a virtual port.
type Protocol string

// Protocols served.
const (
	ProtocolTCP Protocol = "TCP"
	ProtocolUDP Protocol = "UDP"
)

// SessionAffinity of a virtual IP.
type SessionAffinity string

// Session affinities.
const (
	AffinityNone     SessionAffinity = "None"
	AffinityClientIP SessionAffinity = "ClientIP"
)

// Limits of virtual services.
const (
	MaxVirtualPorts = 100
	// MaxBackends bounds the backends of one virtual IP, all ports together.
	MaxBackends = 5000
	// MaxVirtualServices bounds a tenant's virtual IPs, all tables together;
	// MaxTenantBackends their backends together (about 4 MiB of a host's
	// memory for a tenant's tables).
	MaxVirtualServices = 20000
	MaxTenantBackends  = 100000
	// DefaultAffinityTimeout is the ClientIP affinity's default, as Kubernetes'.
	DefaultAffinityTimeout = 10800
	// MaxAffinityTimeout is Kubernetes' limit.
	MaxAffinityTimeout = 86400
)

// VirtualServiceID is the id of a tenant's virtual IP in a table.
func VirtualServiceID(table, ip string) string { return table + "_" + ip }
