package v1

// Tenant owns container groups and has a quota.
type Tenant struct {
	Metadata ObjectMeta `json:"metadata"`
	Spec     TenantSpec `json:"spec"`
}

// TenantSpec is the tenant's quota: zero means unlimited.
type TenantSpec struct {
	Quota Quota `json:"quota"`
}

// Quota bounds what a tenant's live groups may hold at once.
type Quota struct {
	MilliCPU  int64 `json:"milliCPU,omitempty"`
	MemoryMiB int64 `json:"memoryMiB,omitempty"`
	GPU       int   `json:"gpu,omitempty"`
	Groups    int   `json:"groups,omitempty"`
}
