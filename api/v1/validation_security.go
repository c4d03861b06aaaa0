package v1

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// What a container may ask of the kernel. An instance shares its host's
// kernel with other tenants' instances, so a container gets the runtime's
// default capabilities and may add only those whose power stays inside the
// instance's own namespaces (docs/security.md says why each one is safe and
// why the others are refused). Kubernetes' Pod Security "baseline" is the
// floor: it allows only the default set; the extra ones are what users of
// instance services ask for most (network tools, debuggers, locked memory).

// DefaultCapabilities is the runtime's default set (containerd's, as
// Docker's): every container has them unless it drops them.
var DefaultCapabilities = []string{
	"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
	"NET_BIND_SERVICE", "NET_RAW", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
}

// ExtraCapabilities may be added on top of the default set: each acts only
// on the instance's own network namespace (NET_ADMIN), its own processes
// (SYS_PTRACE: every container has its own PID namespace) or its own memory,
// bounded by its cgroup (IPC_LOCK).
var ExtraCapabilities = []string{"IPC_LOCK", "NET_ADMIN", "SYS_PTRACE"}

var capabilityName = regexp.MustCompile(`^(CAP_)?[A-Z][A-Z0-9_]*$`)

// CapabilityName is c as the runtime writes it: NET_ADMIN, not CAP_NET_ADMIN.
func CapabilityName(c string) string { return strings.TrimPrefix(c, "CAP_") }

// AllowedCapabilities is every capability a container may add, sorted.
func AllowedCapabilities() []string {
	out := append(append([]string{}, DefaultCapabilities...), ExtraCapabilities...)
	slices.Sort(out)
	return out
}

// CapabilityAllowed tells whether c (CAP_X or X) may be added.
func CapabilityAllowed(c string) bool {
	return slices.Contains(DefaultCapabilities, CapabilityName(c)) || slices.Contains(ExtraCapabilities, CapabilityName(c))
}

// CapabilityRefusal says why c may not be added, or "" when it may.
func CapabilityRefusal(c string) string {
	switch {
	case c == "ALL":
		return fmt.Sprintf("ALL may not be added: it would give the container the host kernel's every power; allowed: %s", strings.Join(AllowedCapabilities(), ", "))
	case !capabilityName.MatchString(c):
		return fmt.Sprintf("%q is not a capability name; allowed: NET_ADMIN or CAP_NET_ADMIN style names", c)
	case !CapabilityAllowed(c):
		return fmt.Sprintf("%s may not be added: its power reaches beyond the instance, into the shared host; allowed: %s", CapabilityName(c), strings.Join(AllowedCapabilities(), ", "))
	}
	return ""
}

// SeccompRefusal says why a seccomp profile is refused, or "" when it is
// allowed: every container runs under the runtime's default profile.
func SeccompRefusal(profile string) string {
	switch profile {
	case "", "RuntimeDefault":
		return ""
	case "Unconfined":
		return "Unconfined is not allowed: every container runs under the runtime's default seccomp profile, which keeps the system calls that reach the shared host kernel closed; allowed: RuntimeDefault"
	}
	return fmt.Sprintf("%q is not allowed; allowed: RuntimeDefault", profile)
}

func validateSecurityContext(e *errs, p fpath, sc *SecurityContext) {
	if sc == nil {
		return
	}
	if sc.Privileged {
		e.add(p.child("privileged"), "privileged containers are not supported; use a securityContext with the needed capabilities (capabilities.add) instead")
	}
	if sc.RunAsUser != nil {
		e.nonNegative(p.child("runAsUser"), *sc.RunAsUser)
	}
	if sc.RunAsGroup != nil {
		e.nonNegative(p.child("runAsGroup"), *sc.RunAsGroup)
	}
	if sc.RunAsNonRoot != nil && *sc.RunAsNonRoot && sc.RunAsUser != nil && *sc.RunAsUser == 0 {
		e.add(p.child("runAsUser"), "0 (root) contradicts runAsNonRoot: true")
	}
	if msg := SeccompRefusal(sc.SeccompProfile); msg != "" {
		e.add(p.child("seccompProfile"), "%s", msg)
	}
	if sc.Capabilities == nil {
		return
	}
	for i, c := range sc.Capabilities.Add {
		if msg := CapabilityRefusal(c); msg != "" {
			e.add(p.child("capabilities").child("add").index(i), "%s", msg)
		}
	}
	for i, c := range sc.Capabilities.Drop {
		if c != "ALL" && !capabilityName.MatchString(c) {
			e.add(p.child("capabilities").child("drop").index(i), "%q is not a capability name; allowed: NET_ADMIN or CAP_NET_ADMIN style names, or ALL", c)
		}
	}
}
