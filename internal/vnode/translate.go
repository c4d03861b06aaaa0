package vnode

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/sizes"
)

// Annotations of docs/spec.md section 6, prefix k8s.aliyun.com/.
const (
	annPrefix         = "k8s.aliyun.com/"
	AnnUseSpecs       = annPrefix + "eci-use-specs"
	AnnVSwitch        = annPrefix + "eci-vswitch"
	AnnScheduleStrat  = annPrefix + "eci-schedule-strategy"
	AnnSecurityGroup  = annPrefix + "eci-security-group"
	AnnPrivateIP      = annPrefix + "eci-private-ip-address"
	AnnCustomTags     = annPrefix + "eci-custom-tags"
	AnnCustomHosts    = annPrefix + "eci-custom-hosts"
	AnnCustomDNS      = annPrefix + "eci-custom-dnsconfig"
	AnnExtraEphemeral = annPrefix + "eci-extra-ephemeral-storage"
	AnnMaxPending     = annPrefix + "eci-max-pending-minute"
	AnnFailStrategy   = annPrefix + "eci-fail-strategy"
	AnnPlainHTTP      = annPrefix + "plain-http-registry"
	AnnInsecure       = annPrefix + "insecure-registry"
	AnnInstanceID     = annPrefix + "eci-instance-id"
	AnnInstanceSpec   = annPrefix + "eci-instance-spec"
	AnnFixedIP        = annPrefix + "eci-fixed-ip"
	AnnFixedIPRetain  = annPrefix + "eci-fixed-ip-retain-hour"
	AnnWithEIP        = annPrefix + "eci-with-eip"
	AnnEIPInstanceID  = annPrefix + "eci-eip-instanceid"
	AnnAllocatedEIP   = annPrefix + "allocated-eipAddress"
	AnnEnableIPv6     = annPrefix + "eci-enable-ipv6"
	AnnAllocatedIPv6  = annPrefix + "allocated-ipv6Address"
	AnnInstanceType   = annPrefix + "eci-instance-type"
	AnnSpotStrategy   = annPrefix + "eci-spot-strategy"
	AnnSpotPriceLimit = annPrefix + "eci-spot-price-limit"
	AnnSpotDuration   = annPrefix + "eci-spot-duration"
	// Image caches: match one automatically (default), pin one, only one
	// with every image; and the one matched, written back.
	AnnAutoIMC           = annPrefix + "eci-auto-imc"
	AnnIMCID             = annPrefix + "eci-imc-id"
	AnnIMCPerfectMatch   = annPrefix + "imc-perfect-match"
	AnnMatchedImageCache = annPrefix + "eci-matched-image-cache"
	// AnnDataCacheBucket: the pod's hostPath volumes are the data caches of
	// this bucket at their paths (mounted read-only).
	AnnDataCacheBucket = annPrefix + "eci-data-cache-bucket"
	// The bandwidth limits: Kubernetes' own names (the CNI bandwidth
	// plugin's) and the service's; the service's win.
	AnnIngressBandwidth    = "kubernetes.io/ingress-bandwidth"
	AnnEgressBandwidth     = "kubernetes.io/egress-bandwidth"
	AnnECIIngressBandwidth = annPrefix + "eci-ingress-bandwidth"
	AnnECIEgressBandwidth  = annPrefix + "eci-egress-bandwidth"
	labelPrefix            = "eci.dev/"
	LabelCluster           = labelPrefix + "cluster"
	LabelPodNamespace      = labelPrefix + "pod-namespace"
	LabelPodName           = labelPrefix + "pod-name"
	LabelPodUID            = labelPrefix + "pod-uid"
	// LabelNode is the virtual node that made the group: two virtual nodes
	// of one cluster (one --cluster-id) each keep to their own groups.
	LabelNode          = labelPrefix + "node"
	maxGroupNameLength = 63
	maxClientToken     = 64
)

// refusal is a pod the virtual node will not run: Reason and the message
// that names the alternative become the pod's Failed status and an Event.
type refusal struct {
	Reason, Message string
}

func (r *refusal) Error() string { return r.Reason + ": " + r.Message }

