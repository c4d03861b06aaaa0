package vnode

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/record"

	apiv1 "github.com/eci-dev/eci/api/v1"
)

// noFiles is a cluster without configMaps or secrets.
type noFiles struct{}

func (noFiles) configMap(string, string) (map[string][]byte, error) { return nil, nil }
func (noFiles) secret(string, string) (map[string][]byte, error)    { return nil, nil }

func pod(mutate func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-0", Namespace: "shop", UID: "uid-1", Annotations: map[string]string{}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: "busybox"}}}}
	if mutate != nil {
		mutate(p)
	}
	return p
}

func res(cpu, mem string) corev1.ResourceList {
	l := corev1.ResourceList{}
	if cpu != "" {
		l[corev1.ResourceCPU] = resource.MustParse(cpu)
	}
	if mem != "" {
		l[corev1.ResourceMemory] = resource.MustParse(mem)
	}
	return l
}

func TestPodToGroup(t *testing.T) {
	p := &Provider{cfg: Config{ClusterID: "c1", Files: noFiles{}, ClusterDNS: []string{"198.18.0.10"}, ClusterDomain: "cluster.local"}}
	for _, tc := range []struct {
		name   string
		pod    *corev1.Pod
		check  func(*apiv1.ContainerGroup) string
		refuse string // the refusal reason, and a word of its message after ':'
	}{
		{name: "nothing given: the spec's default size; ClusterFirst DNS; idempotent by UID", pod: pod(nil), check: func(g *apiv1.ContainerGroup) string {
			if g.Spec.CPU != 2 || g.Spec.Memory != 4 || g.Spec.ClientToken != "c1/uid-1" || g.Metadata.Labels[LabelPodUID] != "uid-1" {
				return "size or identity"
			}
			if g.Spec.ServiceTable != "c1" {
				return "service table " + g.Spec.ServiceTable
			}
			if d := g.Spec.DNSConfig; d == nil || d.Nameservers[0] != "198.18.0.10" || d.Searches[0] != "shop.svc.cluster.local" {
				return "dns"
			}
			return ""
		}},
		{name: "requests only: their sum sizes the group and bound no container", pod: pod(func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources.Requests = res("500m", "1Gi")
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "side", Image: "busybox", Resources: corev1.ResourceRequirements{Requests: res("500m", "1Gi")}})
		}), check: func(g *apiv1.ContainerGroup) string {
			if g.Spec.CPU != 1 || g.Spec.Memory != 2 || g.Spec.Containers[0].CPU != 0 || g.Spec.Containers[0].Memory != 0 {
				return "size"
			}
			return ""
		}},
		{name: "limits win over requests and bound their container", pod: pod(func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources = corev1.ResourceRequirements{Requests: res("1", "1Gi"), Limits: res("2", "4Gi")}
		}), check: func(g *apiv1.ContainerGroup) string {
			if g.Spec.CPU != 2 || g.Spec.Memory != 4 || g.Spec.Containers[0].CPU != 2 || g.Spec.Containers[0].Memory != 4 {
				return "size"
			}
			return ""
		}},
		{name: "annotations", pod: pod(func(p *corev1.Pod) {
			p.Annotations[AnnUseSpecs] = "2-4Gi, 4-8Gi"
			p.Annotations[AnnVSwitch] = "vsw-a,vsw-b"
			p.Annotations[AnnCustomTags] = "team:web,env:prod"
			p.Annotations[AnnExtraEphemeral] = "50Gi"
			p.Annotations[AnnCustomHosts] = `[{"host":"db","ip":"198.18.0.9"}]`
			p.Annotations[AnnPlainHTTP] = "reg.local:5000"
			p.Annotations[AnnInsecure] = "reg.local:5443"
			p.Annotations[AnnScheduleStrat] = "VSwitchRandom"
			p.Annotations[AnnSecurityGroup] = "sg-a, sg-b"
			p.Annotations[AnnMaxPending] = "30"
			p.Annotations[AnnFailStrategy] = "fail-fast"
		}), check: func(g *apiv1.ContainerGroup) string {
			s := g.Spec
			if len(s.Specs) != 2 || s.Specs[1] != "4-8Gi" || len(s.VSwitchIDs) != 2 || s.Tags["env"] != "prod" || s.ExtraEphemeralStorage != 50 ||
				len(s.HostAliases) != 1 || s.HostAliases[0].Hostnames[0] != "db" || s.PlainHTTPRegistries[0] != "reg.local:5000" {
				return "annotations"
			}
			if s.InsecureRegistries[0] != "reg.local:5443" || s.ScheduleStrategy != "VSwitchRandom" || len(s.SecurityGroupIDs) != 2 || s.SecurityGroupIDs[1] != "sg-b" ||
				s.MaxPendingMinutes != 30 || s.FailStrategy != "fail-fast" {
				return "annotations (network, pending)"
			}
			return ""
		}},
		{name: "bandwidth annotations, the service's winning over Kubernetes'", pod: pod(func(p *corev1.Pod) {
			p.Annotations[AnnIngressBandwidth] = "10M"
			p.Annotations[AnnEgressBandwidth] = "1M"
			p.Annotations[AnnECIEgressBandwidth] = "5M"
		}), check: func(g *apiv1.ContainerGroup) string {
			if g.Spec.IngressBandwidth != 10e6 || g.Spec.EgressBandwidth != 5e6 {
				return "bandwidth"
			}
			return ""
		}},
		{name: "a StatefulSet pod's fixed IP, keyed by the cluster, namespace and name", pod: pod(func(p *corev1.Pod) {
			p.OwnerReferences = []metav1.OwnerReference{{Kind: "StatefulSet", Name: "db"}}
			p.Annotations[AnnFixedIP] = "true"
			p.Annotations[AnnFixedIPRetain] = "12"
		}), check: func(g *apiv1.ContainerGroup) string {
			if !strings.HasSuffix(g.Spec.FixedIPKey, "/"+g.Metadata.Labels[LabelPodNamespace]+"/"+g.Metadata.Labels[LabelPodName]) || g.Spec.FixedIPRetainHours != 12 {
				return "fixed IP"
			}
			return ""
		}},
		{name: "a fixed IP for a pod of its own", pod: pod(func(p *corev1.Pod) { p.Annotations[AnnFixedIP] = "true" }),
			refuse: "FixedIPNotSupported:eci-private-ip-address"},
		{name: "an EIP of the pod's own, or the tenant's", pod: pod(func(p *corev1.Pod) {
			p.Annotations[AnnWithEIP] = "true"
			p.Annotations[AnnEIPInstanceID] = "eip-c612c081"
		}), check: func(g *apiv1.ContainerGroup) string {
			if !g.Spec.WithEIP || g.Spec.EIPID != "eip-c612c081" {
				return "eip"
			}
			return ""
		}},
		{name: "eci-with-eip that is no boolean", pod: pod(func(p *corev1.Pod) { p.Annotations[AnnWithEIP] = "yes please" }),
			refuse: "InvalidAnnotation:true or false"},
		{name: "IPv6 dual stack", pod: pod(func(p *corev1.Pod) { p.Annotations[AnnEnableIPv6] = "true" }), check: func(g *apiv1.ContainerGroup) string {
			if !g.Spec.EnableIPv6 {
				return "enableIpv6"
			}
			return ""
		}},
		{name: "no IPv6 unless asked", pod: pod(func(p *corev1.Pod) { p.Annotations[AnnEnableIPv6] = "false" }), check: func(g *apiv1.ContainerGroup) string {
			if g.Spec.EnableIPv6 {
				return "enableIpv6"
			}
			return ""
		}},
		{name: "eci-enable-ipv6 that is no boolean", pod: pod(func(p *corev1.Pod) { p.Annotations[AnnEnableIPv6] = "dual" }),
			refuse: `InvalidAnnotation:k8s.aliyun.com/eci-enable-ipv6="dual" is not valid: expected true or false`},
		{name: "a bandwidth that is no quantity", pod: pod(func(p *corev1.Pod) { p.Annotations[AnnEgressBandwidth] = "fast" }),
			refuse: "InvalidAnnotation:such as 10M"},
		{name: "a malformed annotation is quoted with the expected form", pod: pod(func(p *corev1.Pod) { p.Annotations[AnnCustomHosts] = "db=1.2.3.4" }),
			refuse: "InvalidAnnotation:expected a JSON list"},
		{name: "too many tags", pod: pod(func(p *corev1.Pod) { p.Annotations[AnnCustomTags] = "a:1,b:2,c:3,d:4" }), refuse: "InvalidAnnotation:at most 3"},
		{name: "hostPath", pod: pod(func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "h", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/"}}}}
		}), refuse: "HostPathNotSupported:NFS"},
		{name: "hostNetwork", pod: pod(func(p *corev1.Pod) { p.Spec.HostNetwork = true }), refuse: "HostNetworkNotSupported:LoadBalancer"},
		{name: "privileged", pod: pod(func(p *corev1.Pod) {
			yes := true
			p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{Privileged: &yes}
		}), refuse: "PrivilegedNotSupported:capabilities"},
		{name: "a capability beyond the allowlist", pod: pod(func(p *corev1.Pod) {
			p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"NET_ADMIN", "CAP_SYS_ADMIN"}}}
		}), refuse: "CapabilityNotAllowed:add[1]: SYS_ADMIN may not be added"},
		{name: "ALL capabilities", pod: pod(func(p *corev1.Pod) {
			p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"ALL"}}}
		}), refuse: "CapabilityNotAllowed:allowed: AUDIT_WRITE"},
		{name: "Unconfined seccomp on the pod", pod: pod(func(p *corev1.Pod) {
			p.Spec.SecurityContext = &corev1.PodSecurityContext{SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeUnconfined}}
		}), refuse: "SeccompProfileNotAllowed:allowed: RuntimeDefault"},
		{name: "allowed capabilities pass", pod: pod(func(p *corev1.Pod) {
			p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"NET_ADMIN", "CAP_SYS_PTRACE"}, Drop: []corev1.Capability{"ALL"}}}
		}), check: func(g *apiv1.ContainerGroup) string {
			if sc := g.Spec.Containers[0].SecurityContext; sc == nil || len(sc.Capabilities.Add) != 2 {
				return "capabilities"
			}
			return ""
		}},
		{name: "DaemonSet pods", pod: pod(func(p *corev1.Pod) { p.OwnerReferences = []metav1.OwnerReference{{Kind: "DaemonSet", Name: "x"}} }), refuse: "DaemonSetNotSupported:sidecar"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, err := p.toGroup(t.Context(), tc.pod)
			if tc.refuse != "" {
				reason, word, _ := strings.Cut(tc.refuse, ":")
				var r *refusal
				if !errors.As(err, &r) || r.Reason != reason || !strings.Contains(r.Message, word) {
					t.Fatalf("want %s naming %q, got %v", reason, word, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if bad := tc.check(g); bad != "" {
				t.Fatalf("%s: %+v", bad, g.Spec)
			}
		})
	}
}

