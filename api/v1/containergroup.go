package v1

import (
	"cmp"
	"time"

	"github.com/eci-dev/eci/internal/sizes"
)

// ContainerGroup is one elastic container instance: a sandbox with its own IP and
// size, holding init containers and containers that share its volumes.
type ContainerGroup struct {
	Metadata ObjectMeta           `json:"metadata"`
	Spec     ContainerGroupSpec   `json:"spec"`
	Status   ContainerGroupStatus `json:"status,omitzero"`
}

// ContainerGroupSpec is what the client asks for. Only Tags, and the fields
// UpdateContainerGroup names, change after creation.
type ContainerGroupSpec struct {
	// CPU (vCPU) and Memory (GiB) size the instance. When both are zero the size
	// comes from the containers' own cpu/memory, or is 2 vCPU / 4 GiB. The result
	// is rounded up to the smallest supported size.
	CPU    float64 `json:"cpu,omitempty"`
	Memory float64 `json:"memory,omitempty"`
	// Specs is an ordered fallback list of sizes ("2-4Gi", up to 5): the first
	// one that can be placed is used (k8s.aliyun.com/eci-use-specs). It wins
	// over CPU and Memory.
	Specs []string `json:"specs,omitempty"`
	// InstanceType names a type the server offers instead of a size: it
	// sets cpu, memory and gpu from it at creation (the server's
	// --instance-type; none by default); a name no type has is refused,
	// naming the configured ones. Specs may name types too.
	InstanceType string `json:"instanceType,omitempty"`
	// GPU is the number of GPUs of the instance.
	GPU int `json:"gpu,omitempty"`
	// RuntimeHandler, when set, runs the group with that runtime handler of
	// its host (kata, gvisor: a pod's runtimeClassName's handler); only a
	// host offering it takes the group. Empty: the host's default (runc).
	RuntimeHandler string `json:"runtimeHandler,omitempty"`

	Containers     []Container `json:"containers"`
	InitContainers []Container `json:"initContainers,omitempty"`
	// EphemeralContainers are added to a running group (GroupUpdate), as a
	// pod's by kubectl debug: each runs once in the sandbox, never
	// restarted, and none is changed or removed.
	EphemeralContainers []EphemeralContainer `json:"ephemeralContainers,omitempty"`
	Volumes             []Volume             `json:"volumes,omitempty"`

	// RestartPolicy applies to the containers: Always (default), OnFailure, Never.
	RestartPolicy                 RestartPolicy `json:"restartPolicy,omitempty"`
	TerminationGracePeriodSeconds *int64        `json:"terminationGracePeriodSeconds,omitempty"`
	ActiveDeadlineSeconds         *int64        `json:"activeDeadlineSeconds,omitempty"`

	Hostname string `json:"hostname,omitempty"`
	// DNSPolicy says what DNSConfig adds to: Default, the host's DNS
	// settings (the agent's --resolv-conf), as the kubelet's Default policy
	// merges them; None, nothing (the group's DNSConfig is all of it, with
	// at least one nameserver). Empty: the DNSConfig alone when there is
	// one, else the host's (what groups had before the field).
	DNSPolicy   DNSPolicy   `json:"dnsPolicy,omitempty"`
	DNSConfig   *DNSConfig  `json:"dnsConfig,omitempty"`
	HostAliases []HostAlias `json:"hostAliases,omitempty"`
	// Sysctls of the group's namespaces: the kubelet's safe set.
	Sysctls []Sysctl `json:"sysctls,omitempty"`
	// ShareProcessNamespace puts the containers in one process namespace,
	// the sandbox's (its pause is PID 1), as a pod's field of that name
	// does; else each container has its own and is PID 1 in it.
	ShareProcessNamespace bool `json:"shareProcessNamespace,omitempty"`

	// VSwitchIDs the group may get its IP from (and so the zones it may run in).
	// Empty: any vSwitch of the tenant.
	VSwitchIDs []string `json:"vSwitchIds,omitempty"`
	// ScheduleStrategy over several vSwitches: VSwitchOrdered (try them in
	// order) or VSwitchRandom (spread; the default).
	ScheduleStrategy ScheduleStrategy `json:"scheduleStrategy,omitempty"`
	SecurityGroupIDs []string         `json:"securityGroupIds,omitempty"`
	// ServiceTable names the tenant's table of virtual IPs the instance
	// reaches (VirtualService; a virtual node names its cluster's). Empty:
	// none.
	ServiceTable string `json:"serviceTable,omitempty"`
	// PrivateIPAddress asks for this IPv4 address; it must be idle and inside
	// one of the allowed vSwitches.
	PrivateIPAddress string `json:"privateIpAddress,omitempty"`
	// IngressBandwidth and EgressBandwidth limit what the instance receives
	// and what it sends, in bits per second (0: no limit; else
	// MinBandwidth to MaxBandwidth).
	IngressBandwidth int64 `json:"ingressBandwidth,omitempty"`
	EgressBandwidth  int64 `json:"egressBandwidth,omitempty"`
	// EIPID binds the tenant's EIP (eci eips allocate) to the instance
	// while it holds its resources; WithEIP allocates one for it, released
	// with it. Not both.
	EIPID   string `json:"eipId,omitempty"`
	WithEIP bool   `json:"withEip,omitempty"`
	// FixedIPKey keeps the group's address for the next group of the
	// tenant with the same key (a StatefulSet pod made again) for
	// FixedIPRetainHours after it ends (48 when 0; at most MaxFixedIPRetainHours).
	FixedIPKey         string `json:"fixedIpKey,omitempty"`
	FixedIPRetainHours int    `json:"fixedIpRetainHours,omitempty"`
	// EnableIPv6 gives the instance an IPv6 address as well (dual stack):
	// only a vSwitch with an ipv6Cidr is used.
	EnableIPv6 bool `json:"enableIpv6,omitempty"`

	ImageRegistryCredentials []RegistryCredential `json:"imageRegistryCredentials,omitempty"`
	// PlainHTTPRegistries and InsecureRegistries are host[:port] lists.
	PlainHTTPRegistries []string `json:"plainHttpRegistries,omitempty"`
	InsecureRegistries  []string `json:"insecureRegistries,omitempty"`
	// ImageCacheID names a cache of the tenant to start from
	// (k8s.aliyun.com/eci-imc-id): the placer prefers the hosts that hold
	// it, and matches no other. DisableImageCacheMatch
	// (eci-auto-imc: "false") matches none; ImageCachePerfectMatch
	// (imc-perfect-match) only a cache holding every image of the group
	// (imagecache.go).
	ImageCacheID           string `json:"imageCacheId,omitempty"`
	DisableImageCacheMatch bool   `json:"disableImageCacheMatch,omitempty"`
	ImageCachePerfectMatch bool   `json:"imageCachePerfectMatch,omitempty"`

	// ExtraEphemeralStorage adds GiB to the 30 GiB every instance has.
	ExtraEphemeralStorage int `json:"extraEphemeralStorage,omitempty"`

	// Tags allocate cost ("k:v", up to 3 for pods created by a virtual node).
	Tags map[string]string `json:"tags,omitempty"`

	// MaxPendingMinutes bounds Scheduling/Pending (10-1440, default 240).
	MaxPendingMinutes int `json:"maxPendingMinutes,omitempty"`
	// FailStrategy when no capacity: fail-back (retry, default), fail-over,
	// fail-fast (ScheduleFailed at once).
	FailStrategy FailStrategy `json:"failStrategy,omitempty"`

	// SpotStrategy makes a preemptible (spot) instance: SpotAsPriceGo or
	// SpotWithPriceLimit (with SpotPriceLimit, per hour); empty or NoSpot:
	// pay-as-you-go. A spot instance's capacity goes to a pay-as-you-go
	// instance that has none, once SpotDurationHours (0-6, default 1)
	// after it started: it is told (SpotReleaseAt, an Event
	// SpotToBeReleased) a notice period before, then it is Expired.
	SpotStrategy      SpotStrategy `json:"spotStrategy,omitempty"`
	SpotPriceLimit    float64      `json:"spotPriceLimit,omitempty"`
	SpotDurationHours *int         `json:"spotDurationHours,omitempty"`

	// ClientToken makes create idempotent: the same token returns the same group.
	ClientToken string `json:"clientToken,omitempty"`
}