func refuse(reason, format string, args ...any) *refusal {
	return &refusal{Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// files resolves what a pod's volumes need from the cluster (configMaps and
// secrets), by namespace and name; nil means not found.
type files interface {
	configMap(namespace, name string) (map[string][]byte, error)
	secret(namespace, name string) (map[string][]byte, error)
}

// toGroup translates a pod bound to the virtual node into a container group.
// Unsupported features are refused with the alternative named
// (docs/spec.md section 3); malformed annotations quote the value and the expected form.
func (p *Provider) toGroup(ctx context.Context, pod *corev1.Pod) (*apiv1.ContainerGroup, error) {
	if err := unsupported(pod); err != nil {
		return nil, err
	}
	g := &apiv1.ContainerGroup{
		Metadata: apiv1.ObjectMeta{
			Name: groupName(pod),
			// The pod's whole identity: its status is matched to the pod
			// by these (a pod name may have 253 characters).
			Labels: map[string]string{
				LabelCluster: p.cfg.ClusterID, LabelNode: p.cfg.NodeName, LabelPodNamespace: pod.Namespace,
				LabelPodName: pod.Name, LabelPodUID: string(pod.UID),
			},
		},
		Spec: apiv1.ContainerGroupSpec{
			ClientToken:                   clientToken(p.cfg.ClusterID, pod),
			RestartPolicy:                 apiv1.RestartPolicy(pod.Spec.RestartPolicy),
			TerminationGracePeriodSeconds: pod.Spec.TerminationGracePeriodSeconds,
			ActiveDeadlineSeconds:         pod.Spec.ActiveDeadlineSeconds,
			Hostname:                      hostname(pod),
			ShareProcessNamespace:         pod.Spec.ShareProcessNamespace != nil && *pod.Spec.ShareProcessNamespace,
			ServiceTable:                  tableName(p.cfg.ClusterID),
		},
	}
	for _, h := range pod.Spec.HostAliases {
		g.Spec.HostAliases = append(g.Spec.HostAliases, apiv1.HostAlias{IP: h.IP, Hostnames: h.Hostnames})
	}
	g.Spec.Sysctls = append(g.Spec.Sysctls, podSysctls(pod)...)
	handler, err := p.runtimeHandler(pod) // runtimeclass.go
	if err != nil {
		return nil, err
	}
	g.Spec.RuntimeHandler = handler
	g.Spec.DNSPolicy, g.Spec.DNSConfig = p.dnsConfig(pod)
	// A named type (eci-instance-type) sizes the instance: the service sets
	// cpu and memory from it.
	if cpu, mem := podSize(pod); (cpu > 0 || mem > 0) && pod.Annotations[AnnInstanceType] == "" {
		// One of them alone: the other is the smallest size's with it
		// (docs/spec.md section 4), as the service wants both.
		if r, ok := sizes.Round(sizes.FromGiB(cpu, mem)); ok {
			cpu, mem = cmp.Or(cpu, r.VCPU()), cmp.Or(mem, r.GiB())
		}
		g.Spec.CPU, g.Spec.Memory = cpu, mem
	} else if size, _, ok := p.defaultSize(pod); ok {
		g.Spec.CPU, g.Spec.Memory = size.VCPU(), size.GiB()
	}
	if err := containers(pod, &g.Spec); err != nil {
		return nil, err
	}
	vols, err := p.volumes(ctx, pod)
	if err != nil {
		return nil, err
	}
	g.Spec.Volumes = vols
	if err := p.pullSecrets(pod, &g.Spec); err != nil {
		return nil, err
	}
	if err := fixedIP(pod, p.cfg.ClusterID, &g.Spec); err != nil {
		return nil, err
	}
	if err := annotations(pod, &g.Spec); err != nil {
		return nil, err
	}
	// Last: a resourceFieldRef without limits reads the group's size.
	if err := p.envs(pod, &g.Spec); err != nil {
		return nil, err
	}
	return g, nil
}

// containers translates pod's init and app containers into s, with the
// GPUs they ask for: the instance has those (docs/spec.md section 4), and
// only a host with them free takes it.
func containers(pod *corev1.Pod, s *apiv1.ContainerGroupSpec) error {
	for _, set := range []struct {
		from []corev1.Container
		to   *[]apiv1.Container
	}{{pod.Spec.InitContainers, &s.InitContainers}, {pod.Spec.Containers, &s.Containers}} {
		for _, c := range set.from {
			ct, err := container(pod, c)
			if err != nil {
				return err
			}
			*set.to = append(*set.to, ct)
		}
	}
	s.GPU = s.ContainersGPU()
	return nil
}

// envs sets each container's environment (env.go).
func (p *Provider) envs(pod *corev1.Pod, s *apiv1.ContainerGroupSpec) error {
	for _, set := range []struct {
		from []corev1.Container
		to   []apiv1.Container
	}{{pod.Spec.InitContainers, s.InitContainers}, {pod.Spec.Containers, s.Containers}} {
		for i, c := range set.from {
			env, err := p.containerEnv(pod, c, s)
			if err != nil {
				return err
			}
			set.to[i].Env, set.to[i].ExpandEnv = env, true
		}
	}
	return nil
}

// unsupported refuses what an instance can't do, naming the alternative.
func unsupported(pod *corev1.Pod) error {
	for _, ref := range pod.OwnerReferences {
		if ref.Kind == "DaemonSet" {
			return refuse("DaemonSetNotSupported", "DaemonSet pods do not run on a virtual node: use a sidecar container in the pod instead")
		}
	}
	s := pod.Spec
	switch {
	case s.HostNetwork:
		return refuse("HostNetworkNotSupported", "hostNetwork is not supported on a virtual node: use a Service of type LoadBalancer instead")
	case s.HostPID || s.HostIPC:
		return refuse("HostNamespaceNotSupported", "hostPID and hostIPC are not supported on a virtual node (no alternative)")
	}
	if sc := s.SecurityContext; sc != nil {
		for _, sysctl := range sc.Sysctls {
			if !slices.Contains(apiv1.SafeSysctls, sysctl.Name) {
				// The kubelet's admission refuses it the same way.
				return refuse("SysctlForbidden", "Pod forbidden sysctl: %q not allowlisted; allowed: %s", sysctl.Name, strings.Join(apiv1.SafeSysctls, ", "))
			}
		}
	}
	for _, v := range s.Volumes {
		if v.HostPath != nil && pod.Annotations[AnnDataCacheBucket] == "" {
			return refuse("HostPathNotSupported", "volume %q: hostPath volumes are not supported on a virtual node: use emptyDir, a disk, an NFS volume, or a data cache (the annotation %s and the cache's path)", v.Name, AnnDataCacheBucket)
		}
	}
	for _, c := range append(append([]corev1.Container{}, s.InitContainers...), s.Containers...) {
		for _, port := range c.Ports {
			if port.HostPort != 0 {
				return refuse("HostPortNotSupported", "container %q: hostPort is not supported on a virtual node: use a Service of type LoadBalancer instead", c.Name)
			}
		}
		if sc := c.SecurityContext; sc != nil && sc.Privileged != nil && *sc.Privileged {
			return refuse("PrivilegedNotSupported", "container %q: privileged containers are not supported on a virtual node: use a securityContext with the capabilities it needs instead", c.Name)
		}
	}
	return nil
}

// groupName is the pod's name, made a DNS label of at most 63 characters.
func groupName(pod *corev1.Pod) string {
	n := strings.ToLower(strings.ReplaceAll(pod.Name, ".", "-"))
	return strings.Trim(truncate(n, maxGroupNameLength), "-")
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// clientToken makes creating a pod's group idempotent: the cluster and the
// pod's UID, or their SHA-256 when that is longer than the service's 64
// characters (a long --cluster-id or node name).
func clientToken(cluster string, pod *corev1.Pod) string {
	t := cluster + "/" + string(pod.UID)
	if len(t) <= maxClientToken {
		return t
	}
	sum := sha256.Sum256([]byte(t))
	return hex.EncodeToString(sum[:])
}

// hostname is the kubelet's: spec.hostname, else the pod's name, cut to 63
// characters without a trailing '-' or '.' (a pod name may hold dots).
func hostname(pod *corev1.Pod) string {
	h := pod.Name
	if pod.Spec.Hostname != "" {
		h = pod.Spec.Hostname
	}
	return strings.TrimRight(truncate(h, 63), "-.")
}

func podSysctls(pod *corev1.Pod) []apiv1.Sysctl {
	var out []apiv1.Sysctl
	if sc := pod.Spec.SecurityContext; sc != nil {
		for _, s := range sc.Sysctls {
			out = append(out, apiv1.Sysctl{Name: s.Name, Value: s.Value})
		}
	}
	return out
}

// container translates one container; env values were resolved by the
// virtual-kubelet pod controller (configMapKeyRef, secretKeyRef, fieldRef).
func container(pod *corev1.Pod, c corev1.Container) (apiv1.Container, error) {
	out := apiv1.Container{
		Name: c.Name, Image: c.Image, ImagePullPolicy: apiv1.PullPolicy(c.ImagePullPolicy),
		Command: c.Command, Args: c.Args, WorkingDir: c.WorkingDir, Stdin: c.Stdin, TTY: c.TTY,
		TerminationMessagePath: c.TerminationMessagePath, TerminationMessagePolicy: string(c.TerminationMessagePolicy),
	}
	for _, p := range c.Ports {
		out.Ports = append(out.Ports, apiv1.Port{Name: p.Name, ContainerPort: p.ContainerPort, Protocol: string(p.Protocol)})
	}
	lim := limitsOf(c)
	out.CPU, out.Memory = lim.CPU, lim.Memory
	for _, rp := range c.ResizePolicy {
		out.ResizePolicy = append(out.ResizePolicy, apiv1.ResizePolicy{ResourceName: string(rp.ResourceName), RestartPolicy: string(rp.RestartPolicy)})
	}
	if gpu, ok := c.Resources.Limits["nvidia.com/gpu"]; ok {
		out.GPU = int(gpu.Value())
	}
	ports := portResolver{c: c}
	out.StartupProbe = probe(c.StartupProbe, ports.at("startupProbe"))
	out.LivenessProbe = probe(c.LivenessProbe, ports.at("livenessProbe"))
	out.ReadinessProbe = probe(c.ReadinessProbe, ports.at("readinessProbe"))
	if l := c.Lifecycle; l != nil {
		out.Lifecycle = &apiv1.Lifecycle{PostStart: handler(l.PostStart, ports.at("lifecycle.postStart")), PreStop: handler(l.PreStop, ports.at("lifecycle.preStop"))}
	}
	if ports.err != nil {
		return out, ports.err
	}
	if err := checkProbeHosts(c); err != nil {
		return out, err
	}
	out.SecurityContext = securityContext(pod, c)
	if err := checkSecurity(c.Name, out.SecurityContext); err != nil {
		return out, err
	}
	for _, m := range c.VolumeMounts {
		out.VolumeMounts = append(out.VolumeMounts, apiv1.VolumeMount{Name: m.Name, MountPath: m.MountPath, SubPath: m.SubPath, SubPathExpr: m.SubPathExpr, ReadOnly: m.ReadOnly})
	}
	return out, nil
}

// quantity is a resource in milli-units for CPU, bytes for memory (0 when
// not given).
func quantity(l corev1.ResourceList, name corev1.ResourceName) float64 {
	q, ok := l[name]
	if !ok {
		return 0
	}
	if name == corev1.ResourceCPU {
		return float64(q.MilliValue())
	}
	return float64(q.Value())
}

// podSize is the instance size of docs/spec.md section 4: the sum of the
// containers' limits, else of their requests (per resource); zero when the
// pod gives neither, and the service's default applies. A container's own
// limits bound it inside the group; requests never become limits.
func podSize(pod *corev1.Pod) (cpu, memGiB float64) {
	var limCPU, limMem, reqCPU, reqMem float64
	for _, c := range pod.Spec.Containers {
		limCPU += quantity(c.Resources.Limits, corev1.ResourceCPU)
		limMem += quantity(c.Resources.Limits, corev1.ResourceMemory)
		reqCPU += quantity(c.Resources.Requests, corev1.ResourceCPU)
		reqMem += quantity(c.Resources.Requests, corev1.ResourceMemory)
	}
	cpu, mem := limCPU, limMem
	if cpu == 0 {
		cpu = reqCPU
	}
	if mem == 0 {
		mem = reqMem
	}
	return cpu / 1000, mem / (1 << 30)
}

func probe(p *corev1.Probe, port func(string, intstr.IntOrString) int32) *apiv1.Probe {
	if p == nil {
		return nil
	}
	out := &apiv1.Probe{InitialDelaySeconds: p.InitialDelaySeconds, PeriodSeconds: p.PeriodSeconds, TimeoutSeconds: p.TimeoutSeconds,
		SuccessThreshold: p.SuccessThreshold, FailureThreshold: p.FailureThreshold}
	h := p.ProbeHandler
	switch {
	case h.Exec != nil:
		out.Exec = &apiv1.ExecAction{Command: h.Exec.Command}
	case h.HTTPGet != nil:
		out.HTTPGet = httpGet(h.HTTPGet, port)
	case h.TCPSocket != nil:
		out.TCPSocket = &apiv1.TCPSocketAction{Port: port("tcpSocket.port", h.TCPSocket.Port)}
	case h.GRPC != nil:
		svc := ""
		if h.GRPC.Service != nil {
			svc = *h.GRPC.Service
		}
		out.GRPC = &apiv1.GRPCAction{Port: h.GRPC.Port, Service: svc}
	}
	return out
}

func httpGet(h *corev1.HTTPGetAction, port func(string, intstr.IntOrString) int32) *apiv1.HTTPGetAction {
	out := &apiv1.HTTPGetAction{Path: h.Path, Port: port("httpGet.port", h.Port), Scheme: string(h.Scheme)}
	for _, hd := range h.HTTPHeaders {
		out.HTTPHeaders = append(out.HTTPHeaders, apiv1.HTTPHeader{Name: hd.Name, Value: hd.Value})
	}
	return out
}

// portResolver resolves the ports of a container's probes and hooks as the
// kubelet does: a number, or the name of one of the container's ports; the
// first name it can't resolve is its error.
type portResolver struct {
	c   corev1.Container
	err error
}

// at resolves the ports of one probe or hook (where names it).
func (r *portResolver) at(where string) func(string, intstr.IntOrString) int32 {
	return func(field string, p intstr.IntOrString) int32 {
		if p.Type == intstr.Int {
			return p.IntVal
		}
		for _, cp := range r.c.Ports {
			if cp.Name == p.StrVal {
				return cp.ContainerPort
			}
		}
		if n, err := strconv.Atoi(p.StrVal); err == nil && n > 0 && n <= 65535 {
			return int32(n)
		}
		if r.err == nil {
			r.err = refuse("InvalidPort", "container %q: %s.%s: no port named %q among the container's ports", r.c.Name, where, field, p.StrVal)
		}
		return 0
	}
}

// checkProbeHosts refuses a probe or hook of c that names a host: the
// service reaches the pod's own address only, from the instance's network
// (a request to any other address, made by the host, could reach what the
// instance may not: the host itself, its metadata services).
func checkProbeHosts(c corev1.Container) error {
	check := func(where string, http *corev1.HTTPGetAction, tcp *corev1.TCPSocketAction) error {
		host := ""
		if http != nil {
			host = http.Host
		} else if tcp != nil {
			host = tcp.Host
		}
		if host == "" {
			return nil
		}
		return refuse("ProbeHostNotSupported", "container %q: %s: host %q: on a virtual node probes and hooks reach the pod's own address only; "+
			"to reach another, use an exec action (such as wget) from the container", c.Name, where, host)
	}
	type action struct {
		where string
		http  *corev1.HTTPGetAction
		tcp   *corev1.TCPSocketAction
	}
	var actions []action
	for _, p := range []struct {
		where string
		probe *corev1.Probe
	}{{"startupProbe", c.StartupProbe}, {"livenessProbe", c.LivenessProbe}, {"readinessProbe", c.ReadinessProbe}} {
		if p.probe != nil {
			actions = append(actions, action{p.where, p.probe.HTTPGet, p.probe.TCPSocket})
		}
	}
	if l := c.Lifecycle; l != nil {
		for _, h := range []struct {
			where string
			h     *corev1.LifecycleHandler
		}{{"lifecycle.postStart", l.PostStart}, {"lifecycle.preStop", l.PreStop}} {
			if h.h != nil {
				actions = append(actions, action{h.where, h.h.HTTPGet, h.h.TCPSocket})
			}
		}
	}
	for _, a := range actions {
		if err := check(a.where, a.http, a.tcp); err != nil {
			return err
		}
	}
	return nil
}

func handler(h *corev1.LifecycleHandler, port func(string, intstr.IntOrString) int32) *apiv1.Handler {
	if h == nil {
		return nil
	}
	out := &apiv1.Handler{}
	switch {
	case h.Exec != nil:
		out.Exec = &apiv1.ExecAction{Command: h.Exec.Command}
	case h.HTTPGet != nil:
		out.HTTPGet = httpGet(h.HTTPGet, port)
	case h.TCPSocket != nil:
		out.TCPSocket = &apiv1.TCPSocketAction{Port: port("tcpSocket.port", h.TCPSocket.Port)}
	case h.Sleep != nil:
		s := h.Sleep.Seconds
		out.SleepSeconds = &s
	}
	return out
}

// securityContext merges the pod's and the container's (the container's wins).
func securityContext(pod *corev1.Pod, c corev1.Container) *apiv1.SecurityContext {
	out := &apiv1.SecurityContext{}
	set := false
	if ps := pod.Spec.SecurityContext; ps != nil {
		out.RunAsUser, out.RunAsGroup, out.RunAsNonRoot = ps.RunAsUser, ps.RunAsGroup, ps.RunAsNonRoot
		if ps.SeccompProfile != nil {
			out.SeccompProfile = string(ps.SeccompProfile.Type)
		}
		set = ps.RunAsUser != nil || ps.RunAsGroup != nil || ps.RunAsNonRoot != nil || ps.SeccompProfile != nil
	}
	if cs := c.SecurityContext; cs != nil {
		set = true
		if cs.RunAsUser != nil {
			out.RunAsUser = cs.RunAsUser
		}
		if cs.RunAsGroup != nil {
			out.RunAsGroup = cs.RunAsGroup
		}
		if cs.RunAsNonRoot != nil {
			out.RunAsNonRoot = cs.RunAsNonRoot
		}
		if cs.ReadOnlyRootFilesystem != nil {
			out.ReadOnlyRootFilesystem = *cs.ReadOnlyRootFilesystem
		}
		out.AllowPrivilegeEscalation = cs.AllowPrivilegeEscalation
		if cs.Capabilities != nil {
			out.Capabilities = &apiv1.Capabilities{Add: capNames(cs.Capabilities.Add), Drop: capNames(cs.Capabilities.Drop)}
		}
		if cs.SeccompProfile != nil {
			out.SeccompProfile = string(cs.SeccompProfile.Type)
		}
	}
	if out.SeccompProfile == string(corev1.SeccompProfileTypeLocalhost) {
		out.SeccompProfile = "" // a host's profile file means nothing on a pool: the runtime's default
	}
	if !set {
		return nil
	}
	return out
}

// checkSecurity refuses, before anything is created, the capabilities and
// seccomp profiles the instance service refuses (its messages name the
// allowlist).
func checkSecurity(container string, sc *apiv1.SecurityContext) error {
	if sc == nil {
		return nil
	}
	if sc.RunAsNonRoot != nil && *sc.RunAsNonRoot && sc.RunAsUser != nil && *sc.RunAsUser == 0 {
		// Kubernetes accepts it; no kubelet runs it.
		return refuse("CreateContainerConfigError", "container %q: runAsUser 0 breaks the non-root policy (runAsNonRoot: true)", container)
	}
	if msg := apiv1.SeccompRefusal(sc.SeccompProfile); msg != "" {
		return refuse("SeccompProfileNotAllowed", "container %q: securityContext.seccompProfile: %s", container, msg)
	}
	if sc.Capabilities != nil {
		for i, c := range sc.Capabilities.Add {
			if msg := apiv1.CapabilityRefusal(c); msg != "" {
				return refuse("CapabilityNotAllowed", "container %q: securityContext.capabilities.add[%d]: %s", container, i, msg)
			}
		}
	}
	return nil
}

func capNames(in []corev1.Capability) []string {
	out := make([]string, len(in))
	for i, c := range in {
		out[i] = string(c)
	}
	return out
}

// jsonAnnotation decodes a JSON annotation, or says what form it needs.
func jsonAnnotation(pod *corev1.Pod, key, form string, v any) error {
	raw, ok := pod.Annotations[key]
	if !ok {
		return nil
	}
	dec := json.NewDecoder(strings.NewReader(raw))
	dec.DisallowUnknownFields() // a misspelt field is an error, not nothing
	if err := dec.Decode(v); err != nil {
		return refuse("InvalidAnnotation", "annotation %s=%q is not valid: expected %s (%v)", key, raw, form, err)
	}
	if dec.More() {
		return refuse("InvalidAnnotation", "annotation %s=%q is not valid: expected %s (one JSON value)", key, raw, form)
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
