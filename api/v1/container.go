package v1

// Container is one container of a group.
type Container struct {
	Name  string `json:"name"`
	Image string `json:"image"`
	// ImagePullPolicy: Always, IfNotPresent (default), Never.
	ImagePullPolicy PullPolicy `json:"imagePullPolicy,omitempty"`
	Command         []string   `json:"command,omitempty"`
	Args            []string   `json:"args,omitempty"`
	WorkingDir      string     `json:"workingDir,omitempty"`
	Env             []EnvVar   `json:"env,omitempty"`
	// ExpandEnv expands $(NAME) references, as the kubelet does, when the
	// host starts the container: in each env value from the variables
	// before it, then in command, args and volume mounts' subPathExpr from
	// them all; $$ is a literal $ and a name not defined stays as written.
	// A virtual node sets it (and escapes the values it resolved).
	ExpandEnv bool   `json:"expandEnv,omitempty"`
	Ports     []Port `json:"ports,omitempty"`

	// CPU (vCPU) and Memory (GiB) of this container, within the group's size.
	CPU    float64 `json:"cpu,omitempty"`
	Memory float64 `json:"memory,omitempty"`
	GPU    int     `json:"gpu,omitempty"`
	// ResizePolicy says, per resource, what a change of CPU or memory
	// (GroupUpdate.Resources) does to the running container: applied in
	// place (NotRequired, the default) or by restarting it
	// (RestartContainer), as a pod's resizePolicy.
	ResizePolicy []ResizePolicy `json:"resizePolicy,omitempty"`

	StartupProbe   *Probe     `json:"startupProbe,omitempty"`
	LivenessProbe  *Probe     `json:"livenessProbe,omitempty"`
	ReadinessProbe *Probe     `json:"readinessProbe,omitempty"`
	Lifecycle      *Lifecycle `json:"lifecycle,omitempty"`

	SecurityContext *SecurityContext `json:"securityContext,omitempty"`
	VolumeMounts    []VolumeMount    `json:"volumeMounts,omitempty"`

	Stdin bool `json:"stdin,omitempty"`
	TTY   bool `json:"tty,omitempty"`

	// TerminationMessagePath, when set, is a file the container may write
	// (any user may) whose last 4096 bytes become its terminated state's
	// message; TerminationMessagePolicy FallbackToLogsOnError takes the
	// end of its log when a failed attempt wrote nothing (File: never).
	TerminationMessagePath   string `json:"terminationMessagePath,omitempty"`
	TerminationMessagePolicy string `json:"terminationMessagePolicy,omitempty"`
}

// The termination message policies.
const (
	TerminationMessageFile                  = "File"
	TerminationMessageFallbackToLogsOnError = "FallbackToLogsOnError"
)

// EphemeralContainer is a container added to a running group to look into
// it (kubectl debug): no ports, probes, lifecycle hooks or resources of its
// own. TargetContainerName, when set, names the app container whose
// processes it sees (it joins that container's process namespace).
type EphemeralContainer struct {
	Container
	TargetContainerName string `json:"targetContainerName,omitempty"`
}

// ResizePolicy is a container's answer to a change of one resource.
type ResizePolicy struct {
	// ResourceName: cpu or memory.
	ResourceName string `json:"resourceName"`
	// RestartPolicy: NotRequired or RestartContainer.
	RestartPolicy string `json:"restartPolicy"`
}

// The restart policies of a resize.
const (
	ResizeNotRequired      = "NotRequired"
	ResizeRestartContainer = "RestartContainer"
)

// RestartsOnResize tells whether a change of resource (cpu, memory)
// restarts c.
func (c *Container) RestartsOnResize(resource string) bool {
	for _, p := range c.ResizePolicy {
		if p.ResourceName == resource {
			return p.RestartPolicy == ResizeRestartContainer
		}
	}
	return false
}

// PullPolicy says when an image is pulled.
type PullPolicy string

const (
	PullAlways       PullPolicy = "Always"
	PullIfNotPresent PullPolicy = "IfNotPresent"
	PullNever        PullPolicy = "Never"
)

// EnvVar is one environment variable: a value, or a field only the host
// knows when the container starts.
type EnvVar struct {
	Name     string       `json:"name"`
	Value    string       `json:"value"`
	FieldRef *EnvFieldRef `json:"fieldRef,omitempty"`
}

// EnvFieldRef names a field of the running group: status.podIP (its IPv4
// address) or status.podIPs (its addresses, IPv4 first, comma-separated),
// as the downward API's.
type EnvFieldRef struct {
	FieldPath string `json:"fieldPath"`
}

// Port is a port the container listens on.
type Port struct {
	Name          string `json:"name,omitempty"`
	ContainerPort int32  `json:"containerPort"`
	// Protocol: TCP (default), UDP, SCTP.
	Protocol string `json:"protocol,omitempty"`
}

// Probe checks a container: exactly one of Exec, HTTPGet, TCPSocket, GRPC.
type Probe struct {
	Exec      *ExecAction      `json:"exec,omitempty"`
	HTTPGet   *HTTPGetAction   `json:"httpGet,omitempty"`
	TCPSocket *TCPSocketAction `json:"tcpSocket,omitempty"`
	GRPC      *GRPCAction      `json:"grpc,omitempty"`

	InitialDelaySeconds int32 `json:"initialDelaySeconds,omitempty"`
	PeriodSeconds       int32 `json:"periodSeconds,omitempty"`
	TimeoutSeconds      int32 `json:"timeoutSeconds,omitempty"`
	SuccessThreshold    int32 `json:"successThreshold,omitempty"`
	FailureThreshold    int32 `json:"failureThreshold,omitempty"`
}

