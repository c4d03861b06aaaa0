package v1

import (
	"regexp"
	"strings"
	"time"
)

// LabelVirtualNode is the label a virtual node puts on the groups it makes:
// its name. Billing allocates their cost to it.
const LabelVirtualNode = "eci.dev/node"

// UsageRecord is what one group was billed for (docs/billing.md): written
// once, when the group's record is removed, in the same transaction, and
// kept for the usage retention after. A group still stored is metered
// from its own record (UsageOf), so a group is counted in exactly one of
// the two, whatever restarts or leader changes happen.
type UsageRecord struct {
	// Metadata.ID is the group's id; Tenant its tenant; CreatedAt when the
	// record was written.
	Metadata ObjectMeta `json:"metadata"`
	// Group is the group's id (a group whose tags changed has a record for
	// each part of its life); Name its name.
	Group string `json:"group,omitempty"`
	Name  string `json:"name"`
	// Tags and VirtualNode allocate the cost.
	Tags        map[string]string `json:"tags,omitempty"`
	VirtualNode string            `json:"virtualNode,omitempty"`
	Zone        string            `json:"zone,omitempty"`
	Host        string            `json:"host,omitempty"`
	// The size the group ran at.
	InstanceType    string `json:"instanceType,omitempty"`
	InstanceSpec    string `json:"instanceSpec,omitempty"`
	MilliCPU        int64  `json:"milliCPU"`
	MemoryMiB       int64  `json:"memoryMiB"`
	GPU             int    `json:"gpu,omitempty"`
	GPUModel        string `json:"gpuModel,omitempty"`
	ExtraStorageGiB int    `json:"extraStorageGiB,omitempty"`
	Spot            bool   `json:"spot,omitempty"`
	// Billed from Start (PendingAt) to End; Pending until RunningAt (none:
	// it never ran).
	Start     time.Time  `json:"start"`
	RunningAt *time.Time `json:"runningAt,omitempty"`
	End       time.Time  `json:"end"`
	// Open: the group has not ended; End is when it was read.
	Open bool `json:"open,omitempty"`
	// A sum (IsSum, docs/billing.md) holds the usage of short groups of one
	// tenant in one UTC hour and price period, folded after the usage
	// detail period: Start..End is that hour (or its part in the period).
	// Groups began in it; Continued began in the hour before, and are
	// counted here only in a bill line whose window starts after that
	// hour's start. The fields
	// above that a bill groups by (tags, node, size) are those of its
	// groups; a sum of the rest keeps only those with few values. The
	// billed seconds, resource-seconds and exact cost (a fraction,
	// "num/den") are below, all of them in the period that holds Start.
	Groups                 int    `json:"groups,omitempty"`
	Continued              int    `json:"continued,omitempty"`
	PendingSeconds         int64  `json:"pendingSeconds,omitempty"`
	RunningSeconds         int64  `json:"runningSeconds,omitempty"`
	MilliCPUSeconds        int64  `json:"milliCPUSeconds,omitempty"`
	MemoryMiBSeconds       int64  `json:"memoryMiBSeconds,omitempty"`
	GPUSeconds             int64  `json:"gpuSeconds,omitempty"`
	ExtraStorageGiBSeconds int64  `json:"extraStorageGiBSeconds,omitempty"`
	Amount                 string `json:"amount,omitempty"`
}

// IsSum tells whether u is a sum of short groups' usage.
func (u *UsageRecord) IsSum() bool { return u.Groups > 0 || u.Continued > 0 }

// IsPart tells whether u is one of the records of a group split by a tag
// change (GROUP@START), not its whole usage or its last part. Its id may
// carry its tenant (TENANT/GROUP@START) or not.
func (u *UsageRecord) IsPart() bool {
	return u.Group != "" && strings.TrimPrefix(u.Metadata.ID, u.Metadata.Tenant+"/") != u.Group
}

// SumIn tells whether sum u is billed in [from, to): all of it is in the
// period that holds its Start.
func (u *UsageRecord) SumIn(from, to time.Time) bool {
	s := u.Start.Unix()
	return s >= from.Unix() && s < to.Unix()
}

// ResourceSeconds are the vCPU (milli), memory (MiB), GPU and extra
// storage (GiB) seconds of secs billed seconds of u; a sum's are its
// totals (secs being all of its seconds).
func (u *UsageRecord) ResourceSeconds(secs int64) (milliCPU, memoryMiB, gpu, storageGiB int64) {
	if u.IsSum() {
		return u.MilliCPUSeconds, u.MemoryMiBSeconds, u.GPUSeconds, u.ExtraStorageGiBSeconds
	}
	return secs * u.MilliCPU, secs * u.MemoryMiB, secs * int64(u.GPU), secs * int64(u.ExtraStorageGiB)
}

// Meta returns the record's metadata.
func (u *UsageRecord) Meta() *ObjectMeta { return &u.Metadata }

