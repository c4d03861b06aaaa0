package vnode

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	apiv1 "github.com/eci-dev/eci/api/v1"
)

// FuzzPodToGroup builds pods that Kubernetes' validation accepts from the
// fuzzer's bytes (names, ports, probes, hooks, security contexts, volumes,
// subPaths, sizes and annotations drawn from edges that pods in the wild
// have), and translates them: none may panic, and each is either refused (a
// refusal becomes the pod's Failed status and an Event; a missing object
// keeps it waiting) or becomes a group the service's validation accepts.
func FuzzPodToGroup(f *testing.F) {
	for _, seed := range []string{"", "\x00", "\x01\x02\x03\x04\x05\x06\x07\x08\x09", "\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8", strings.Repeat("\x07\x03", 40)} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		pod := (&podGen{data: data}).pod()
		p := &Provider{cfg: Config{NodeName: "eci-vnode-with-a-rather-long-node-name", ClusterID: "eci-vnode-with-a-rather-long-node-name",
			Files: fuzzFiles{}, ClusterDNS: []string{"198.18.0.10"}, ClusterDomain: "cluster.local"}}
		g, err := p.toGroup(t.Context(), pod)
		var r *refusal
		var missing *errMissing
		switch {
		case errors.As(err, &r), errors.As(err, &missing):
			return
		case err != nil:
			t.Fatalf("an error that is neither a refusal nor a missing object: %v\npod: %s", err, dump(pod))
		}
		var fes apiv1.FieldErrors
		if err := apiv1.ValidateContainerGroup(g); errors.As(err, &fes) {
			for _, fe := range fes {
				if !usersOwn(fe.Field) {
					t.Fatalf("the service refuses the group of a valid pod: %v\npod: %s", err, dump(pod))
				}
			}
		} else if err != nil {
			t.Fatal(err)
		}
	})
}

// usersOwn tells the fields whose value is the user's own, passed on as
// given (sizes and annotations): the service's 422 names the field and what
// is allowed, and the pod fails with that message as an Event
// (InvalidInstance). Every other field is the translation's doing and must
// pass.
func usersOwn(field string) bool {
	for _, f := range []string{"spec.cpu", "spec.memory", "spec.specs", "spec.containers", "spec.vSwitchIds", "spec.scheduleStrategy",
		"spec.securityGroupIds", "spec.privateIpAddress", "spec.tags", "spec.extraEphemeralStorage", "spec.maxPendingMinutes",
		"spec.failStrategy", "spec.plainHttpRegistries", "spec.insecureRegistries"} {
		if field == f || strings.HasPrefix(field, f+"[") || strings.HasPrefix(field, f+".") {
			return !strings.HasPrefix(field, "spec.containers[") // a container's fields are translated
		}
	}
	return false
}

func dump(v any) string { b, _ := json.Marshal(v); return string(b) }

// fuzzFiles has configMap "cm" and secret "s"; others are missing.
type fuzzFiles struct{}

func (fuzzFiles) configMap(_, name string) (map[string][]byte, error) {
	if name == "cm" {
		return map[string][]byte{"app.conf": []byte("a=1"), "b": nil}, nil
	}
	return nil, nil
}

func (fuzzFiles) secret(_, name string) (map[string][]byte, error) {
	if name == "s" {
		return map[string][]byte{"password": []byte("x")}, nil
	}
	return nil, nil
}

// podGen draws a valid pod from bytes; when they run out every choice is 0.
type podGen struct {
	data []byte
	i    int
}

func (g *podGen) n(max int) int {
	if g.i >= len(g.data) {
		return 0
	}
	b := int(g.data[g.i])
	g.i++
	return b % max
}

func pick[T any](g *podGen, options ...T) T { return options[g.n(len(options))] }

