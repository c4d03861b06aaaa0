package control

import (
	"log/slog"
	"net/netip"
	"sync/atomic"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/scheduler"
	"github.com/eci-dev/eci/internal/store"
)

// Options tune the service.
type Options struct {
	// Policy chooses among hosts that fit: spread (default) or binpack.
	Policy scheduler.Policy
	// HostLeaseTTL is how long a host stays Ready without a heartbeat (40 s).
	HostLeaseTTL time.Duration
	// RetryInterval is how often Scheduling groups are retried (5 s).
	RetryInterval time.Duration
	// DeletionTimeout is how long past its grace period a graceful delete waits
	// for the agent before the server completes it anyway (60 s).
	DeletionTimeout time.Duration
	// DefaultTenant owns groups an admin creates without naming a tenant.
	DefaultTenant string
	// MaxStoredGroups bounds the groups a tenant stores, every state
	// (DefaultMaxStoredGroups); MaxLargeGroups those over LargeGroupBytes
	// (DefaultMaxLargeGroups).
	MaxStoredGroups, MaxLargeGroups int
	// SpotNotice is how long before it ends a spot instance whose capacity
	// is taken back is told (DefaultSpotNotice).
	SpotNotice time.Duration
	// TenantRuntimeHandlers, when set, are the only runtime handlers a
	// tenant's group may ask for (a pod's RuntimeClass): an operator who
	// offers runc beside kata keeps tenants on kata. Empty: any a host
	// offers.
	TenantRuntimeHandlers []string
	// InstanceTypes are the named sizes groups may ask for
	// (instancetypes.go).
	InstanceTypes map[string]InstanceType
	// EIPRange holds the addresses EIPs are given from (eips.go; invalid:
	// none are).
	EIPRange netip.Prefix
	// UsageRetention keeps usage records that long after their group ended
	// (DefaultUsageRetention).
	UsageRetention time.Duration
	// UsageDetail keeps short groups' usage records one by one that long
	// before they are summed by hour (DefaultUsageDetail, usagefold.go).
	UsageDetail time.Duration
	// Now is the clock (tests move it).
	Now    func() time.Time
	Logger *slog.Logger
}

// Service is the instance service's logic over a store.
type Service struct {
	opts     Options
	st       *store.Store
	groups   *store.Collection[apiv1.ContainerGroup, *apiv1.ContainerGroup]
	hosts    *store.Collection[apiv1.Host, *apiv1.Host]
	vsws     *store.Collection[apiv1.VSwitch, *apiv1.VSwitch]
	events   *store.Collection[apiv1.Event, *apiv1.Event]
	tenants  *store.Collection[apiv1.Tenant, *apiv1.Tenant]
	tokens   *store.Collection[apiv1.Token, *apiv1.Token]
	usage    *store.Collection[usageRecord, *usageRecord] // per host
	tusage   *store.Collection[usageRecord, *usageRecord] // per tenant
	ips      *store.Collection[ipRecord, *ipRecord]
	vpcs     *store.Collection[apiv1.VPC, *apiv1.VPC]                       // vpcs.go
	eips     *store.Collection[apiv1.EIP, *apiv1.EIP]                       // eips.go
	routes   *store.Collection[apiv1.RouteEntry, *apiv1.RouteEntry]         // routeentries.go
	vnis     *store.Collection[vniRecord, *vniRecord]                       // vpcs.go
	sgs      *store.Collection[apiv1.SecurityGroup, *apiv1.SecurityGroup]   // securitygroups.go
	vsvcs    *store.Collection[apiv1.VirtualService, *apiv1.VirtualService] // virtualservices.go
	vsusage  *store.Collection[vsUsage, *vsUsage]                           // vsusage.go
	idxs     *store.Collection[tokenIndex, *tokenIndex]
	imcs     *store.Collection[apiv1.ImageCache, *apiv1.ImageCache]   // imagecaches.go
	himgs    *store.Collection[hostImages, *hostImages]               // imagecachehosts.go
	dcs      *store.Collection[apiv1.DataCache, *apiv1.DataCache]     // datacaches.go
	hdata    *store.Collection[hostData, *hostData]                   // datacachehosts.go
	matches  cacheMatches                                             // imagecachestatus.go
	members  *store.Collection[member, *member]                       // membership.go
	records  *store.Collection[apiv1.UsageRecord, *apiv1.UsageRecord] // metering.go
	prices   priceBook                                                // metering.go
	pass     usagePass                                                // metering.go, usagefold.go: the hourly usage pass
	spent    spentCache                                               // spending.go
	sessions *store.Collection[session, *session]                     // sessions.go
	bills    *billGate                                                // metering.go
	vnodes   *store.Collection[vnodeRecord, *vnodeRecord]             // vnodemetering.go
	books    *store.Collection[storedBook, *storedBook]               // pricebook.go
	counts   counts                                                   // membership.go
	log      *slog.Logger

	// kick wakes the placer when a group waits or capacity is freed.
	kick chan struct{}
	// waiting is the leading placer's set of Scheduling groups.
	waiting *waitingSet
	// batchFallbacks counts the placer's batches that were not committed
	// and placed one by one (placebatch.go).
	batchFallbacks atomic.Int64
}

