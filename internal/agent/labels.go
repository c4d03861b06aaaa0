package agent

// Labels the agent puts on sandboxes and containers.
const (
	// LabelGroup holds the container group id.
	LabelGroup = "eci.dev/group"
	// LabelContainer holds the container's name in the group spec.
	LabelContainer = "eci.dev/container"
	// LabelInit marks init containers.
	LabelInit = "eci.dev/init"
	// LabelImage holds the image the container was made of, as the spec
	// names it (a changed one restarts the container).
	LabelImage = "eci.dev/image"
	// LabelManaged marks everything this agent created.
	LabelManaged = "eci.dev/managed"
)
