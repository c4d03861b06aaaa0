package v1

import "time"

// ObjectMeta is common to every stored resource.
type ObjectMeta struct {
	// ID is assigned by the server: "eci-" and 16 hex digits for groups, the
	// name for hosts, vSwitches and tenants.
	ID string `json:"id,omitempty"`
	// Name is chosen by the client; for groups it need not be unique.
	Name string `json:"name"`
	// Tenant owns the resource; set by the server from the caller's token.
	Tenant string            `json:"tenant,omitempty"`
	Labels map[string]string `json:"labels,omitempty"`
	// ResourceVersion changes on every write; an update must carry the version it
	// read (optimistic concurrency). Watches resume from it.
	ResourceVersion string    `json:"resourceVersion,omitempty"`
	CreatedAt       time.Time `json:"createdAt,omitzero"`
	// DeletionRequestedAt is set when a graceful delete starts; the agent stops
	// the group within DeletionGracePeriodSeconds, then the server removes it.
	DeletionRequestedAt        *time.Time `json:"deletionRequestedAt,omitempty"`
	DeletionGracePeriodSeconds *int64     `json:"deletionGracePeriodSeconds,omitempty"`
}

// List is a page of resources. Continue, when set, fetches the next page.
type List[T any] struct {
	Items           []T    `json:"items"`
	ResourceVersion string `json:"resourceVersion"`
	Continue        string `json:"continue,omitempty"`
}

// WatchEventType says what happened to the object of a WatchEvent.
type WatchEventType string

const (
	Added    WatchEventType = "ADDED"
	Modified WatchEventType = "MODIFIED"
	Deleted  WatchEventType = "DELETED"
	// Bookmark carries only a resourceVersion to resume from.
	Bookmark WatchEventType = "BOOKMARK"
)

// WatchEvent is one line of a watch stream (newline-delimited JSON).
type WatchEvent[T any] struct {
	Type   WatchEventType `json:"type"`
	Object T              `json:"object"`
}

// Status is the body of every error answer.
type Status struct {
	// Code is the HTTP status code.
	Code int `json:"code"`
	// Reason is a machine-readable kind: Invalid, NotFound, AlreadyExists,
	// Conflict, Gone, Unauthorized, Forbidden, TooManyRequests, Internal.
	Reason  string `json:"reason"`
	Message string `json:"message"`
	// Fields lists every invalid field of an Invalid request.
	Fields FieldErrors `json:"fields,omitempty"`
}