// UsageOf is what g is billed for up to now: false when it never was
// (it never left Scheduling).
func UsageOf(g *ContainerGroup, now time.Time) (UsageRecord, bool) {
	st := &g.Status
	if st.PendingAt == nil {
		return UsageRecord{}, false
	}
	u := UsageRecord{
		Metadata: ObjectMeta{ID: g.Metadata.ID, Tenant: g.Metadata.Tenant, CreatedAt: now},
		Group:    g.Metadata.ID, Name: g.Metadata.Name, Tags: g.Spec.Tags, VirtualNode: g.Metadata.Labels[LabelVirtualNode],
		Zone: st.Zone, Host: st.Host, InstanceType: g.Spec.InstanceType, InstanceSpec: st.InstanceSpec,
		MilliCPU: st.MilliCPU, MemoryMiB: st.MemoryMiB, GPU: g.Spec.GPU, GPUModel: st.GPUModel, ExtraStorageGiB: g.Spec.ExtraEphemeralStorage,
		Spot: g.Spec.Spot(), Start: *st.PendingAt, RunningAt: st.RunningAt, End: now,
	}
	if st.BillingFrom != nil && st.BillingFrom.After(u.Start) {
		u.Start = *st.BillingFrom
	}
	if st.FinishedAt != nil {
		u.End = *st.FinishedAt
	} else {
		u.Open = true
	}
	if u.End.Before(u.Start) {
		u.End = u.Start
	}
	return u, true
}

// Seconds are the whole seconds of [from, to) the record was billed,
// while Pending and afterwards (Running, Restarting, Updating,
// Terminating). Time is cut at whole seconds of the Unix clock, so the
// seconds of adjacent periods add up to those of their union.
//
// A sum's seconds are all in the period that holds its Start: a bill's
// bounds within such an hour count them where it begins.
func (u *UsageRecord) Seconds(from, to time.Time) (pending, running int64) {
	if u.IsSum() {
		if u.SumIn(from, to) {
			return u.PendingSeconds, u.RunningSeconds
		}
		return 0, 0
	}
	s, e := u.Start.Unix(), u.End.Unix()
	r := e
	if u.RunningAt != nil {
		r = min(max(u.RunningAt.Unix(), s), e)
	}
	clip := func(a, b int64) int64 { return max(0, min(b, to.Unix())-max(a, from.Unix())) }
	return clip(s, r), clip(r, e)
}

// Bill is usage and cost over a period (GET /v1/bill): one line per key
// (the group, tenant, tag value, virtual node or size: By) and period
// (Granularity), a total rounded to the cent.
type Bill struct {
	From        time.Time  `json:"from"`
	To          time.Time  `json:"to"`
	Granularity string     `json:"granularity,omitempty"`
	By          string     `json:"by"`
	Currency    string     `json:"currency"`
	Lines       []BillLine `json:"lines"`
	// Total is the sum of the lines' amounts, rounded to the cent (half
	// away from zero), as an invoice rounds: never during metering.
	Total string `json:"total"`
}

// BillLine is one key's usage and cost in one period.
type BillLine struct {
	Key string `json:"key"`
	// Period starts the line's hour, day or month (none without granularity).
	Period         *time.Time `json:"period,omitempty"`
	Groups         int        `json:"groups"`
	PendingSeconds int64      `json:"pendingSeconds"`
	RunningSeconds int64      `json:"runningSeconds"`
	// Resource-seconds at the size the groups ran at, exact: vCPU-seconds
	// are MilliCPUSeconds / 1000, GiB-seconds MemoryMiBSeconds / 1024.
	MilliCPUSeconds        int64 `json:"milliCPUSeconds"`
	MemoryMiBSeconds       int64 `json:"memoryMiBSeconds"`
	GPUSeconds             int64 `json:"gpuSeconds,omitempty"`
	ExtraStorageGiBSeconds int64 `json:"extraStorageGiBSeconds,omitempty"`
	// Amount is the exact cost, with 10 decimals.
	Amount string `json:"amount"`
}

// Granularities of a bill's lines.
const (
	GranularityHour  = "hour"
	GranularityDay   = "day"
	GranularityMonth = "month"
)

// VirtualNodeHeartbeat is what a virtual node sends while it is Ready
// (PUT /v1/virtualnodes/{name}): it is billed as one instance of
// VirtualNodeMilliCPU and VirtualNodeMemoryMiB while its heartbeats keep
// coming (docs/billing.md).
type VirtualNodeHeartbeat struct {
	// Tags allocate its cost (at most MaxTags).
	Tags map[string]string `json:"tags,omitempty"`
}

// A virtual node is billed as an instance of this size while it is Ready
// (docs/spec.md section 10).
const (
	VirtualNodeMilliCPU  = 2000
	VirtualNodeMemoryMiB = 8192
)

// ValidateVirtualNodeHeartbeat checks a virtual node's name and tags.
func ValidateVirtualNodeHeartbeat(name string, hb *VirtualNodeHeartbeat) error {
	e := &errs{}
	// A node's name is a DNS subdomain: labels joined by dots.
	if name == "" || len(name) > 253 {
		e.add("metadata.name", "%q is not allowed; allowed: a node name of 1 to 253 characters", name)
	}
	for _, label := range strings.Split(name, ".") {
		if name != "" && len(name) <= 253 && (label == "" || len(label) > 63 || !dnsLabel.MatchString(label)) {
			e.add("metadata.name", "%q is not allowed; allowed: lowercase letters, digits, '-' and '.', as a Kubernetes node's name", name)
			break
		}
	}
	if len(hb.Tags) > MaxTags {
		e.add("tags", "%d tags is too many; allowed: at most %d", len(hb.Tags), MaxTags)
	}
	e.labels("tags", hb.Tags, "tag")
	return e.result()
}

// decimalRE is how prices and amounts are written: digits, a point, digits
// (math/big would also take 1e-6, 0x10, 1/8 or 1_000).
var decimalRE = regexp.MustCompile(`^-?[0-9]+(\.[0-9]+)?$`)

// IsDecimal tells whether s is a plain decimal number ("0.0000077", "-1").
func IsDecimal(s string) bool { return len(s) <= 64 && decimalRE.MatchString(s) }