func TestMissingSecretWaits(t *testing.T) {
	p := &Provider{cfg: Config{ClusterID: "c1", Files: noFiles{}}}
	_, err := p.toGroup(t.Context(), pod(func(p *corev1.Pod) {
		p.Spec.Volumes = []corev1.Volume{{Name: "s", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "db"}}}}
	}))
	var missing *errMissing
	if !errors.As(err, &missing) || !strings.Contains(err.Error(), "secret shop/db") {
		t.Fatalf("want the missing secret named, got %v", err)
	}
	optional := true
	if _, err := p.toGroup(t.Context(), pod(func(p *corev1.Pod) {
		p.Spec.Volumes = []corev1.Volume{{Name: "s", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "db", Optional: &optional}}}}
	})); err != nil {
		t.Fatalf("an optional secret that is missing: %v", err)
	}
}

// ClusterFirst on a node with no cluster DNS falls back to Default (the
// agent's --resolv-conf) with the kubelet's MissingClusterDNS event.
func TestClusterFirstWithoutClusterDNS(t *testing.T) {
	rec := record.NewFakeRecorder(4)
	p := &Provider{cfg: Config{ClusterID: "c1", Files: noFiles{}, ClusterDomain: "cluster.local", Recorder: rec}}
	g, err := p.toGroup(t.Context(), pod(nil))
	if err != nil {
		t.Fatal(err)
	}
	if g.Spec.DNSConfig != nil {
		t.Fatalf("DNS %+v, want none (the host's)", g.Spec.DNSConfig)
	}
	select {
	case ev := <-rec.Events:
		if !strings.Contains(ev, "Warning MissingClusterDNS") || !strings.Contains(ev, `Falling back to "Default" policy`) {
			t.Fatalf("event %q", ev)
		}
	default:
		t.Fatal("no MissingClusterDNS event")
	}
	none := pod(func(p *corev1.Pod) { p.Spec.DNSPolicy = corev1.DNSDefault })
	if _, err := p.toGroup(t.Context(), none); err != nil {
		t.Fatal(err)
	}
	if len(rec.Events) != 0 {
		t.Fatalf("dnsPolicy Default made an event: %q", <-rec.Events)
	}
}

