package v1

import (
	"fmt"
	"net/netip"
	"time"
)

// EIP is an address of the pool's outer network (the hosts' underlay, the
// service's --eip-range) by which an instance is reached from outside its
// VPC and from which it reaches outside: the host of its instance answers
// for it and translates it (docs/networking.md). A tenant allocates one
// (POST /v1/eips) and names it in a group (spec.eipId: it is bound while
// the group holds its resources), or a group asks for its own
// (spec.withEip), allocated when it is placed and released with it.
type EIP struct {
	Metadata ObjectMeta `json:"metadata"`
	Status   EIPStatus  `json:"status,omitzero"`
}

// EIPID is the id of the EIP of address a: "eip-" and its 8 hex digits.
func EIPID(a netip.Addr) string {
	b := a.As4()
	return fmt.Sprintf("eip-%02x%02x%02x%02x", b[0], b[1], b[2], b[3])
}

// EIPStatus is the server's: the address, the group it is bound to, and
// whether it goes with that group (allocated for it).
type EIPStatus struct {
	Address string `json:"address"`
	GroupID string `json:"groupId,omitempty"`
	// AutoRelease: allocated for its group (spec.withEip), released with it.
	AutoRelease bool `json:"autoRelease,omitempty"`
	// ReleaseAfter: the group ended without its host confirming it; the
	// EIP stays bound (the host may still answer for it) until then.
	ReleaseAfter *time.Time `json:"releaseAfter,omitempty"`
}

// Meta is the EIP's metadata.
func (e *EIP) Meta() *ObjectMeta { return &e.Metadata }
