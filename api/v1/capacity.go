package v1

// Capacity is what the pool can place for the caller (GET /v1/capacity):
// a virtual node's allocatable follows it, so that the cluster's scheduler
// keeps Pending what the pool cannot run.
type Capacity struct {
	// Pool is the allocatable of the Ready, schedulable hosts, summed; Free
	// is what of it no group holds; LargestFree is the most one of them has
	// free (a group runs on one host).
	Pool        Resources `json:"pool"`
	Free        Resources `json:"free"`
	LargestFree Resources `json:"largestFree"`
	// Used is what the caller's groups hold (a tenant's; the whole pool's
	// for the admin) and Quota its tenant's quota (zero: unlimited).
	Used  Resources `json:"used"`
	Quota Quota     `json:"quota"`
}