// The DNS a pod's policy gives, as the kubelet's: ClusterFirst composed by
// the node (policy None to the agent), Default and the fallback merged by
// the agent into the host's, None alone.
func TestDNSPolicies(t *testing.T) {
	rec := record.NewFakeRecorder(8)
	p := &Provider{cfg: Config{ClusterID: "c1", Files: noFiles{}, ClusterDNS: []string{"198.18.0.10", "198.18.0.11"}, ClusterDomain: "cluster.local", Recorder: rec}}
	five, two := "5", "2"
	own := &corev1.PodDNSConfig{Nameservers: []string{"198.18.0.10", "198.18.0.20", "198.18.0.21"}, Searches: []string{"svc.cluster.local", "corp.test"},
		Options: []corev1.PodDNSConfigOption{{Name: "ndots", Value: &two}, {Name: "edns0"}}}
	for _, c := range []struct {
		name   string
		policy corev1.DNSPolicy
		dns    *corev1.PodDNSConfig
		want   string
	}{
		{"ClusterFirst: the cluster's, the pod's merged, 3 nameservers at most", corev1.DNSClusterFirst, own,
			"None [198.18.0.10 198.18.0.11 198.18.0.20] [shop.svc.cluster.local svc.cluster.local cluster.local corp.test] [{ndots 2} {edns0 }]"},
		{"ClusterFirst alone", "", nil, "None [198.18.0.10 198.18.0.11] [shop.svc.cluster.local svc.cluster.local cluster.local] [{ndots " + five + "}]"},
		{"Default: the pod's, for the agent to merge into the host's", corev1.DNSDefault, own,
			"Default [198.18.0.10 198.18.0.20 198.18.0.21] [svc.cluster.local corp.test] [{ndots 2} {edns0 }]"},
		{"Default alone: the host's", corev1.DNSDefault, nil, "Default <nil>"},
		{"None: the pod's alone", corev1.DNSNone, own, "None [198.18.0.10 198.18.0.20 198.18.0.21] [svc.cluster.local corp.test] [{ndots 2} {edns0 }]"},
	} {
		pd := pod(func(pp *corev1.Pod) { pp.Spec.DNSPolicy, pp.Spec.DNSConfig = c.policy, c.dns })
		g, err := p.toGroup(t.Context(), pd)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		got := string(g.Spec.DNSPolicy) + " <nil>"
		if d := g.Spec.DNSConfig; d != nil {
			got = fmt.Sprint(g.Spec.DNSPolicy, " ", d.Nameservers, " ", d.Searches, " ", d.Options)
		}
		if got != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.name, got, c.want)
		}
	}
	select {
	case ev := <-rec.Events:
		if !strings.Contains(ev, "DNSConfigForming") || !strings.Contains(ev, "198.18.0.10 198.18.0.11 198.18.0.20") {
			t.Fatalf("event %q, want DNSConfigForming with the applied nameservers", ev)
		}
	default:
		t.Fatal("no DNSConfigForming event for 4 nameservers")
	}
	if p.cfg.ClusterDNS[0] != "198.18.0.10" || len(p.cfg.ClusterDNS) != 2 {
		t.Fatalf("the node's --cluster-dns changed: %v", p.cfg.ClusterDNS)
	}
}