// RestartPolicy of the containers of a group.
type RestartPolicy string

const (
	RestartAlways    RestartPolicy = "Always"
	RestartOnFailure RestartPolicy = "OnFailure"
	RestartNever     RestartPolicy = "Never"
)

// ScheduleStrategy over several vSwitches.
type ScheduleStrategy string

const (
	VSwitchOrdered ScheduleStrategy = "VSwitchOrdered"
	VSwitchRandom  ScheduleStrategy = "VSwitchRandom"
)

// FailStrategy says what happens when no capacity is found.
type FailStrategy string

const (
	FailBack FailStrategy = "fail-back"
	FailOver FailStrategy = "fail-over"
	FailFast FailStrategy = "fail-fast"
)

// SpotStrategy says whether an instance is preemptible (docs/spec.md
// section 5).
type SpotStrategy string

const (
	NoSpot             SpotStrategy = "NoSpot"
	SpotAsPriceGo      SpotStrategy = "SpotAsPriceGo"
	SpotWithPriceLimit SpotStrategy = "SpotWithPriceLimit"
)

// Spot tells whether the group is a spot instance.
func (s *ContainerGroupSpec) Spot() bool {
	return s.SpotStrategy == SpotAsPriceGo || s.SpotStrategy == SpotWithPriceLimit
}