func (g *podGen) pod() *corev1.Pod {
	name := pick(g, "web-0", "web.v1", strings.Repeat("a", 62)+"."+strings.Repeat("b", 100), strings.Repeat("x", 253), "a", "job-28934723-abcde")
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: pick(g, "default", "shop", strings.Repeat("n", 63)), UID: "0c3e2b6a-5b4d-4c1f-9f1e-2a7d3c4b5e6f",
		Annotations: map[string]string{}}}
	s := &pod.Spec
	s.Hostname = pick(g, "", "db", strings.Repeat("h", 63))
	if s.Hostname != "" {
		s.Subdomain = pick(g, "", "svc")
	}
	s.RestartPolicy = pick(g, corev1.RestartPolicyAlways, corev1.RestartPolicyOnFailure, corev1.RestartPolicyNever)
	if g.n(2) == 1 {
		d := int64(pick(g, 1, 30, 3600))
		s.ActiveDeadlineSeconds = &d
	}
	grace := int64(pick(g, 0, 30, 600))
	s.TerminationGracePeriodSeconds = &grace
	s.DNSPolicy = pick(g, corev1.DNSClusterFirst, corev1.DNSDefault, corev1.DNSNone, corev1.DNSClusterFirstWithHostNet)
	if s.DNSPolicy == corev1.DNSNone || g.n(2) == 1 {
		s.DNSConfig = &corev1.PodDNSConfig{Nameservers: []string{pick(g, "198.18.0.53", "fd00::53")}, Searches: []string{"example.test"},
			Options: []corev1.PodDNSConfigOption{{Name: "ndots", Value: ptr("2")}}}
	}
	if g.n(2) == 1 {
		s.HostAliases = []corev1.HostAlias{{IP: pick(g, "198.18.0.9", "fd00::9"), Hostnames: []string{"db.internal", "db"}}}
	}
	if g.n(3) == 1 {
		s.SecurityContext = &corev1.PodSecurityContext{RunAsUser: ptr(int64(pick(g, 0, 1000))), RunAsNonRoot: ptr(g.n(2) == 1),
			Sysctls: []corev1.Sysctl{{Name: pick(g, "net.ipv4.ip_unprivileged_port_start", "kernel.shm_rmid_forced", "net.core.somaxconn"), Value: "0"}}}
		if g.n(2) == 1 {
			s.SecurityContext.SeccompProfile = &corev1.SeccompProfile{Type: pick(g, corev1.SeccompProfileTypeRuntimeDefault, corev1.SeccompProfileTypeUnconfined, corev1.SeccompProfileTypeLocalhost)}
		}
	}
	volumes := g.volumes(s)
	for i := range 1 + g.n(3) {
		s.Containers = append(s.Containers, g.container(fmt.Sprintf("c%d", i), volumes, false))
	}
	for i := range g.n(3) {
		s.InitContainers = append(s.InitContainers, g.container(fmt.Sprintf("init%d", i), volumes, true))
	}
	if g.n(2) == 1 {
		s.ImagePullSecrets = []corev1.LocalObjectReference{{Name: pick(g, "s", "gone")}}
	}
	for range g.n(4) {
		key, value := g.annotation()
		pod.Annotations[key] = value
	}
	return pod
}