// The eci-custom-dnsconfig annotation: its DNS is all of it when it names
// nameservers (None), else merged into the host's (Default).
func TestCustomDNSAnnotation(t *testing.T) {
	p := &Provider{cfg: Config{ClusterID: "c1", Files: noFiles{}, ClusterDNS: []string{"198.18.0.10"}, ClusterDomain: "cluster.local"}}
	for ann, want := range map[string]string{
		`{"nameservers":["198.18.0.53"],"searches":["corp.test"],"options":[{"name":"ndots","value":"2"}]}`: "None [198.18.0.53] [corp.test] [{ndots 2}]",
		`{"searches":["corp.test"]}`: "Default [] [corp.test] []",
	} {
		pd := pod(func(pp *corev1.Pod) { pp.Annotations = map[string]string{AnnCustomDNS: ann} })
		g, err := p.toGroup(t.Context(), pd)
		if err != nil {
			t.Fatalf("%s: %v", ann, err)
		}
		d := g.Spec.DNSConfig
		if got := fmt.Sprint(g.Spec.DNSPolicy, " ", d.Nameservers, " ", d.Searches, " ", d.Options); got != want {
			t.Errorf("%s: %s, want %s", ann, got, want)
		}
	}
	pd := pod(func(pp *corev1.Pod) {
		pp.Annotations = map[string]string{AnnCustomDNS: `{"nameserver":["198.18.0.53"]}`}
	})
	if _, err := p.toGroup(t.Context(), pd); err == nil || !strings.Contains(err.Error(), AnnCustomDNS) {
		t.Fatalf("a misspelt field: %v, want a refusal naming the annotation", err)
	}
}

