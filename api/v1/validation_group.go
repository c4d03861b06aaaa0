package v1

import (
	"math"
	"regexp"
	"slices"
	"strings"

	"github.com/eci-dev/eci/internal/sizes"
)

// ValidateContainerGroup checks a group a client wants to create. It returns
// FieldErrors naming every bad field and what is allowed, or nil.
func ValidateContainerGroup(g *ContainerGroup) error {
	e := &errs{}
	validateName(e, "metadata.name", g.Metadata.Name)
	e.labels("metadata.labels", g.Metadata.Labels, "label")
	validateGroupSpec(e, "spec", &g.Spec)
	return e.result()
}

func validateGroupSpec(e *errs, p fpath, s *ContainerGroupSpec) {
	validateMembers(e, p, s)
	validateLifecycle(e, p, s)
	validateDNS(e, p, s)
	validatePlacementSpec(e, p, s)
	validatePulls(e, p, s)
	validateSize(e, p, s)
}

// validateMembers checks the containers and volumes: counts, sizes, names.
func validateMembers(e *errs, p fpath, s *ContainerGroupSpec) {
	if len(s.Containers) == 0 {
		e.required(p.child("containers"), "at least one container")
	}
	if n := len(s.Containers) + len(s.InitContainers) + len(s.EphemeralContainers); n > MaxContainers {
		e.add(p.child("containers"), "%d containers (with init and ephemeral containers) is too many; allowed: at most %d", n, MaxContainers)
	}
	if len(s.Volumes) > MaxVolumes {
		e.add(p.child("volumes"), "%d volumes is too many; allowed: at most %d", len(s.Volumes), MaxVolumes)
	}
	filesBytes := 0
	for _, v := range s.Volumes {
		if v.Files != nil {
			for _, f := range v.Files.Files {
				filesBytes += len(f.Content)
			}
		}
	}
	if filesBytes > MaxFilesBytes {
		e.add(p.child("volumes"), "files volumes hold %d bytes together; allowed: at most %d (768 KiB): put larger data in an NFS volume or the image", filesBytes, MaxFilesBytes)
	}
	volumes := map[string]bool{}
	for i, v := range s.Volumes {
		validateVolume(e, p.child("volumes").index(i), v)
		if volumes[v.Name] {
			e.add(p.child("volumes").index(i).child("name"), "%q appears twice", v.Name)
		}
		volumes[v.Name] = true
	}
	names := map[string]bool{}
	for i, c := range s.InitContainers {
		validateContainer(e, p.child("initContainers").index(i), c, volumes, names, true)
	}
	for i, c := range s.Containers {
		validateContainer(e, p.child("containers").index(i), c, volumes, names, false)
		for j, rp := range c.ResizePolicy {
			if s.RestartPolicy == RestartNever && rp.RestartPolicy != ResizeNotRequired {
				e.add(p.child("containers").index(i).child("resizePolicy").index(j).child("restartPolicy"), "%q is not allowed when restartPolicy is Never; allowed: NotRequired", rp.RestartPolicy)
			}
		}
	}
	for i, c := range s.EphemeralContainers {
		validateEphemeral(e, p.child("ephemeralContainers").index(i), s, c, volumes, names)
	}
}

// validateEphemeral checks an ephemeral container: a container with none
// of ports, probes, hooks, resources, and a target that is an app
// container.
func validateEphemeral(e *errs, p fpath, s *ContainerGroupSpec, c EphemeralContainer, volumes, names map[string]bool) {
	validateContainer(e, p, c.Container, volumes, names, false)
	if len(c.Ports) > 0 || c.StartupProbe != nil || c.LivenessProbe != nil || c.ReadinessProbe != nil || c.Lifecycle != nil {
		e.add(p, "ephemeral containers may not have ports, probes or lifecycle hooks")
	}
	if c.CPU != 0 || c.Memory != 0 || c.GPU != 0 || len(c.ResizePolicy) > 0 {
		e.add(p, "ephemeral containers may not have resources of their own: they share the group's")
	}
	if t := c.TargetContainerName; t != "" && !slices.ContainsFunc(s.Containers, func(a Container) bool { return a.Name == t }) {
		e.add(p.child("targetContainerName"), "%q is no app container of the group", t)
	}
}