// usageRecord is what the placed groups of one host (or one tenant) hold;
// written in the same transaction as every placement and release.
type usageRecord struct {
	Metadata apiv1.ObjectMeta `json:"metadata"`
	Used     apiv1.Resources  `json:"used"`
}

func (u *usageRecord) Meta() *apiv1.ObjectMeta { return &u.Metadata }

// ipRecord holds one allocated address: ID is "<vSwitch>_<ip>". An address
// whose group ended without its host confirming is kept until ReleaseAfter
// (releaseOps), then freed by the monitor.
type ipRecord struct {
	Metadata     apiv1.ObjectMeta `json:"metadata"`
	VSwitch      string           `json:"vSwitch"`
	IP           string           `json:"ip"`
	Group        string           `json:"group"`
	ReleaseAfter *time.Time       `json:"releaseAfter,omitempty"`
	// Fixed is the fixed-IP key ("<tenant>/<spec.fixedIpKey>") the address
	// is kept for (fixedip.go): while its group runs, and after it until
	// ReleaseAfter; HeldUntil, the quarantine of its last group's host.
	Fixed     string     `json:"fixed,omitempty"`
	HeldUntil *time.Time `json:"heldUntil,omitempty"`
	// Warm is the host whose warm pool holds the address for a sandbox
	// made before any group asked (warmpool.go); Group is empty.
	Warm string `json:"warm,omitempty"`
}

func (r *ipRecord) Meta() *apiv1.ObjectMeta { return &r.Metadata }

func ipID(vsw, ip string) string { return vsw + "_" + ip }

// tokenIndex maps a tenant's client token to the group it created.
type tokenIndex struct {
	Metadata apiv1.ObjectMeta `json:"metadata"`
	Group    string           `json:"group"`
}

func (t *tokenIndex) Meta() *apiv1.ObjectMeta { return &t.Metadata }

// New returns the service over st.
func New(st *store.Store, opts Options) *Service {
	if opts.Policy == "" {
		opts.Policy = scheduler.Spread
	}
	if opts.HostLeaseTTL == 0 {
		opts.HostLeaseTTL = 40 * time.Second
	}
	if opts.SpotNotice == 0 {
		opts.SpotNotice = DefaultSpotNotice
	}
	if opts.RetryInterval == 0 {
		opts.RetryInterval = 5 * time.Second
	}
	if opts.DeletionTimeout == 0 {
		opts.DeletionTimeout = 60 * time.Second
	}
	if opts.MaxStoredGroups <= 0 {
		opts.MaxStoredGroups = DefaultMaxStoredGroups
	}
	if opts.MaxLargeGroups <= 0 {
		opts.MaxLargeGroups = DefaultMaxLargeGroups
	}
	if opts.DefaultTenant == "" {
		opts.DefaultTenant = "default"
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.UsageRetention <= 0 {
		opts.UsageRetention = DefaultUsageRetention
	}
	if opts.UsageDetail <= 0 {
		opts.UsageDetail = DefaultUsageDetail
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Service{
		opts:     opts,
		st:       st,
		groups:   store.NewCollection[apiv1.ContainerGroup](st, "containergroups"),
		hosts:    store.NewCollection[apiv1.Host](st, "hosts"),
		vsws:     store.NewCollection[apiv1.VSwitch](st, "vswitches"),
		events:   store.NewCollection[apiv1.Event](st, "events"),
		tenants:  store.NewCollection[apiv1.Tenant](st, "tenants"),
		tokens:   store.NewCollection[apiv1.Token](st, "tokens"),
		usage:    store.NewCollection[usageRecord](st, "hostusage"),
		tusage:   store.NewCollection[usageRecord](st, "tenantusage"),
		ips:      store.NewCollection[ipRecord](st, "ips"),
		vpcs:     store.NewCollection[apiv1.VPC](st, "vpcs"),
		eips:     store.NewCollection[apiv1.EIP](st, "eips"),
		routes:   store.NewCollection[apiv1.RouteEntry](st, "routeentries"),
		vnis:     store.NewCollection[vniRecord](st, "vnis"),
		sgs:      store.NewCollection[apiv1.SecurityGroup](st, "securitygroups"),
		vsvcs:    store.NewCollection[apiv1.VirtualService](st, "virtualservices"),
		vsusage:  store.NewCollection[vsUsage](st, "virtualserviceusage"),
		idxs:     store.NewCollection[tokenIndex](st, "clienttokens"),
		imcs:     store.NewCollection[apiv1.ImageCache](st, "imagecaches"),
		himgs:    store.NewCollection[hostImages](st, "hostimages"),
		dcs:      store.NewCollection[apiv1.DataCache](st, "datacaches"),
		hdata:    store.NewCollection[hostData](st, "hostdata"),
		members:  store.NewCollection[member](st, "tenantgroups"),
		records:  store.NewCollection[apiv1.UsageRecord](st, "usagerecords"),
		sessions: store.NewCollection[session](st, "consolesessions"),
		bills:    newBillGate(),
		vnodes:   store.NewCollection[vnodeRecord](st, "virtualnodes"),
		books:    store.NewCollection[storedBook](st, "pricebooks"),
		counts:   counts{m: map[string]cachedCount{}},
		log:      opts.Logger,
		kick:     make(chan struct{}, 1),
	}
}

// wake tells the placer there may be work.
func (s *Service) wake() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

func (s *Service) now() time.Time { return s.opts.Now().UTC() }