// A ClusterFirst pod with 32 searches of its own: the composed line is cut
// to 32, with the kubelet's DNSConfigForming event, not refused.
func TestClusterFirstSearchLimit(t *testing.T) {
	rec := record.NewFakeRecorder(4)
	p := &Provider{cfg: Config{ClusterID: "c1", Files: noFiles{}, ClusterDNS: []string{"198.18.0.10"}, ClusterDomain: "cluster.local", Recorder: rec}}
	var own []string
	for i := range 32 {
		own = append(own, fmt.Sprintf("d%d.test", i))
	}
	g, err := p.toGroup(t.Context(), pod(func(pp *corev1.Pod) { pp.Spec.DNSConfig = &corev1.PodDNSConfig{Searches: own} }))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(g.Spec.DNSConfig.Searches); n != 32 || g.Spec.DNSConfig.Searches[0] != "shop.svc.cluster.local" {
		t.Fatalf("%d searches %v, want the cluster's first, 32 in all", n, g.Spec.DNSConfig.Searches)
	}
	if err := apiv1.ValidateContainerGroup(g); err != nil {
		t.Fatalf("the service refuses it: %v", err)
	}
	if ev := <-rec.Events; !strings.Contains(ev, "DNSConfigForming") || !strings.Contains(ev, "Search Line limits") {
		t.Fatalf("event %q", ev)
	}
}
