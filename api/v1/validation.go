package v1

import (
	"net/netip"
	"path"
	"regexp"
	"slices"
	"strings"
)

// Limits per instance (docs/spec.md section 3).
const (
	MaxContainers = 20 // init containers and containers together
	MaxVolumes    = 20
	MaxSpecs      = 5
	MaxSecGroups  = 5
	// MaxFixedIPRetainHours bounds how long a fixed IP is kept (a year).
	MaxFixedIPRetainHours = 8760
	// MinBandwidth and MaxBandwidth bound an instance's bandwidth limits,
	// in bits per second.
	MinBandwidth   = 1e3
	MaxBandwidth   = 32e9
	MaxTags        = 20
	MaxNameservers = 3
	// MaxExtraEphemeralStorage in GiB.
	MaxExtraEphemeralStorage = 2048
	// MaxFilesBytes bounds the content of a group's files volumes together
	// (base64 in JSON, they must fit a 1 MiB body and etcd's request limit).
	MaxFilesBytes = 768 << 10
)

var (
	eipID = regexp.MustCompile(`^eip-[0-9a-f]{8}$`)
	// ImageCacheIDPattern is the form of an image cache's id.
	ImageCacheIDPattern = regexp.MustCompile(`^imc-[0-9a-f]{16}$`)
	// DataCacheIDPattern is the form of a data cache's id.
	DataCacheIDPattern = regexp.MustCompile(`^edc-[0-9a-f]{16}$`)
	fixedIPKey         = regexp.MustCompile(`^[a-z0-9]([-a-z0-9./]*[a-z0-9])?$`)
	dnsLabel           = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	// dnsSubdomain is RFC 1123's (its length checked apart).
	dnsSubdomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	envName      = regexp.MustCompile(`^[-._a-zA-Z][-._a-zA-Z0-9]*$`)
	hostPort     = regexp.MustCompile(`^[a-zA-Z0-9]([-.a-zA-Z0-9]*[a-zA-Z0-9])?(:[0-9]{1,5})?$`)
)

func (e *errs) dnsLabel(p fpath, v string, max int) {
	if v == "" {
		e.required(p, "a name of lowercase letters, digits and '-'")
		return
	}
	if len(v) > max || !dnsLabel.MatchString(v) {
		e.add(p, "%q is not allowed; allowed: up to %d lowercase letters, digits and '-', starting and ending with a letter or digit", v, max)
	}
}

func (e *errs) port(p fpath, v int32) {
	if v < 1 || v > 65535 {
		e.add(p, "%d is not a port; allowed: 1-65535", v)
	}
}

func (e *errs) nonNegative(p fpath, v int64) {
	if v < 0 {
		e.add(p, "%d is negative; allowed: 0 or more", v)
	}
}

func (e *errs) ipv4(p fpath, v string) {
	a, err := netip.ParseAddr(v)
	if err != nil || !a.Is4() {
		e.add(p, "%q is not an IPv4 address", v)
	}
}

func (e *errs) hostPorts(p fpath, list []string) {
	for i, h := range list {
		if !hostPort.MatchString(h) {
			e.add(p.index(i), "%q is not a registry address; allowed: host or host:port", h)
		}
	}
}

func (e *errs) labels(p fpath, m map[string]string, what string) {
	for k, v := range m {
		if k == "" || len(k) > 128 {
			e.add(p.key(k), "%s keys must be 1-128 characters", what)
		}
		if len(v) > 256 {
			e.add(p.key(k), "%s values must be at most 256 characters", what)
		}
	}
}

// ValidateMetadataName checks a group's name.
func validateName(e *errs, p fpath, name string) {
	e.dnsLabel(p, name, 128)
}

func validateProbe(e *errs, p fpath, pr *Probe) {
	if pr == nil {
		return
	}
	n := 0
	if pr.Exec != nil {
		n++
		validateExec(e, p.child("exec"), pr.Exec)
	}
	if pr.HTTPGet != nil {
		n++
		validateHTTPGet(e, p.child("httpGet"), pr.HTTPGet)
	}
	if pr.TCPSocket != nil {
		n++
		e.port(p.child("tcpSocket").child("port"), pr.TCPSocket.Port)
	}
	if pr.GRPC != nil {
		n++
		e.port(p.child("grpc").child("port"), pr.GRPC.Port)
	}
	if n != 1 {
		e.add(p, "exactly one of exec, httpGet, tcpSocket, grpc must be set (found %d)", n)
	}
	for name, v := range map[string]int32{
		"initialDelaySeconds": pr.InitialDelaySeconds, "periodSeconds": pr.PeriodSeconds,
		"timeoutSeconds": pr.TimeoutSeconds, "successThreshold": pr.SuccessThreshold, "failureThreshold": pr.FailureThreshold,
	} {
		e.nonNegative(p.child(name), int64(v))
	}
}

func validateExec(e *errs, p fpath, x *ExecAction) {
	if len(x.Command) == 0 {
		e.required(p.child("command"), "the command to run, as an array")
	}
}