// ExecAction runs a command in the container; exit 0 is success.
type ExecAction struct {
	Command []string `json:"command"`
}

// HTTPGetAction GETs a path; 200-399 is success.
type HTTPGetAction struct {
	Path        string       `json:"path,omitempty"`
	Port        int32        `json:"port"`
	Scheme      string       `json:"scheme,omitempty"` // HTTP (default) or HTTPS
	HTTPHeaders []HTTPHeader `json:"httpHeaders,omitempty"`
}

// HTTPHeader is one header of an HTTP probe.
type HTTPHeader struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// TCPSocketAction connects to a port.
type TCPSocketAction struct {
	Port int32 `json:"port"`
}

// GRPCAction calls the gRPC health service.
type GRPCAction struct {
	Port    int32  `json:"port"`
	Service string `json:"service,omitempty"`
}

// Lifecycle hooks: exactly one action each.
type Lifecycle struct {
	PostStart *Handler `json:"postStart,omitempty"`
	PreStop   *Handler `json:"preStop,omitempty"`
}

// Handler is a lifecycle hook action.
type Handler struct {
	Exec      *ExecAction      `json:"exec,omitempty"`
	HTTPGet   *HTTPGetAction   `json:"httpGet,omitempty"`
	TCPSocket *TCPSocketAction `json:"tcpSocket,omitempty"`
	// SleepSeconds pauses (Kubernetes' sleep action).
	SleepSeconds *int64 `json:"sleepSeconds,omitempty"`
}

// SecurityContext is the supported subset of Kubernetes' container security
// context. Privileged is refused: name the capabilities instead.
type SecurityContext struct {
	RunAsUser                *int64        `json:"runAsUser,omitempty"`
	RunAsGroup               *int64        `json:"runAsGroup,omitempty"`
	RunAsNonRoot             *bool         `json:"runAsNonRoot,omitempty"`
	ReadOnlyRootFilesystem   bool          `json:"readOnlyRootFilesystem,omitempty"`
	AllowPrivilegeEscalation *bool         `json:"allowPrivilegeEscalation,omitempty"`
	Privileged               bool          `json:"privileged,omitempty"`
	Capabilities             *Capabilities `json:"capabilities,omitempty"`
	// SeccompProfile: RuntimeDefault or Unconfined.
	SeccompProfile string `json:"seccompProfile,omitempty"`
}

// Capabilities added and dropped, as CAP_X or X.
type Capabilities struct {
	Add  []string `json:"add,omitempty"`
	Drop []string `json:"drop,omitempty"`
}

// VolumeMount puts a volume of the group into a container.
type VolumeMount struct {
	Name      string `json:"name"`
	MountPath string `json:"mountPath"`
	SubPath   string `json:"subPath,omitempty"`
	// SubPathExpr is a subPath with $(NAME) references to the container's
	// env (Container.ExpandEnv's rules), expanded when it starts; the
	// result must be relative and without "..". Not with SubPath.
	SubPathExpr string `json:"subPathExpr,omitempty"`
	ReadOnly    bool   `json:"readOnly,omitempty"`
}

// Volume of a group: exactly one of EmptyDir, Files, NFS.
type Volume struct {
	Name     string          `json:"name"`
	EmptyDir *EmptyDirVolume `json:"emptyDir,omitempty"`
	// Files is a payload written by the agent: what a virtual node sends for
	// configMap, secret, downwardAPI and projected volumes.
	Files *FilesVolume `json:"files,omitempty"`
	NFS   *NFSVolume   `json:"nfs,omitempty"`
	// DataCache mounts a data cache of the tenant, read-only (datacache.go).
	DataCache *DataCacheVolume `json:"dataCache,omitempty"`
}

// EmptyDirVolume is scratch space: on disk, or in memory with Medium "Memory".
type EmptyDirVolume struct {
	Medium       string `json:"medium,omitempty"`
	SizeLimitMiB int64  `json:"sizeLimitMiB,omitempty"`
}

// FilesVolume holds files; updating the group's payload updates them in place.
type FilesVolume struct {
	Files []File `json:"files"`
	// DefaultMode of files without their own (octal 0644 by default).
	DefaultMode *int32 `json:"defaultMode,omitempty"`
}

// File is one file of a FilesVolume; Content is base64 on the wire. Content
// is written, never read back (it may be a secret): only the agent of the
// group's host receives it; others read its SHA256.
type File struct {
	Path    string `json:"path"`
	Content []byte `json:"content,omitempty"`
	Mode    *int32 `json:"mode,omitempty"`
	// SHA256 of the content (hex), set by the server on what it returns.
	SHA256 string `json:"sha256,omitempty"`
}

// NFSVolume mounts an NFS export (the "NAS" case).
type NFSVolume struct {
	Server   string `json:"server"`
	Path     string `json:"path"`
	ReadOnly bool   `json:"readOnly,omitempty"`
}