func (g *podGen) volumes(s *corev1.PodSpec) []string {
	var names []string
	for i := range g.n(4) {
		v := corev1.Volume{Name: fmt.Sprintf("v%d", i)}
		switch g.n(6) {
		case 0:
			v.EmptyDir = &corev1.EmptyDirVolumeSource{Medium: pick(g, corev1.StorageMediumDefault, corev1.StorageMediumMemory)}
			if g.n(2) == 1 {
				q := resource.MustParse(pick(g, "1", "64Mi", "1Gi", "1500m"))
				v.EmptyDir.SizeLimit = &q
			}
		case 1:
			v.ConfigMap = &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: pick(g, "cm", "gone")}, Optional: ptr(g.n(2) == 1)}
			if g.n(2) == 1 {
				v.ConfigMap.Items = []corev1.KeyToPath{{Key: "app.conf", Path: pick(g, "app.conf", "deep/er/app.conf"), Mode: ptr(int32(0o400))}}
			}
		case 2:
			v.Secret = &corev1.SecretVolumeSource{SecretName: pick(g, "s", "gone"), DefaultMode: ptr(int32(pick(g, 0o644, 0o400, 0o777)))}
		case 3:
			v.DownwardAPI = &corev1.DownwardAPIVolumeSource{Items: []corev1.DownwardAPIVolumeFile{{Path: "labels", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels"}}}}
		case 4:
			v.NFS = &corev1.NFSVolumeSource{Server: pick(g, "198.18.0.9", "nas.example"), Path: "/exports/a", ReadOnly: g.n(2) == 1}
		case 5:
			v.HostPath = &corev1.HostPathVolumeSource{Path: "/var/run"}
		}
		s.Volumes = append(s.Volumes, v)
		names = append(names, v.Name)
	}
	return names
}

func (g *podGen) container(name string, volumes []string, init bool) corev1.Container {
	c := corev1.Container{Name: name, Image: pick(g, "busybox", "registry.example:5000/team/app:v1.2@sha256:"+strings.Repeat("a", 64), "nginx:latest"),
		ImagePullPolicy: pick(g, corev1.PullIfNotPresent, corev1.PullAlways, corev1.PullNever), TerminationMessagePolicy: corev1.TerminationMessageReadFile}
	if g.n(2) == 1 {
		c.Command = []string{"sh", "-c", "sleep 3600"}
	}
	c.Env = []corev1.EnvVar{{Name: pick(g, "A", "my.var", "_X", "a-b"), Value: "v"}}
	if g.n(2) == 1 {
		c.Ports = []corev1.ContainerPort{{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}, {Name: "dns", ContainerPort: 53, Protocol: corev1.ProtocolUDP}}
	}
	c.Resources = g.resources()
	if !init {
		c.LivenessProbe, c.ReadinessProbe, c.StartupProbe = g.probe(c), g.probe(c), g.probe(c)
		if g.n(2) == 1 {
			c.Lifecycle = &corev1.Lifecycle{PostStart: g.handler(c), PreStop: g.handler(c)}
		}
	}
	if g.n(2) == 1 {
		c.SecurityContext = &corev1.SecurityContext{ReadOnlyRootFilesystem: ptr(g.n(2) == 1), AllowPrivilegeEscalation: ptr(g.n(2) == 1),
			Privileged: ptr(g.n(5) == 1), Capabilities: &corev1.Capabilities{
				Add:  []corev1.Capability{pick[corev1.Capability](g, "NET_ADMIN", "CAP_NET_RAW", "SYS_PTRACE", "SYS_ADMIN", "ALL", "CAP_SYS_MODULE", "BPF")},
				Drop: []corev1.Capability{pick[corev1.Capability](g, "ALL", "NET_RAW", "CAP_CHOWN")}}}
		if g.n(2) == 1 {
			c.SecurityContext.SeccompProfile = &corev1.SeccompProfile{Type: pick(g, corev1.SeccompProfileTypeRuntimeDefault, corev1.SeccompProfileTypeUnconfined)}
		}
	}
	mountPaths := map[string]bool{}
	for _, v := range volumes {
		if g.n(2) == 0 {
			continue
		}
		path := pick(g, "/data", "/etc/app", "/data/sub", "/var/lib/x", "/etc/hosts")
		if mountPaths[path] {
			continue
		}
		mountPaths[path] = true
		c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: v, MountPath: path, ReadOnly: g.n(2) == 1,
			SubPath: pick(g, "", "x", "a/b/c", "app.conf", "..data", "a..b")})
	}
	return c
}

func (g *podGen) resources() corev1.ResourceRequirements {
	q := func() resource.Quantity { return resource.MustParse(pick(g, "100m", "1", "2", "250m", "7", "64")) }
	m := func() resource.Quantity {
		return resource.MustParse(pick(g, "128Mi", "1Gi", "4Gi", "13Gi", "100M", "512Gi"))
	}
	r := corev1.ResourceRequirements{}
	switch g.n(4) {
	case 1:
		r.Requests = corev1.ResourceList{corev1.ResourceCPU: q(), corev1.ResourceMemory: m()}
	case 2:
		r.Limits = corev1.ResourceList{corev1.ResourceCPU: q(), corev1.ResourceMemory: m()}
		r.Requests = r.Limits
	case 3:
		r.Limits = corev1.ResourceList{corev1.ResourceMemory: m()}
	}
	return r
}