// validateLifecycle checks restart policy, grace, deadline, host name.
func validateLifecycle(e *errs, p fpath, s *ContainerGroupSpec) {
	e.oneOf(p.child("restartPolicy"), string(s.RestartPolicy), "", string(RestartAlways), string(RestartOnFailure), string(RestartNever))
	if s.TerminationGracePeriodSeconds != nil {
		e.nonNegative(p.child("terminationGracePeriodSeconds"), *s.TerminationGracePeriodSeconds)
	}
	if s.ActiveDeadlineSeconds != nil && *s.ActiveDeadlineSeconds <= 0 {
		e.add(p.child("activeDeadlineSeconds"), "%d is not allowed; allowed: 1 or more seconds", *s.ActiveDeadlineSeconds)
	}
	if s.Hostname != "" && (len(s.Hostname) > 63 || !dnsSubdomain.MatchString(s.Hostname)) {
		// The kubelet's: a pod's name (a DNS subdomain, dots and all) cut to 63.
		e.add(p.child("hostname"), "%q is not allowed; allowed: up to 63 lowercase letters, digits, '-' and '.', each part between dots starting and ending with a letter or digit", s.Hostname)
	}
}

// validateDNS checks DNS settings, host aliases and sysctls.
func validateDNS(e *errs, p fpath, s *ContainerGroupSpec) {
	e.oneOf(p.child("dnsPolicy"), string(s.DNSPolicy), "", string(DNSDefault), string(DNSNone))
	if s.DNSPolicy == DNSNone && (s.DNSConfig == nil || len(s.DNSConfig.Nameservers) == 0) {
		e.required(p.child("dnsConfig").child("nameservers"), "at least one nameserver when dnsPolicy is None")
	}
	if d := s.DNSConfig; d != nil {
		validateDNSConfig(e, p.child("dnsConfig"), d)
	}
	for i, h := range s.HostAliases {
		hp := p.child("hostAliases").index(i)
		if ip, err := parseIP(h.IP); err != nil || ip.Zone() != "" {
			e.add(hp.child("ip"), "%q is not an IP address", h.IP)
		}
		if len(h.Hostnames) == 0 {
			e.required(hp.child("hostnames"), "at least one host name")
		}
		for j, n := range h.Hostnames {
			if !resolvName(n) {
				e.add(hp.child("hostnames").index(j), "%q is not allowed; allowed: a DNS name of letters, digits, '-', '_' and '.' (at most 253)", n)
			}
		}
	}
	sysctls := map[string]bool{}
	for i, sc := range s.Sysctls {
		sp := p.child("sysctls").index(i)
		e.oneOf(sp.child("name"), sc.Name, SafeSysctls...)
		if sysctls[sc.Name] {
			e.add(sp.child("name"), "%q appears twice", sc.Name)
		}
		sysctls[sc.Name] = true
		if sc.Value == "" || strings.ContainsAny(sc.Value, "\n\x00") {
			e.required(sp.child("value"), "a value on one line")
		}
	}
}

// Limits of a resolv.conf, the kubelet's: the resolver reads 3 nameservers
// and (glibc) 32 search domains of 2048 characters together.
const (
	MaxDNSSearches     = 32
	MaxDNSSearchLength = 2048
)

// validateDNSConfig checks what goes into the group's resolv.conf: values
// the resolver reads, one per token (no line, space or comment of a
// tenant's may add a directive of its own).
func validateDNSConfig(e *errs, p fpath, d *DNSConfig) {
	if len(d.Nameservers) > MaxNameservers {
		e.add(p.child("nameservers"), "%d nameservers is too many; allowed: at most %d", len(d.Nameservers), MaxNameservers)
	}
	for i, ns := range d.Nameservers {
		if ip, err := parseIP(ns); err != nil || ip.Zone() != "" {
			e.add(p.child("nameservers").index(i), "%q is not an IP address", ns)
		}
	}
	if len(d.Searches) > MaxDNSSearches {
		e.add(p.child("searches"), "%d search domains is too many; allowed: at most %d", len(d.Searches), MaxDNSSearches)
	}
	if n := len(strings.Join(d.Searches, " ")); n > MaxDNSSearchLength {
		e.add(p.child("searches"), "%d characters is too long; allowed: at most %d together", n, MaxDNSSearchLength)
	}
	for i, sd := range d.Searches {
		if sd != "." && !resolvName(strings.TrimSuffix(sd, ".")) {
			e.add(p.child("searches").index(i), "%q is not allowed; allowed: a DNS name of letters, digits, '-', '_' and '.' (at most 253)", sd)
		}
	}
	for i, o := range d.Options {
		op := p.child("options").index(i)
		if o.Name == "" {
			e.required(op.child("name"), "the option's name")
		} else if !dnsOptionWord.MatchString(o.Name) {
			e.add(op.child("name"), "%q is not allowed; allowed: one word, no space, '#' or ';' (such as ndots, edns0, single-request-reopen)", o.Name)
		}
		if o.Value != "" && !dnsOptionWord.MatchString(o.Value) {
			e.add(op.child("value"), "%q is not allowed; allowed: one word, no space, '#' or ';'", o.Value)
		}
	}
}

