package v1

// StatusReport is the body of PUT /v1/containergroups/{id}/status: what an
// agent reports of a group it runs.
type StatusReport struct {
	// State: Pending (pulling, mounting), Running, Restarting, Succeeded or
	// Failed. Terminating is the server's to set.
	State               State             `json:"state"`
	Reason              string            `json:"reason,omitempty"`
	Message             string            `json:"message,omitempty"`
	InitContainers      []ContainerStatus `json:"initContainers,omitempty"`
	Containers          []ContainerStatus `json:"containers,omitempty"`
	EphemeralContainers []ContainerStatus `json:"ephemeralContainers,omitempty"`
	Conditions          []Condition       `json:"conditions,omitempty"`
}

// GroupUpdate is the body of PATCH /v1/containergroups/{id}
// (UpdateContainerGroup). Nil fields are left as they are.
type GroupUpdate struct {
	Labels map[string]string `json:"labels,omitempty"`
	Tags   map[string]string `json:"tags,omitempty"`
	// Files replaces the payload of files volumes, by volume name; the agent
	// rewrites the files in place.
	Files map[string]FilesVolume `json:"files,omitempty"`
	// Images changes containers' images, by container name (app or init):
	// a running container whose image changed is stopped and started
	// again with the new one, as a kubelet does when a pod's image
	// changes.
	Images map[string]string `json:"images,omitempty"`
	// ActiveDeadlineSeconds sets the group's deadline, or lowers it, as a
	// pod's may only be set or lowered; a higher one is refused.
	ActiveDeadlineSeconds *int64 `json:"activeDeadlineSeconds,omitempty"`
	// Resources changes app containers' CPU and memory, by container name
	// (in-place resize): within the group's size, never beyond it (a
	// larger one is refused). Each container takes it by its
	// resizePolicy.
	Resources map[string]ContainerResources `json:"resources,omitempty"`
	// EphemeralContainers adds these to the group (kubectl debug); one
	// given again as it is changes nothing, and none is changed or
	// removed.
	EphemeralContainers []EphemeralContainer `json:"ephemeralContainers,omitempty"`
	// ResourceVersion, when set, must be the group's current version.
	ResourceVersion string `json:"resourceVersion,omitempty"`
}

// ContainerResources are a container's CPU (vCPU) and memory (GiB); zero:
// bounded by the group's size alone.
type ContainerResources struct {
	CPU    float64 `json:"cpu"`
	Memory float64 `json:"memory"`
}

// HostUpdate is the body of PATCH /v1/hosts/{name}: cordon, uncordon, drain.
type HostUpdate struct {
	Unschedulable *bool `json:"unschedulable,omitempty"`
	Draining      *bool `json:"draining,omitempty"`
	// WarmPoolTarget sets the host's warm pool size (0 to
	// MaxWarmPoolSize), replacing its agent's; -1 gives it back to the
	// agent's.
	WarmPoolTarget *int `json:"warmPoolTarget,omitempty"`
}