func validateHTTPGet(e *errs, p fpath, h *HTTPGetAction) {
	e.port(p.child("port"), h.Port)
	e.oneOf(p.child("scheme"), h.Scheme, "", "HTTP", "HTTPS")
	if h.Path != "" && !strings.HasPrefix(h.Path, "/") {
		e.add(p.child("path"), "%q must start with /", h.Path)
	}
}

func validateHandler(e *errs, p fpath, h *Handler) {
	if h == nil {
		return
	}
	n := 0
	if h.Exec != nil {
		n++
		validateExec(e, p.child("exec"), h.Exec)
	}
	if h.HTTPGet != nil {
		n++
		validateHTTPGet(e, p.child("httpGet"), h.HTTPGet)
	}
	if h.TCPSocket != nil {
		n++
		e.port(p.child("tcpSocket").child("port"), h.TCPSocket.Port)
	}
	if h.SleepSeconds != nil {
		n++
		e.nonNegative(p.child("sleepSeconds"), *h.SleepSeconds)
	}
	if n != 1 {
		e.add(p, "exactly one of exec, httpGet, tcpSocket, sleepSeconds must be set (found %d)", n)
	}
}

func validateVolume(e *errs, p fpath, v Volume) {
	e.dnsLabel(p.child("name"), v.Name, 63)
	n := 0
	if v.EmptyDir != nil {
		n++
		e.oneOf(p.child("emptyDir").child("medium"), v.EmptyDir.Medium, "", "Memory")
		e.nonNegative(p.child("emptyDir").child("sizeLimitMiB"), v.EmptyDir.SizeLimitMiB)
	}
	if v.Files != nil {
		n++
		fp := p.child("files")
		if v.Files.DefaultMode != nil && (*v.Files.DefaultMode < 0 || *v.Files.DefaultMode > 0o777) {
			e.add(fp.child("defaultMode"), "%#o is not a file mode; allowed: 0 to 0777", *v.Files.DefaultMode)
		}
		seen := map[string]bool{}
		for i, f := range v.Files.Files {
			ip := fp.child("files").index(i)
			clean := path.Clean(f.Path)
			if f.Path == "" || strings.HasPrefix(f.Path, "/") || clean == ".." || strings.HasPrefix(clean, "../") {
				e.add(ip.child("path"), "%q is not allowed; allowed: a relative path inside the volume, without ..", f.Path)
			}
			if seen[clean] {
				e.add(ip.child("path"), "%q appears twice", f.Path)
			}
			seen[clean] = true
			if f.Mode != nil && (*f.Mode < 0 || *f.Mode > 0o777) {
				e.add(ip.child("mode"), "%#o is not a file mode; allowed: 0 to 0777", *f.Mode)
			}
			if f.SHA256 != "" && len(f.Content) > 0 {
				// (Without content it is what the service keeps of an ended
				// group's file, or an echo an update resolves.)
				e.add(ip.child("sha256"), "is set by the service on what it returns; send the file's content alone")
			}
		}
	}
	if v.NFS != nil {
		n++
		if v.NFS.Server == "" {
			e.required(p.child("nfs").child("server"), "the NFS server's address")
		}
		if !strings.HasPrefix(v.NFS.Path, "/") {
			e.add(p.child("nfs").child("path"), "%q must be an absolute export path", v.NFS.Path)
		}
	}
	if v.DataCache != nil {
		n++
		dp := p.child("dataCache")
		if v.DataCache.Bucket != "" {
			e.dnsLabel(dp.child("bucket"), v.DataCache.Bucket, 63)
		}
		e.dataCachePath(dp.child("path"), v.DataCache.Path)
	}
	if n != 1 {
		e.add(p, "exactly one of emptyDir, files, nfs, dataCache must be set (found %d); hostPath is not supported: use emptyDir, a disk, an NFS volume or a data cache", n)
	}
}

// validateContainerPolicies checks what a container says of its
// termination message and its resizes.
func validateContainerPolicies(e *errs, p fpath, c Container) {
	if tp := c.TerminationMessagePath; tp != "" && (!path.IsAbs(tp) || len(tp) > 4096 || slices.Contains(strings.Split(tp, "/"), "..") ||
		path.Clean(tp) == "/" || strings.HasPrefix(path.Clean(tp)+"/", "/proc/") || strings.HasPrefix(path.Clean(tp)+"/", "/sys/")) {
		e.add(p.child("terminationMessagePath"), "%q is not allowed; allowed: an absolute path of a file without '..', outside /proc and /sys, up to 4096 characters", tp)
	}
	e.oneOf(p.child("terminationMessagePolicy"), c.TerminationMessagePolicy, "", TerminationMessageFile, TerminationMessageFallbackToLogsOnError)
	seen := map[string]bool{}
	for i, rp := range c.ResizePolicy {
		pp := p.child("resizePolicy").index(i)
		e.oneOf(pp.child("resourceName"), rp.ResourceName, "cpu", "memory")
		e.oneOf(pp.child("restartPolicy"), rp.RestartPolicy, ResizeNotRequired, ResizeRestartContainer)
		if seen[rp.ResourceName] {
			e.add(pp.child("resourceName"), "%q appears twice", rp.ResourceName)
		}
		seen[rp.ResourceName] = true
	}
}