var (
	// dnsOptionWord is one printable word the resolver reads as such.
	dnsOptionWord = regexp.MustCompile(`^[!-"$-:<-~]{1,256}$`)
	resolvLabel   = regexp.MustCompile(`^[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?$`)
)

// resolvName tells whether n is a name a resolver or hosts file takes: DNS
// labels (letters, digits, '-', '_') up to 253 characters together, as
// Kubernetes' DNS-1123 subdomain check (which leaves a label's length to
// the resolver).
func resolvName(n string) bool {
	if n == "" || len(n) > 253 {
		return false
	}
	for _, l := range strings.Split(n, ".") {
		if !resolvLabel.MatchString(l) {
			return false
		}
	}
	return true
}

// validatePlacementSpec checks vSwitches, security groups and the private IP.
func validatePlacementSpec(e *errs, p fpath, s *ContainerGroupSpec) {
	seen := map[string]bool{}
	for i, id := range s.VSwitchIDs {
		if id == "" || seen[id] {
			e.add(p.child("vSwitchIds").index(i), "%q is empty or repeated", id)
		}
		seen[id] = true
	}
	e.oneOf(p.child("scheduleStrategy"), string(s.ScheduleStrategy), "", string(VSwitchOrdered), string(VSwitchRandom))
	if len(s.SecurityGroupIDs) > MaxSecGroups {
		e.add(p.child("securityGroupIds"), "%d security groups is too many; allowed: at most %d", len(s.SecurityGroupIDs), MaxSecGroups)
	} else {
		sgSeen := map[string]bool{}
		for i, id := range s.SecurityGroupIDs {
			if sgSeen[id] {
				e.add(p.child("securityGroupIds").index(i), "%q is repeated", id)
			}
			sgSeen[id] = true
			e.dnsLabel(p.child("securityGroupIds").index(i), id, 63)
		}
	}
	if s.PrivateIPAddress != "" {
		e.ipv4(p.child("privateIpAddress"), s.PrivateIPAddress)
	}
	for _, f := range []struct {
		field string
		bw    int64
	}{{"ingressBandwidth", s.IngressBandwidth}, {"egressBandwidth", s.EgressBandwidth}} {
		if field, bw := f.field, f.bw; bw != 0 && (bw < MinBandwidth || bw > MaxBandwidth) {
			e.add(p.child(field), "%d bits/s is not allowed; allowed: 0 (no limit) or %d (1 kbit/s) to %d (32 Gbit/s)", bw, int64(MinBandwidth), int64(MaxBandwidth))
		}
	}
	if s.ServiceTable != "" {
		e.dnsLabel(p.child("serviceTable"), s.ServiceTable, 63)
	}
	if s.FixedIPKey != "" {
		if len(s.FixedIPKey) > 253 || !fixedIPKey.MatchString(s.FixedIPKey) {
			e.add(p.child("fixedIpKey"), "%q: allowed: up to 253 of a-z, 0-9, '-', '.', '/', beginning and ending with a letter or digit (such as cluster/namespace/pod)", s.FixedIPKey)
		}
		if s.PrivateIPAddress != "" {
			e.add(p.child("fixedIpKey"), "with privateIpAddress set: allowed: one of them")
		}
	}
	if s.FixedIPRetainHours < 0 || s.FixedIPRetainHours > MaxFixedIPRetainHours {
		e.add(p.child("fixedIpRetainHours"), "%d: allowed: 0 (48 hours) to %d", s.FixedIPRetainHours, MaxFixedIPRetainHours)
	}
	if s.EIPID != "" {
		if !eipID.MatchString(s.EIPID) {
			e.add(p.child("eipId"), "%q is no EIP id; allowed: eip- and 8 hex digits (eci eips lists them)", s.EIPID)
		}
		if s.WithEIP {
			e.add(p.child("withEip"), "with eipId set: allowed: one of eipId (an EIP of yours) and withEip (one of its own)")
		}
	}
}

