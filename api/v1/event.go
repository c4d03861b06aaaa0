package v1

import "time"

// Event records something that happened to a group or a host.
type Event struct {
	Metadata ObjectMeta `json:"metadata"`
	// Object is what the event is about.
	Object ObjectReference `json:"object"`
	// Type is Normal or Warning.
	Type string `json:"type"`
	// Reason is a CamelCase word: Scheduled, ScheduleFailed, Pulling, Pulled,
	// Created, Started, Killing, BackOff, Unhealthy, Evicted, HostLost, ...
	Reason  string `json:"reason"`
	Message string `json:"message"`
	// Container names the group's container it is about, if one (a
	// virtual node's pod Event then refers to it: spec.containers{name}).
	Container string `json:"container,omitempty"`
	// Count of occurrences folded into this event, FirstTime to LastTime.
	Count     int       `json:"count"`
	FirstTime time.Time `json:"firstTime"`
	LastTime  time.Time `json:"lastTime"`
	// Source is the component that recorded it: server, agent/<host>, vnode/<name>.
	Source string `json:"source,omitempty"`
}

// ObjectReference names a resource.
type ObjectReference struct {
	Kind string `json:"kind"` // ContainerGroup or Host
	ID   string `json:"id"`
}

// Event types.
const (
	EventNormal  = "Normal"
	EventWarning = "Warning"
)
