package agent

import (
	"fmt"
	"path/filepath"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	apiv1 "github.com/eci-dev/eci/api/v1"
)

// sandboxConfig is the CRI pod sandbox of a group.
func (a *Agent) sandboxConfig(g *apiv1.ContainerGroup) *runtimeapi.PodSandboxConfig {
	hostname := g.Spec.Hostname
	if hostname == "" {
		hostname = g.Metadata.Name
	}
	cfg := &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: g.Metadata.Name, Namespace: g.Metadata.Tenant, Uid: g.Metadata.ID},
		Hostname:     hostname,
		LogDirectory: filepath.Join(a.cfg.LogDir, g.Metadata.ID),
		Labels:       map[string]string{LabelGroup: g.Metadata.ID, LabelManaged: "true"},
		Annotations:  map[string]string{"eci.dev/instance-spec": g.Status.InstanceSpec},
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			CgroupParent: a.groupCgroup(g.Metadata.ID),
			SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
				NamespaceOptions: namespaces(g),
			},
		},
	}
	if len(g.Spec.Sysctls) > 0 {
		cfg.Linux.Sysctls = map[string]string{}
		for _, sc := range g.Spec.Sysctls {
			cfg.Linux.Sysctls[sc.Name] = sc.Value
		}
	}
	return cfg
}

// namespaces are a group's sandbox's and containers' namespaces, as the
// kubelet's for a pod: network and IPC the sandbox's; the process
// namespace the sandbox's with ShareProcessNamespace, else each its own.
func namespaces(g *apiv1.ContainerGroup) *runtimeapi.NamespaceOption {
	pid := runtimeapi.NamespaceMode_CONTAINER
	if g.Spec.ShareProcessNamespace {
		pid = runtimeapi.NamespaceMode_POD
	}
	return &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_POD, Pid: pid, Ipc: runtimeapi.NamespaceMode_POD}
}

// cgroupOf is the cgroup parent of a group's sandbox and containers.
func (a *Agent) cgroupOf(id string) string {
	return filepath.Join("/", a.cfg.CgroupParent, id)
}

// containerConfig is the CRI config of attempt n of container c, made from
// image (the id ensureImage resolved).
func containerConfig(g *apiv1.ContainerGroup, c apiv1.Container, image string, n uint32, init bool, mounts []*runtimeapi.Mount) *runtimeapi.ContainerConfig {
	cfg := &runtimeapi.ContainerConfig{
		Metadata:   &runtimeapi.ContainerMetadata{Name: c.Name, Attempt: n},
		Image:      &runtimeapi.ImageSpec{Image: image, UserSpecifiedImage: c.Image},
		Command:    c.Command,
		Args:       c.Args,
		WorkingDir: c.WorkingDir,
		Labels:     map[string]string{LabelGroup: g.Metadata.ID, LabelContainer: c.Name, LabelManaged: "true", LabelImage: c.Image},
		LogPath:    filepath.Join(c.Name, fmt.Sprintf("%d.log", n)),
		Stdin:      c.Stdin,
		Tty:        c.TTY,
		Linux:      &runtimeapi.LinuxContainerConfig{Resources: resources(g, c)},
		Mounts:     mounts,
	}
	if init {
		cfg.Labels[LabelInit] = "true"
	}
	cfg.Linux.SecurityContext = securityContext(c.SecurityContext)
	cfg.Linux.SecurityContext.NamespaceOptions = namespaces(g)
	for _, e := range c.Env {
		cfg.Envs = append(cfg.Envs, &runtimeapi.KeyValue{Key: e.Name, Value: e.Value})
	}
	return cfg
}

// resources bounds a container: its own cpu/memory when given, else the
// group's size (the group's cgroup bounds them all together).
func resources(g *apiv1.ContainerGroup, c apiv1.Container) *runtimeapi.LinuxContainerResources {
	l := g.Limits(c)
	r := &runtimeapi.LinuxContainerResources{CpuPeriod: 100000, CpuShares: 2}
	if l.MilliCPU > 0 {
		r.CpuQuota, r.CpuShares = l.MilliCPU*100, max(2, l.MilliCPU*1024/1000)
	}
	if l.MemoryMiB > 0 {
		r.MemoryLimitInBytes = l.MemoryMiB << 20
	}
	return r
}

// securityContext maps the supported subset of a container's security
// context (privileged is refused by validation). Without one the container
// gets the runtime's default seccomp profile, as with seccompProfile
// RuntimeDefault.
func securityContext(sc *apiv1.SecurityContext) *runtimeapi.LinuxContainerSecurityContext {
	out := &runtimeapi.LinuxContainerSecurityContext{Seccomp: &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}}
	if sc == nil {
		return out
	}
	if sc.RunAsUser != nil {
		out.RunAsUser = &runtimeapi.Int64Value{Value: *sc.RunAsUser}
	}
	if sc.RunAsGroup != nil {
		out.RunAsGroup = &runtimeapi.Int64Value{Value: *sc.RunAsGroup}
	}
	out.ReadonlyRootfs = sc.ReadOnlyRootFilesystem
	out.NoNewPrivs = sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation
	// Unconfined seccomp and capabilities beyond the allowlist are refused
	// by the API and again before a container is created (checkSecurity).
	if c := sc.Capabilities; c != nil {
		out.Capabilities = &runtimeapi.Capability{AddCapabilities: capNames(c.Add), DropCapabilities: capNames(c.Drop)}
	}
	return out
}

// capNames writes capabilities as CRI wants them: NET_ADMIN, not CAP_NET_ADMIN.
func capNames(in []string) []string {
	out := make([]string, 0, len(in))
	for _, c := range in {
		out = append(out, apiv1.CapabilityName(c))
	}
	return out
}

// checkSecurity refuses what the API refuses of a container's security
// context, again on the host: a group stored before a rule was made, or
// written to the store around the API, must not get more than the rules
// allow.
func checkSecurity(c apiv1.Container) error {
	sc := c.SecurityContext
	if sc == nil {
		return nil
	}
	if sc.Privileged {
		return fmt.Errorf("privileged containers are not supported")
	}
	if msg := apiv1.SeccompRefusal(sc.SeccompProfile); msg != "" {
		return fmt.Errorf("seccompProfile: %s", msg)
	}
	if sc.Capabilities != nil {
		for _, cp := range sc.Capabilities.Add {
			if msg := apiv1.CapabilityRefusal(cp); msg != "" {
				return fmt.Errorf("capabilities.add: %s", msg)
			}
		}
	}
	return nil
}