// validatePulls checks registries, ephemeral storage, tags and the create options.
func validatePulls(e *errs, p fpath, s *ContainerGroupSpec) {
	for i, c := range s.ImageRegistryCredentials {
		if c.Server == "" {
			e.required(p.child("imageRegistryCredentials").index(i).child("server"), "the registry's host[:port]")
		}
	}
	e.hostPorts(p.child("plainHttpRegistries"), s.PlainHTTPRegistries)
	if s.ImageCacheID != "" {
		if !ImageCacheIDPattern.MatchString(s.ImageCacheID) {
			e.add(p.child("imageCacheId"), "%q is no image cache id; allowed: imc- and 16 hex digits (eci imagecaches lists them)", s.ImageCacheID)
		}
		if s.DisableImageCacheMatch {
			e.add(p.child("disableImageCacheMatch"), "with imageCacheId set: allowed: one of imageCacheId (match that cache) and disableImageCacheMatch (match none)")
		}
	}
	e.hostPorts(p.child("insecureRegistries"), s.InsecureRegistries)
	if s.ExtraEphemeralStorage < 0 || s.ExtraEphemeralStorage > MaxExtraEphemeralStorage {
		e.add(p.child("extraEphemeralStorage"), "%d is not allowed; allowed: 0 to %d GiB", s.ExtraEphemeralStorage, MaxExtraEphemeralStorage)
	}
	if len(s.Tags) > MaxTags {
		e.add(p.child("tags"), "%d tags is too many; allowed: at most %d", len(s.Tags), MaxTags)
	}
	e.labels(p.child("tags"), s.Tags, "tag")
	if m := s.MaxPendingMinutes; m != 0 && (m < 10 || m > 1440) {
		e.add(p.child("maxPendingMinutes"), "%d is not allowed; allowed: 10 to 1440 minutes (default 240)", m)
	}
	e.oneOf(p.child("failStrategy"), string(s.FailStrategy), "", string(FailBack), string(FailOver), string(FailFast))
	validateSpot(e, p, s)
	if len(s.ClientToken) > 64 {
		e.add(p.child("clientToken"), "%d characters is too long; allowed: at most 64", len(s.ClientToken))
	}
}