// SpotProtection is how long a spot instance runs before its capacity may
// be taken back (SpotDurationHours, 1 by default).
func (s *ContainerGroupSpec) SpotProtection() time.Duration {
	if s.SpotDurationHours == nil {
		return time.Hour
	}
	return time.Duration(*s.SpotDurationHours) * time.Hour
}

// DNSPolicy is what a group's DNSConfig adds to.
type DNSPolicy string

// DNS policies.
const (
	DNSDefault DNSPolicy = "Default"
	DNSNone    DNSPolicy = "None"
)

// DNSConfig is merged into the group's resolv.conf (DNSPolicy says with
// what): nameservers and searches appended, without repeats; an option
// replaces the base's of its name.
type DNSConfig struct {
	Nameservers []string    `json:"nameservers,omitempty"`
	Searches    []string    `json:"searches,omitempty"`
	Options     []DNSOption `json:"options,omitempty"`
}

// DNSOption is one resolv.conf option.
type DNSOption struct {
	Name  string `json:"name"`
	Value string `json:"value,omitempty"`
}

// Sysctl is one kernel parameter of the group's namespaces.
type Sysctl struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// SafeSysctls are the sysctls a group may set: the kubelet's safe set,
// namespaced to the group and harmless to its neighbours.
var SafeSysctls = []string{
	"kernel.shm_rmid_forced",
	"net.ipv4.ip_local_port_range",
	"net.ipv4.ip_local_reserved_ports",
	"net.ipv4.ip_unprivileged_port_start",
	"net.ipv4.ping_group_range",
	"net.ipv4.tcp_fin_timeout",
	"net.ipv4.tcp_keepalive_intvl",
	"net.ipv4.tcp_keepalive_probes",
	"net.ipv4.tcp_keepalive_time",
	"net.ipv4.tcp_syncookies",
}

// HostAlias adds lines to the group's /etc/hosts.
type HostAlias struct {
	IP        string   `json:"ip"`
	Hostnames []string `json:"hostnames"`
}

// RegistryCredential logs in to one registry. The password is written,
// never read back: only the agent of the group's host receives it.
type RegistryCredential struct {
	Server   string `json:"server"`
	Username string `json:"username"`
	Password string `json:"password,omitempty"`
}