func (g *podGen) port(c corev1.Container) intstr.IntOrString {
	if len(c.Ports) > 0 && g.n(2) == 1 {
		return intstr.FromString(c.Ports[g.n(len(c.Ports))].Name)
	}
	return intstr.FromInt32(int32(pick(g, 80, 8080, 65535)))
}

func (g *podGen) probe(c corev1.Container) *corev1.Probe {
	if g.n(2) == 0 {
		return nil
	}
	p := &corev1.Probe{PeriodSeconds: int32(pick(g, 1, 10)), FailureThreshold: 3, SuccessThreshold: 1, TimeoutSeconds: 1}
	switch g.n(4) {
	case 0:
		p.Exec = &corev1.ExecAction{Command: []string{"true"}}
	case 1:
		p.HTTPGet = &corev1.HTTPGetAction{Path: pick(g, "/", "/healthz?x=1"), Port: g.port(c), Scheme: pick(g, corev1.URISchemeHTTP, corev1.URISchemeHTTPS)}
	case 2:
		p.TCPSocket = &corev1.TCPSocketAction{Port: g.port(c)}
	case 3:
		p.GRPC = &corev1.GRPCAction{Port: int32(pick(g, 9000, 1))}
	}
	return p
}

func (g *podGen) handler(c corev1.Container) *corev1.LifecycleHandler {
	switch g.n(5) {
	case 0:
		return nil
	case 1:
		return &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"true"}}}
	case 2:
		return &corev1.LifecycleHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/quit", Port: g.port(c)}}
	case 3:
		return &corev1.LifecycleHandler{TCPSocket: &corev1.TCPSocketAction{Port: g.port(c)}}
	}
	return &corev1.LifecycleHandler{Sleep: &corev1.SleepAction{Seconds: int64(pick(g, 0, 5))}}
}

func (g *podGen) annotation() (string, string) {
	switch g.n(15) {
	case 0:
		return AnnUseSpecs, pick(g, "2-4Gi", "1-2Gi,4-8Gi", "ecs.c6.large", "0.25-0.5Gi", "128-1024Gi")
	case 1:
		return AnnVSwitch, pick(g, "vsw-a", "vsw-a,vsw-b", "")
	case 2:
		return AnnScheduleStrat, pick(g, "VSwitchOrdered", "VSwitchRandom", "Nope")
	case 3:
		return AnnSecurityGroup, pick(g, "sg-1", "sg-1,sg-2,sg-3,sg-4,sg-5,sg-6")
	case 4:
		return AnnPrivateIP, pick(g, "198.18.0.20", "nope", "fd00::1")
	case 5:
		return AnnCustomTags, pick(g, "team:web", "a:1,b:2,c:3,d:4", "noval")
	case 6:
		return AnnCustomHosts, pick(g, `[{"host":"db","ip":"198.18.0.9"}]`, `nope`)
	case 7:
		return AnnCustomDNS, pick(g, `{"nameservers":["198.18.0.53"]}`, `{`)
	case 8:
		return AnnExtraEphemeral, pick(g, "50Gi", "-1", "3000Gi", "x")
	case 9:
		return AnnMaxPending, pick(g, "10", "9", "soon", "1441")
	case 10:
		return AnnFailStrategy, pick(g, "fail-fast", "fail-back", "nope")
	case 11:
		return AnnPlainHTTP, pick(g, "reg.local:5000", "bad host")
	case 12:
		return AnnInsecure, pick(g, "reg.local", "a b")
	case 13:
		return AnnEnableIPv6, pick(g, "true", "false", "dual")
	}
	return "k8s.aliyun.com/eci-unknown", "x"
}