// validateSize checks every way of giving a size, and that the containers fit.
func validateSize(e *errs, p fpath, s *ContainerGroupSpec) {
	if s.InstanceType != "" && s.CPU == 0 {
		// The server turns a configured type into cpu and memory first.
		e.add(p.child("instanceType"), "%q is not a configured instance type; give a size with specs (for example [\"2-4Gi\"]) or cpu and memory", s.InstanceType)
	}
	e.nonNegative(p.child("gpu"), int64(s.GPU))
	if want := s.ContainersGPU(); want > s.GPU {
		e.add(p.child("gpu"), "%d is less than the containers ask for together (%d); allowed: at least %d", s.GPU, want, want)
	}
	if s.RuntimeHandler != "" {
		// As a RuntimeClass's handler: a DNS label.
		e.dnsLabel(p.child("runtimeHandler"), s.RuntimeHandler, 63)
	}
	if len(s.Specs) > MaxSpecs {
		e.add(p.child("specs"), "%d sizes is too many; allowed: at most %d", len(s.Specs), MaxSpecs)
	}
	for i, sp := range s.Specs {
		size, err := sizes.Parse(sp)
		if err != nil {
			e.add(p.child("specs").index(i), "%v", err)
			continue
		}
		if _, ok := sizes.Round(size); !ok {
			e.add(p.child("specs").index(i), "%q is larger than the largest size (64 vCPU, 512 GiB)", sp)
		}
	}
	switch {
	case s.CPU < 0 || s.CPU > 64:
		e.add(p.child("cpu"), "%v is not allowed; allowed: 0.25 to 64 vCPU", s.CPU)
	case s.Memory < 0 || s.Memory > 512:
		e.add(p.child("memory"), "%v is not allowed; allowed: 0.5 to 512 GiB", s.Memory)
	case s.CPU > 0 && s.Memory == 0:
		e.required(p.child("memory"), "memory in GiB when cpu is set")
	case s.Memory > 0 && s.CPU == 0:
		e.required(p.child("cpu"), "cpu in vCPU when memory is set")
	}
	if len(s.Specs) > 0 || e.hasPrefix(p) {
		return
	}
	// Containers must fit the size the group will be given.
	want := s.ContainersSize()
	if s.CPU > 0 {
		// The size the group is given: cpu and memory rounded up.
		got := sizes.FromGiB(s.CPU, s.Memory)
		if r, ok := sizes.Round(got); ok {
			got = r
		}
		if want.MilliCPU > got.MilliCPU {
			e.add(p.child("containers"), "containers ask for %v vCPU, more than the group's %v", float64(want.MilliCPU)/1000, got.VCPU())
		}
		if want.MemoryMiB > got.MemoryMiB {
			e.add(p.child("containers"), "containers ask for %v GiB, more than the group's %v", float64(want.MemoryMiB)/1024, got.GiB())
		}
	} else if _, ok := sizes.Round(want); !ok {
		e.add(p.child("containers"), "containers ask for %v vCPU / %v GiB, more than the largest size (64 vCPU, 512 GiB)",
			float64(want.MilliCPU)/1000, float64(want.MemoryMiB)/1024)
	}
}

func (e *errs) hasPrefix(p fpath) bool {
	for _, fe := range e.list {
		if len(fe.Field) >= len(p) && fe.Field[:len(p)] == string(p) {
			return true
		}
	}
	return false
}

// ContainersGPU is how many GPUs the group's containers ask for together:
// the app containers' sum, or an init container's own if it asks more.
func (s *ContainerGroupSpec) ContainersGPU() int {
	sum, most := 0, 0
	for _, c := range s.Containers {
		sum += c.GPU
	}
	for _, c := range s.InitContainers {
		most = max(most, c.GPU)
	}
	return max(sum, most)
}

// ContainersSize is what the group's containers ask for together
// (sizes.Together).
func (s *ContainerGroupSpec) ContainersSize() sizes.Size {
	var cs, is []sizes.Size
	for _, c := range s.Containers {
		cs = append(cs, sizes.FromGiB(c.CPU, c.Memory))
	}
	for _, c := range s.InitContainers {
		is = append(is, sizes.FromGiB(c.CPU, c.Memory))
	}
	return sizes.Together(cs, is)
}

// validateSpot checks a spot instance's strategy, price limit and
// protected hours.
func validateSpot(e *errs, p fpath, s *ContainerGroupSpec) {
	e.oneOf(p.child("spotStrategy"), string(s.SpotStrategy), "", string(NoSpot), string(SpotAsPriceGo), string(SpotWithPriceLimit))
	switch {
	case s.SpotStrategy == SpotWithPriceLimit && (!(s.SpotPriceLimit > 0) || math.IsInf(s.SpotPriceLimit, 0)):
		e.add(p.child("spotPriceLimit"), "%v is not allowed with SpotWithPriceLimit; allowed: a price per hour above 0", s.SpotPriceLimit)
	case s.SpotPriceLimit != 0 && s.SpotStrategy != SpotWithPriceLimit:
		e.add(p.child("spotPriceLimit"), "is set but spotStrategy is %q; allowed: only with SpotWithPriceLimit", s.SpotStrategy)
	}
	if d := s.SpotDurationHours; d != nil && (*d < 0 || *d > 6) {
		e.add(p.child("spotDurationHours"), "%d is not allowed; allowed: 0 to 6 hours", *d)
	}
	if s.SpotDurationHours != nil && !s.Spot() {
		e.add(p.child("spotDurationHours"), "is set but the group is no spot instance; allowed: only with a spotStrategy")
	}
}