func validateContainer(e *errs, p fpath, c Container, volumes map[string]bool, names map[string]bool, init bool) {
	e.dnsLabel(p.child("name"), c.Name, 63)
	if c.Name != "" && names[c.Name] {
		e.add(p.child("name"), "%q is used by another container of the group", c.Name)
	}
	names[c.Name] = true
	if strings.TrimSpace(c.Image) == "" || strings.ContainsAny(c.Image, " \t\n") {
		e.add(p.child("image"), "%q is not an image reference; allowed: [registry/]repository[:tag][@digest]", c.Image)
	}
	e.oneOf(p.child("imagePullPolicy"), string(c.ImagePullPolicy), "", string(PullAlways), string(PullIfNotPresent), string(PullNever))
	for i, env := range c.Env {
		if !envName.MatchString(env.Name) {
			e.add(p.child("env").index(i).child("name"), "%q is not allowed; allowed: letters, digits, '_', '-', '.', not starting with a digit", env.Name)
		}
		if env.FieldRef != nil {
			e.oneOf(p.child("env").index(i).child("fieldRef").child("fieldPath"), env.FieldRef.FieldPath, "status.podIP", "status.podIPs")
			if env.Value != "" {
				e.add(p.child("env").index(i).child("value"), "set with fieldRef; allowed: one of them")
			}
		}
	}
	portNames := map[string]bool{}
	for i, port := range c.Ports {
		pp := p.child("ports").index(i)
		e.port(pp.child("containerPort"), port.ContainerPort)
		e.oneOf(pp.child("protocol"), port.Protocol, "", "TCP", "UDP", "SCTP")
		if port.Name != "" {
			if portNames[port.Name] {
				e.add(pp.child("name"), "%q appears twice", port.Name)
			}
			portNames[port.Name] = true
		}
	}
	if c.CPU < 0 || c.CPU > 64 {
		e.add(p.child("cpu"), "%v is not allowed; allowed: 0 to 64 vCPU", c.CPU)
	}
	if c.Memory < 0 || c.Memory > 512 {
		e.add(p.child("memory"), "%v is not allowed; allowed: 0 to 512 GiB", c.Memory)
	}
	e.nonNegative(p.child("gpu"), int64(c.GPU))
	validateContainerPolicies(e, p, c)
	if init && (c.LivenessProbe != nil || c.ReadinessProbe != nil || c.StartupProbe != nil || c.Lifecycle != nil) {
		e.add(p, "init containers may not have probes or lifecycle hooks")
	}
	validateProbe(e, p.child("startupProbe"), c.StartupProbe)
	validateProbe(e, p.child("livenessProbe"), c.LivenessProbe)
	validateProbe(e, p.child("readinessProbe"), c.ReadinessProbe)
	if c.Lifecycle != nil {
		validateHandler(e, p.child("lifecycle").child("postStart"), c.Lifecycle.PostStart)
		validateHandler(e, p.child("lifecycle").child("preStop"), c.Lifecycle.PreStop)
	}
	validateSecurityContext(e, p.child("securityContext"), c.SecurityContext)
	mounts := map[string]bool{}
	for i, m := range c.VolumeMounts {
		mp := p.child("volumeMounts").index(i)
		if !volumes[m.Name] {
			e.add(mp.child("name"), "%q is not a volume of the group", m.Name)
		}
		if !strings.HasPrefix(m.MountPath, "/") {
			e.add(mp.child("mountPath"), "%q must be an absolute path", m.MountPath)
		} else if mounts[path.Clean(m.MountPath)] {
			e.add(mp.child("mountPath"), "%q is mounted twice", m.MountPath)
		}
		mounts[path.Clean(m.MountPath)] = true
		if !RelativeSubPath(m.SubPath) {
			e.add(mp.child("subPath"), "%q must be a relative path without ..", m.SubPath)
		}
		switch {
		case m.SubPathExpr != "" && m.SubPath != "":
			e.add(mp.child("subPathExpr"), "set with subPath; allowed: one of them")
		case !RelativeSubPath(m.SubPathExpr):
			e.add(mp.child("subPathExpr"), "%q must be a relative path without ..", m.SubPathExpr)
		}
	}
}

// RelativeSubPath: p is empty, or relative and without "..", as a subPath
// (and a subPathExpr before and after expansion) must be.
func RelativeSubPath(p string) bool {
	return !strings.HasPrefix(p, "/") && !strings.Contains("/"+p+"/", "/../")
}

// ValidEnvName tells whether name may name a container's environment
// variable.
func ValidEnvName(name string) bool { return envName.MatchString(name) }