// ContainerGroupStatus is what the service reports.
type ContainerGroupStatus struct {
	State   State  `json:"state,omitempty"`
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`

	// InstanceSpec is the size the group runs (and is billed) at, "2.0-4.0Gi".
	InstanceSpec string `json:"instanceSpec,omitempty"`
	MilliCPU     int64  `json:"milliCPU,omitempty"`
	MemoryMiB    int64  `json:"memoryMiB,omitempty"`

	Host      string `json:"host,omitempty"`
	Zone      string `json:"zone,omitempty"`
	VSwitchID string `json:"vSwitchId,omitempty"`
	IP        string `json:"ip,omitempty"`
	// IPv6Address is the group's IPv6 address (spec.enableIpv6), held with
	// its IP.
	IPv6Address string `json:"ipv6Address,omitempty"`
	// EIPAddress and EIPID: the EIP bound to the group while it holds its
	// resources (spec.eipId or spec.withEip).
	EIPAddress string `json:"eipAddress,omitempty"`
	EIPID      string `json:"eipId,omitempty"`
	// MatchedImageCache is the tenant's image cache the group's host held
	// its images from when it was placed (none: it pulls them).
	MatchedImageCache string `json:"matchedImageCache,omitempty"`

	InitContainers      []ContainerStatus `json:"initContainers,omitempty"`
	Containers          []ContainerStatus `json:"containers,omitempty"`
	EphemeralContainers []ContainerStatus `json:"ephemeralContainers,omitempty"`
	Conditions          []Condition       `json:"conditions,omitempty"`

	// SchedulingAttempts counts placement tries (fail-back retries).
	SchedulingAttempts int `json:"schedulingAttempts,omitempty"`
	// Allocated is true while the group holds capacity on its host and its IP
	// (from placement until it ends or is deleted).
	Allocated bool `json:"allocated,omitempty"`
	// RestartRequestedAt asks the agent to restart every container
	// (RestartContainerGroup); the group is Restarting until they run again.
	RestartRequestedAt *time.Time `json:"restartRequestedAt,omitempty"`
	// SpotReleaseAt is when a spot instance whose capacity is taken back
	// ends (Expired).
	SpotReleaseAt *time.Time `json:"spotReleaseAt,omitempty"`

	// Billing timestamps: billed from PendingAt (image pull and storage mount
	// start) until FinishedAt.
	ScheduledAt *time.Time `json:"scheduledAt,omitempty"`
	PendingAt   *time.Time `json:"pendingAt,omitempty"`
	RunningAt   *time.Time `json:"runningAt,omitempty"`
	FinishedAt  *time.Time `json:"finishedAt,omitempty"`
	// GPUModel is the model of the GPUs the group was given (its host's).
	GPUModel string `json:"gpuModel,omitempty"`
	// BillingFrom: the usage before it is in the group's usage records
	// already, allocated by the tags it had then (its tags or virtual node
	// changed at BillingFrom; docs/billing.md).
	BillingFrom *time.Time `json:"billingFrom,omitempty"`
}

// State of a container group (docs/spec.md section 5).
type State string

const (
	StateScheduling     State = "Scheduling"
	StateScheduleFailed State = "ScheduleFailed"
	StatePending        State = "Pending"
	StateRunning        State = "Running"
	StateRestarting     State = "Restarting"
	StateUpdating       State = "Updating"
	StateTerminating    State = "Terminating"
	StateSucceeded      State = "Succeeded"
	StateFailed         State = "Failed"
	StateExpired        State = "Expired"
)

// Terminal tells whether a group in state s will never run again.
func (s State) Terminal() bool {
	switch s {
	case StateScheduleFailed, StateSucceeded, StateFailed, StateExpired:
		return true
	}
	return false
}

// Billed tells whether a group in state s is billed (docs/spec.md section 10).
func (s State) Billed() bool {
	switch s {
	case StatePending, StateRunning, StateRestarting, StateUpdating, StateTerminating:
		return true
	}
	return false
}

// ContainerStatus is the state of one container.
type ContainerStatus struct {
	Name         string         `json:"name"`
	Image        string         `json:"image,omitempty"`
	ImageID      string         `json:"imageId,omitempty"`
	ContainerID  string         `json:"containerId,omitempty"`
	Ready        bool           `json:"ready"`
	Started      bool           `json:"started"`
	RestartCount int            `json:"restartCount"`
	State        ContainerState `json:"state"`
	LastState    ContainerState `json:"lastState,omitzero"`
	// Limits are the CPU and memory the container runs with now: its
	// spec's, or the group's size where it gives none (Limits). They
	// differ from those while a resize is applied, or can't be:
	// ResizeError says why (a memory limit below what it uses).
	Limits      *Limits `json:"limits,omitempty"`
	ResizeError string  `json:"resizeError,omitempty"`
}

// Limits are a container's CPU (milli-vCPU) and memory (MiB) bounds.
type Limits struct {
	MilliCPU  int64 `json:"milliCPU"`
	MemoryMiB int64 `json:"memoryMiB"`
}

// Container is the app or init container name of the spec (nil: none).
func (s *ContainerGroupSpec) Container(name string) *Container {
	for _, list := range [][]Container{s.Containers, s.InitContainers} {
		for i := range list {
			if list[i].Name == name {
				return &list[i]
			}
		}
	}
	return nil
}

// Limits are what bounds container c of the group: its own CPU and
// memory, or the group's size for what it gives none of.
func (g *ContainerGroup) Limits(c Container) Limits {
	own := sizes.FromGiB(c.CPU, c.Memory)
	return Limits{MilliCPU: cmp.Or(own.MilliCPU, g.Status.MilliCPU), MemoryMiB: cmp.Or(own.MemoryMiB, g.Status.MemoryMiB)}
}

// ContainerState: exactly one of its fields is set.
type ContainerState struct {
	Waiting    *ContainerStateWaiting    `json:"waiting,omitempty"`
	Running    *ContainerStateRunning    `json:"running,omitempty"`
	Terminated *ContainerStateTerminated `json:"terminated,omitempty"`
}

// ContainerStateWaiting: not running yet, with why (ContainerCreating,
// ErrImagePull, ImagePullBackOff, CrashLoopBackOff, CreateContainerConfigError).
type ContainerStateWaiting struct {
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
}

// ContainerStateRunning: running since StartedAt.
type ContainerStateRunning struct {
	StartedAt time.Time `json:"startedAt"`
}

// ContainerStateTerminated: ended with ExitCode (Reason Completed, Error,
// OOMKilled, ...).
type ContainerStateTerminated struct {
	ExitCode   int32     `json:"exitCode"`
	Signal     int32     `json:"signal,omitempty"`
	Reason     string    `json:"reason,omitempty"`
	Message    string    `json:"message,omitempty"`
	StartedAt  time.Time `json:"startedAt,omitzero"`
	FinishedAt time.Time `json:"finishedAt,omitzero"`
}

// Condition of a group: Scheduled, Initialized, ContainersReady, Ready.
type Condition struct {
	Type               string    `json:"type"`
	Status             bool      `json:"status"`
	Reason             string    `json:"reason,omitempty"`
	Message            string    `json:"message,omitempty"`
	LastTransitionTime time.Time `json:"lastTransitionTime,omitzero"`
}
