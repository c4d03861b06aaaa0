package v1

// Tenant owns container groups and has a quota.
type Tenant struct {
	Metadata ObjectMeta `json:"metadata"`
	Spec     TenantSpec `json:"spec"`
}

// TenantSpec is the tenant's quota (zero means unlimited) and spending
// limit (none: unlimited).
type TenantSpec struct {
	Quota         Quota          `json:"quota"`
	SpendingLimit *SpendingLimit `json:"spendingLimit,omitempty"`
}

// SpendingLimit bounds what a tenant's groups are billed for in a period
// (docs/billing.md): once reached, its new groups are refused (402)
// until the period ends or the limit is raised; running ones go on.
type SpendingLimit struct {
	// Amount in the price book's currency, a decimal ("250.00").
	Amount string `json:"amount"`
	// Period is day or month (UTC; month when empty).
	Period string `json:"period,omitempty"`
}

// Quota bounds what a tenant's live groups may hold at once.
type Quota struct {
	MilliCPU  int64 `json:"milliCPU,omitempty"`
	MemoryMiB int64 `json:"memoryMiB,omitempty"`
	GPU       int   `json:"gpu,omitempty"`
	Groups    int   `json:"groups,omitempty"`
}
