package v1

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func validGroup() *ContainerGroup {
	return &ContainerGroup{
		Metadata: ObjectMeta{Name: "web"},
		Spec: ContainerGroupSpec{
			Containers: []Container{{Name: "app", Image: "busybox:1.35"}},
		},
	}
}

func i64(v int64) *int64 { return &v }
func i32(v int32) *int32 { return &v }
func yes() *bool         { b := true; return &b }

func TestValidGroupPasses(t *testing.T) {
	g := validGroup()
	g.Spec.CPU, g.Spec.Memory = 2, 4
	g.Spec.Volumes = []Volume{
		{Name: "scratch", EmptyDir: &EmptyDirVolume{Medium: "Memory", SizeLimitMiB: 64}},
		{Name: "config", Files: &FilesVolume{Files: []File{{Path: "app/config.yaml", Content: []byte("a: 1")}}}},
		{Name: "share", NFS: &NFSVolume{Server: "198.18.0.9", Path: "/exports/a"}},
	}
	g.Spec.InitContainers = []Container{{Name: "init", Image: "busybox", Command: []string{"true"}}}
	g.Spec.Containers[0].VolumeMounts = []VolumeMount{{Name: "scratch", MountPath: "/tmp/x"}, {Name: "config", MountPath: "/etc/app", ReadOnly: true}}
	g.Spec.Containers[0].LivenessProbe = &Probe{HTTPGet: &HTTPGetAction{Path: "/healthz", Port: 8080}}
	g.Spec.Containers[0].SecurityContext = &SecurityContext{RunAsUser: i64(1000), Capabilities: &Capabilities{Add: []string{"NET_ADMIN"}, Drop: []string{"ALL"}}}
	g.Spec.DNSConfig = &DNSConfig{Nameservers: []string{"198.18.0.10"}, Searches: []string{"svc.cluster.local"}}
	g.Spec.Specs = nil
	g.Spec.MaxPendingMinutes = 10
	g.Spec.FailStrategy = FailFast
	g.Spec.Hostname = "web.v1-0" // a pod's name with dots, as the kubelet's hostnames
	if err := ValidateContainerGroup(g); err != nil {
		t.Fatalf("valid group refused: %v", err)
	}
}

// Every rule: the field path it names and a word of what is allowed.
func TestValidationRules(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(g *ContainerGroup)
		field  string
		says   string
	}{
		{"name required", func(g *ContainerGroup) { g.Metadata.Name = "" }, "metadata.name", "required"},
		{"name charset", func(g *ContainerGroup) { g.Metadata.Name = "Web_1" }, "metadata.name", "lowercase letters"},
		{"label key length", func(g *ContainerGroup) { g.Metadata.Labels = map[string]string{"": "x"} }, `metadata.labels[""]`, "1-128"},
		{"no containers", func(g *ContainerGroup) { g.Spec.Containers = nil }, "spec.containers", "at least one container"},
		{"too many containers", func(g *ContainerGroup) {
			for i := 0; i < 20; i++ {
				g.Spec.InitContainers = append(g.Spec.InitContainers, Container{Name: "i" + string(rune('a'+i)), Image: "x"})
			}
		}, "spec.containers", "at most 20"},
		{"too many volumes", func(g *ContainerGroup) {
			for i := 0; i < 21; i++ {
				g.Spec.Volumes = append(g.Spec.Volumes, Volume{Name: "v" + string(rune('a'+i)), EmptyDir: &EmptyDirVolume{}})
			}
		}, "spec.volumes", "at most 20"},
		{"container name", func(g *ContainerGroup) { g.Spec.Containers[0].Name = "App" }, "spec.containers[0].name", "lowercase"},
		{"duplicate container", func(g *ContainerGroup) {
			g.Spec.InitContainers = []Container{{Name: "app", Image: "x"}}
		}, "spec.containers[0].name", "another container"},
		{"image required", func(g *ContainerGroup) { g.Spec.Containers[0].Image = "" }, "spec.containers[0].image", "image reference"},
		{"image whitespace", func(g *ContainerGroup) { g.Spec.Containers[0].Image = "busy box" }, "spec.containers[0].image", "image reference"},
		{"pull policy", func(g *ContainerGroup) { g.Spec.Containers[0].ImagePullPolicy = "Sometimes" }, "spec.containers[0].imagePullPolicy", "IfNotPresent"},
		{"env name", func(g *ContainerGroup) { g.Spec.Containers[0].Env = []EnvVar{{Name: "1A"}} }, "spec.containers[0].env[0].name", "letters"},
		{"port range", func(g *ContainerGroup) { g.Spec.Containers[0].Ports = []Port{{ContainerPort: 70000}} }, "spec.containers[0].ports[0].containerPort", "1-65535"},
		{"port protocol", func(g *ContainerGroup) { g.Spec.Containers[0].Ports = []Port{{ContainerPort: 80, Protocol: "ICMP"}} }, "spec.containers[0].ports[0].protocol", "TCP"},
		{"port name twice", func(g *ContainerGroup) {
			g.Spec.Containers[0].Ports = []Port{{Name: "http", ContainerPort: 80}, {Name: "http", ContainerPort: 81}}
		}, "spec.containers[0].ports[1].name", "twice"},
		{"container cpu", func(g *ContainerGroup) { g.Spec.Containers[0].CPU = 65 }, "spec.containers[0].cpu", "0 to 64"},
		{"container memory", func(g *ContainerGroup) { g.Spec.Containers[0].Memory = -1 }, "spec.containers[0].memory", "0 to 512"},
		{"probe two handlers", func(g *ContainerGroup) {
			g.Spec.Containers[0].ReadinessProbe = &Probe{Exec: &ExecAction{Command: []string{"true"}}, TCPSocket: &TCPSocketAction{Port: 80}}
		}, "spec.containers[0].readinessProbe", "exactly one"},
		{"probe exec command", func(g *ContainerGroup) {
			g.Spec.Containers[0].LivenessProbe = &Probe{Exec: &ExecAction{}}
		}, "spec.containers[0].livenessProbe.exec.command", "required"},
		{"probe http path", func(g *ContainerGroup) {
			g.Spec.Containers[0].StartupProbe = &Probe{HTTPGet: &HTTPGetAction{Path: "healthz", Port: 80}}
		}, "spec.containers[0].startupProbe.httpGet.path", "start with /"},
		{"probe negative", func(g *ContainerGroup) {
			g.Spec.Containers[0].LivenessProbe = &Probe{TCPSocket: &TCPSocketAction{Port: 80}, PeriodSeconds: -1}
		}, "spec.containers[0].livenessProbe.periodSeconds", "0 or more"},
		{"grpc port", func(g *ContainerGroup) {
			g.Spec.Containers[0].LivenessProbe = &Probe{GRPC: &GRPCAction{Port: 0}}
		}, "spec.containers[0].livenessProbe.grpc.port", "1-65535"},
		{"hook none", func(g *ContainerGroup) { g.Spec.Containers[0].Lifecycle = &Lifecycle{PreStop: &Handler{}} }, "spec.containers[0].lifecycle.preStop", "exactly one"},
		{"init probe", func(g *ContainerGroup) {
			g.Spec.InitContainers = []Container{{Name: "init", Image: "x", LivenessProbe: &Probe{TCPSocket: &TCPSocketAction{Port: 1}}}}
		}, "spec.initContainers[0]", "may not have probes"},
		{"privileged", func(g *ContainerGroup) { g.Spec.Containers[0].SecurityContext = &SecurityContext{Privileged: true} }, "spec.containers[0].securityContext.privileged", "capabilities"},
		{"root and non-root", func(g *ContainerGroup) {
			g.Spec.Containers[0].SecurityContext = &SecurityContext{RunAsUser: i64(0), RunAsNonRoot: yes()}
		}, "spec.containers[0].securityContext.runAsUser", "runAsNonRoot"},
		{"seccomp", func(g *ContainerGroup) {
			g.Spec.Containers[0].SecurityContext = &SecurityContext{SeccompProfile: "Localhost"}
		}, "spec.containers[0].securityContext.seccompProfile", "RuntimeDefault"},
		{"seccomp unconfined", func(g *ContainerGroup) {
			g.Spec.Containers[0].SecurityContext = &SecurityContext{SeccompProfile: "Unconfined"}
		}, "spec.containers[0].securityContext.seccompProfile", "Unconfined is not allowed"},
		{"capability", func(g *ContainerGroup) {
			g.Spec.Containers[0].SecurityContext = &SecurityContext{Capabilities: &Capabilities{Add: []string{"net admin"}}}
		}, "spec.containers[0].securityContext.capabilities.add[0]", "NET_ADMIN"},
		{"capability drop", func(g *ContainerGroup) {
			g.Spec.Containers[0].SecurityContext = &SecurityContext{Capabilities: &Capabilities{Drop: []string{"ALL", "x"}}}
		}, "spec.containers[0].securityContext.capabilities.drop[1]", "not a capability name"},
		{"mount unknown volume", func(g *ContainerGroup) {
			g.Spec.Containers[0].VolumeMounts = []VolumeMount{{Name: "nope", MountPath: "/x"}}
		}, "spec.containers[0].volumeMounts[0].name", "not a volume"},
		{"mount relative path", func(g *ContainerGroup) {
			g.Spec.Volumes = []Volume{{Name: "v", EmptyDir: &EmptyDirVolume{}}}
			g.Spec.Containers[0].VolumeMounts = []VolumeMount{{Name: "v", MountPath: "x"}}
		}, "spec.containers[0].volumeMounts[0].mountPath", "absolute"},
		{"mount twice", func(g *ContainerGroup) {
			g.Spec.Volumes = []Volume{{Name: "v", EmptyDir: &EmptyDirVolume{}}}
			g.Spec.Containers[0].VolumeMounts = []VolumeMount{{Name: "v", MountPath: "/x"}, {Name: "v", MountPath: "/x/"}}
		}, "spec.containers[0].volumeMounts[1].mountPath", "twice"},
		{"subPath escapes", func(g *ContainerGroup) {
			g.Spec.Volumes = []Volume{{Name: "v", EmptyDir: &EmptyDirVolume{}}}
			g.Spec.Containers[0].VolumeMounts = []VolumeMount{{Name: "v", MountPath: "/x", SubPath: "../etc"}}
		}, "spec.containers[0].volumeMounts[0].subPath", "without .."},
		{"volume no source", func(g *ContainerGroup) { g.Spec.Volumes = []Volume{{Name: "v"}} }, "spec.volumes[0]", "hostPath is not supported"},
		{"volume two sources", func(g *ContainerGroup) {
			g.Spec.Volumes = []Volume{{Name: "v", EmptyDir: &EmptyDirVolume{}, NFS: &NFSVolume{Server: "a", Path: "/b"}}}
		}, "spec.volumes[0]", "exactly one"},
		{"volume name twice", func(g *ContainerGroup) {
			g.Spec.Volumes = []Volume{{Name: "v", EmptyDir: &EmptyDirVolume{}}, {Name: "v", EmptyDir: &EmptyDirVolume{}}}
		}, "spec.volumes[1].name", "twice"},
		{"emptyDir medium", func(g *ContainerGroup) {
			g.Spec.Volumes = []Volume{{Name: "v", EmptyDir: &EmptyDirVolume{Medium: "HugePages"}}}
		}, "spec.volumes[0].emptyDir.medium", "Memory"},
		{"file path escapes", func(g *ContainerGroup) {
			g.Spec.Volumes = []Volume{{Name: "v", Files: &FilesVolume{Files: []File{{Path: "../x"}}}}}
		}, "spec.volumes[0].files.files[0].path", "without .."},
		{"file path absolute", func(g *ContainerGroup) {
			g.Spec.Volumes = []Volume{{Name: "v", Files: &FilesVolume{Files: []File{{Path: "/x"}}}}}
		}, "spec.volumes[0].files.files[0].path", "relative"},
		{"file twice", func(g *ContainerGroup) {
			g.Spec.Volumes = []Volume{{Name: "v", Files: &FilesVolume{Files: []File{{Path: "a"}, {Path: "./a"}}}}}
		}, "spec.volumes[0].files.files[1].path", "twice"},
		{"file mode", func(g *ContainerGroup) {
			g.Spec.Volumes = []Volume{{Name: "v", Files: &FilesVolume{Files: []File{{Path: "a", Mode: i32(0o1777)}}}}}
		}, "spec.volumes[0].files.files[0].mode", "0777"},
		{"default mode", func(g *ContainerGroup) {
			g.Spec.Volumes = []Volume{{Name: "v", Files: &FilesVolume{DefaultMode: i32(-1)}}}
		}, "spec.volumes[0].files.defaultMode", "0777"},
		{"nfs server", func(g *ContainerGroup) { g.Spec.Volumes = []Volume{{Name: "v", NFS: &NFSVolume{Path: "/a"}}} }, "spec.volumes[0].nfs.server", "required"},
		{"nfs path", func(g *ContainerGroup) {
			g.Spec.Volumes = []Volume{{Name: "v", NFS: &NFSVolume{Server: "a", Path: "a"}}}
		}, "spec.volumes[0].nfs.path", "absolute"},
		{"restart policy", func(g *ContainerGroup) { g.Spec.RestartPolicy = "Sometimes" }, "spec.restartPolicy", "OnFailure"},
		{"grace negative", func(g *ContainerGroup) { g.Spec.TerminationGracePeriodSeconds = i64(-1) }, "spec.terminationGracePeriodSeconds", "0 or more"},
		{"deadline zero", func(g *ContainerGroup) { g.Spec.ActiveDeadlineSeconds = i64(0) }, "spec.activeDeadlineSeconds", "1 or more"},
		{"hostname", func(g *ContainerGroup) { g.Spec.Hostname = "-x" }, "spec.hostname", "lowercase"},
		{"hostname dot part", func(g *ContainerGroup) { g.Spec.Hostname = "web..v1" }, "spec.hostname", "between dots"},
		{"hostname long", func(g *ContainerGroup) { g.Spec.Hostname = strings.Repeat("a", 64) }, "spec.hostname", "up to 63"},
		{"nameserver", func(g *ContainerGroup) { g.Spec.DNSConfig = &DNSConfig{Nameservers: []string{"dns.local"}} }, "spec.dnsConfig.nameservers[0]", "IP address"},
		{"nameservers count", func(g *ContainerGroup) {
			g.Spec.DNSConfig = &DNSConfig{Nameservers: []string{"198.18.0.1", "198.18.0.2", "198.18.0.3", "198.18.0.4"}}
		}, "spec.dnsConfig.nameservers", "at most 3"},
		{"dns option", func(g *ContainerGroup) { g.Spec.DNSConfig = &DNSConfig{Options: []DNSOption{{Value: "2"}}} }, "spec.dnsConfig.options[0].name", "required"},
		// Nothing of a tenant's adds a line, a word or a zone to resolv.conf
		// or /etc/hosts.
		{"a search with a line", func(g *ContainerGroup) {
			g.Spec.DNSConfig = &DNSConfig{Searches: []string{"a.test\nnameserver 198.18.0.53"}}
		}, "spec.dnsConfig.searches[0]", "DNS name"},
		{"a search with a space", func(g *ContainerGroup) { g.Spec.DNSConfig = &DNSConfig{Searches: []string{"a.test b.test"}} }, "spec.dnsConfig.searches[0]", "DNS name"},
		{"too many searches", func(g *ContainerGroup) {
			g.Spec.DNSConfig = &DNSConfig{Searches: make([]string, 33)}
			for i := range g.Spec.DNSConfig.Searches {
				g.Spec.DNSConfig.Searches[i] = "a.test"
			}
		}, "spec.dnsConfig.searches", "at most 32"},
		{"a nameserver with a zone", func(g *ContainerGroup) {
			g.Spec.DNSConfig = &DNSConfig{Nameservers: []string{"fe80::1%x\nnameserver 198.18.0.53"}}
		}, "spec.dnsConfig.nameservers[0]", "IP address"},
		{"an option with a line", func(g *ContainerGroup) {
			g.Spec.DNSConfig = &DNSConfig{Options: []DNSOption{{Name: "ndots\nnameserver"}}}
		}, "spec.dnsConfig.options[0].name", "not allowed"},
		{"an option value with a space", func(g *ContainerGroup) {
			g.Spec.DNSConfig = &DNSConfig{Options: []DNSOption{{Name: "ndots", Value: "1 rotate"}}}
		}, "spec.dnsConfig.options[0].value", "not allowed"},
		{"dnsPolicy", func(g *ContainerGroup) { g.Spec.DNSPolicy = "ClusterFirst" }, "spec.dnsPolicy", "Default"},
		{"dnsPolicy None with no nameserver", func(g *ContainerGroup) { g.Spec.DNSPolicy = DNSNone }, "spec.dnsConfig.nameservers", "required"},
		{"a host alias with a line", func(g *ContainerGroup) {
			g.Spec.HostAliases = []HostAlias{{IP: "198.18.0.9", Hostnames: []string{"db\n198.18.0.10 evil"}}}
		}, "spec.hostAliases[0].hostnames[0]", "DNS name"},
		{"host alias ip", func(g *ContainerGroup) { g.Spec.HostAliases = []HostAlias{{IP: "x", Hostnames: []string{"a"}}} }, "spec.hostAliases[0].ip", "IP address"},
		{"host alias names", func(g *ContainerGroup) { g.Spec.HostAliases = []HostAlias{{IP: "198.18.0.1"}} }, "spec.hostAliases[0].hostnames", "required"},
		{"unsafe sysctl", func(g *ContainerGroup) { g.Spec.Sysctls = []Sysctl{{Name: "kernel.panic", Value: "1"}} }, "spec.sysctls[0].name", "net.ipv4.tcp_syncookies"},
		{"sysctl value", func(g *ContainerGroup) { g.Spec.Sysctls = []Sysctl{{Name: "net.ipv4.tcp_syncookies"}} }, "spec.sysctls[0].value", "required"},
		{"vswitch repeated", func(g *ContainerGroup) { g.Spec.VSwitchIDs = []string{"vsw-a", "vsw-a"} }, "spec.vSwitchIds[1]", "repeated"},
		{"schedule strategy", func(g *ContainerGroup) { g.Spec.ScheduleStrategy = "Spread" }, "spec.scheduleStrategy", "VSwitchOrdered"},
		{"security groups", func(g *ContainerGroup) { g.Spec.SecurityGroupIDs = []string{"a", "b", "c", "d", "e", "f"} }, "spec.securityGroupIds", "at most 5"},
		{"private ip", func(g *ContainerGroup) { g.Spec.PrivateIPAddress = "2001:db8::1" }, "spec.privateIpAddress", "IPv4"},
		{"fixed IP key", func(g *ContainerGroup) { g.Spec.FixedIPKey = "Web_0" }, "spec.fixedIpKey", "a-z, 0-9"},
		{"fixed IP and private IP", func(g *ContainerGroup) { g.Spec.FixedIPKey, g.Spec.PrivateIPAddress = "c/ns/web-0", "198.19.128.9" }, "spec.fixedIpKey", "one of them"},
		{"fixed IP kept too long", func(g *ContainerGroup) { g.Spec.FixedIPRetainHours = 9000 }, "spec.fixedIpRetainHours", "8760"},
		{"an EIP id", func(g *ContainerGroup) { g.Spec.EIPID = "eip-x" }, "spec.eipId", "8 hex digits"},
		{"bandwidth below 1 kbit/s", func(g *ContainerGroup) { g.Spec.IngressBandwidth = 500 }, "spec.ingressBandwidth", "1 kbit/s"},
		{"bandwidth above 32 Gbit/s", func(g *ContainerGroup) { g.Spec.EgressBandwidth = 40e9 }, "spec.egressBandwidth", "32 Gbit/s"},
		{"credential server", func(g *ContainerGroup) {
			g.Spec.ImageRegistryCredentials = []RegistryCredential{{Username: "u"}}
		}, "spec.imageRegistryCredentials[0].server", "required"},
		{"plain http registry", func(g *ContainerGroup) { g.Spec.PlainHTTPRegistries = []string{"http://r:5000"} }, "spec.plainHttpRegistries[0]", "host:port"},
		{"insecure registry", func(g *ContainerGroup) { g.Spec.InsecureRegistries = []string{"r 1"} }, "spec.insecureRegistries[0]", "host:port"},
		{"extra storage", func(g *ContainerGroup) { g.Spec.ExtraEphemeralStorage = -5 }, "spec.extraEphemeralStorage", "0 to 2048"},
		{"tags count", func(g *ContainerGroup) {
			g.Spec.Tags = map[string]string{}
			for i := 0; i < 21; i++ {
				g.Spec.Tags[string(rune('a'+i))] = "x"
			}
		}, "spec.tags", "at most 20"},
		{"tag value", func(g *ContainerGroup) { g.Spec.Tags = map[string]string{"k": strings.Repeat("v", 257)} }, `spec.tags["k"]`, "256"},
		{"max pending", func(g *ContainerGroup) { g.Spec.MaxPendingMinutes = 5 }, "spec.maxPendingMinutes", "10 to 1440"},
		{"fail strategy", func(g *ContainerGroup) { g.Spec.FailStrategy = "retry" }, "spec.failStrategy", "fail-back"},
		{"client token", func(g *ContainerGroup) { g.Spec.ClientToken = strings.Repeat("t", 65) }, "spec.clientToken", "at most 64"},
		{"instance type", func(g *ContainerGroup) { g.Spec.InstanceType = "ecs.c6.large" }, "spec.instanceType", "2-4Gi"},
		{"gpu", func(g *ContainerGroup) { g.Spec.GPU = -1 }, "spec.gpu", "0 or more"},
		{"containers' gpus over the group's", func(g *ContainerGroup) { g.Spec.Containers[0].GPU = 2 }, "spec.gpu", "at least 2"},
		{"resize restart in a Never group", func(g *ContainerGroup) {
			g.Spec.RestartPolicy = RestartNever
			g.Spec.Containers[0].ResizePolicy = []ResizePolicy{{ResourceName: "cpu", RestartPolicy: ResizeRestartContainer}}
		}, "spec.containers[0].resizePolicy[0].restartPolicy", "NotRequired"},
		{"resize policy resource", func(g *ContainerGroup) {
			g.Spec.Containers[0].ResizePolicy = []ResizePolicy{{ResourceName: "gpu", RestartPolicy: ResizeNotRequired}}
		}, "spec.containers[0].resizePolicy[0].resourceName", "cpu"},
		{"termination message under /proc", func(g *ContainerGroup) { g.Spec.Containers[0].TerminationMessagePath = "/proc/self/x" }, "spec.containers[0].terminationMessagePath", "outside /proc"},
		{"termination message policy", func(g *ContainerGroup) { g.Spec.Containers[0].TerminationMessagePolicy = "Always" }, "spec.containers[0].terminationMessagePolicy", "FallbackToLogsOnError"},
		{"spot strategy", func(g *ContainerGroup) { g.Spec.SpotStrategy = "Cheap" }, "spec.spotStrategy", "SpotAsPriceGo"},
		{"spot price without its strategy", func(g *ContainerGroup) { g.Spec.SpotPriceLimit = 1 }, "spec.spotPriceLimit", "only with SpotWithPriceLimit"},
		{"spot hours", func(g *ContainerGroup) {
			h := 7
			g.Spec.SpotStrategy, g.Spec.SpotDurationHours = SpotAsPriceGo, &h
		}, "spec.spotDurationHours", "0 to 6"},
		{"runtime handler", func(g *ContainerGroup) { g.Spec.RuntimeHandler = "Kata!" }, "spec.runtimeHandler", "lowercase"},
		{"specs count", func(g *ContainerGroup) {
			g.Spec.Specs = []string{"1-2Gi", "2-4Gi", "4-8Gi", "8-16Gi", "16-32Gi", "32-64Gi"}
		}, "spec.specs", "at most 5"},
		{"spec form", func(g *ContainerGroup) { g.Spec.Specs = []string{"2c4g"} }, "spec.specs[0]", "2-4Gi"},
		{"spec too large", func(g *ContainerGroup) { g.Spec.Specs = []string{"128-256Gi"} }, "spec.specs[0]", "largest size"},
		{"cpu range", func(g *ContainerGroup) { g.Spec.CPU, g.Spec.Memory = 65, 128 }, "spec.cpu", "64 vCPU"},
		{"memory range", func(g *ContainerGroup) { g.Spec.CPU, g.Spec.Memory = 2, 600 }, "spec.memory", "512 GiB"},
		{"cpu without memory", func(g *ContainerGroup) { g.Spec.CPU = 2 }, "spec.memory", "required"},
		{"memory without cpu", func(g *ContainerGroup) { g.Spec.Memory = 2 }, "spec.cpu", "required"},
		{"containers over group cpu", func(g *ContainerGroup) {
			g.Spec.CPU, g.Spec.Memory = 1, 2
			g.Spec.Containers[0].CPU = 2
		}, "spec.containers", "more than the group's 1"},
		{"containers over group memory", func(g *ContainerGroup) {
			g.Spec.CPU, g.Spec.Memory = 1, 2
			g.Spec.Containers[0].Memory = 3
		}, "spec.containers", "GiB, more than the group's 2"},
		{"containers over largest size", func(g *ContainerGroup) {
			g.Spec.Containers = append(g.Spec.Containers, Container{Name: "b", Image: "x", CPU: 40}, Container{Name: "c", Image: "x", CPU: 40})
		}, "spec.containers", "largest size"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := validGroup()
			c.mutate(g)
			err := ValidateContainerGroup(g)
			var fe FieldErrors
			if !errors.As(err, &fe) {
				t.Fatalf("want FieldErrors, got %v", err)
			}
			for _, e := range fe {
				if e.Field == c.field && strings.Contains(e.Message, c.says) {
					return
				}
			}
			t.Fatalf("no error on %s saying %q; got %v", c.field, c.says, err)
		})
	}
}

func TestDecodeNamesUnknownAndUnsupportedFields(t *testing.T) {
	cases := map[string]struct{ field, says string }{
		`{"metadata":{"name":"a"},"spec":{"containers":[],"hostNetwork":true}}`:     {"hostNetwork", "LoadBalancer"},
		`{"metadata":{"name":"a"},"spec":{"volumes":[{"name":"v","hostPath":{}}]}}`: {"hostPath", "NFS"},
		`{"metadata":{"name":"a"},"spec":{"colour":"red"}}`:                         {"colour", "unknown field"},
		`{"metadata":{"name":1}}`: {"metadata.name", "want string"},
		`{"metadata":`:            {"body", "JSON"},
		``:                        {"body", "empty"},
		`{} {}`:                   {"body", "after the JSON object"},
	}
	for body, want := range cases {
		var g ContainerGroup
		err := Decode(strings.NewReader(body), &g)
		var fe FieldErrors
		if !errors.As(err, &fe) || fe[0].Field != want.field || !strings.Contains(fe[0].Message, want.says) {
			t.Errorf("Decode(%q) = %v; want field %s saying %q", body, err, want.field, want.says)
		}
	}
}

// Capabilities beyond the default set and the documented extras are refused
// in both spellings, naming the field and the allowlist; the allowed ones
// pass in both spellings.
func TestCapabilities(t *testing.T) {
	refused := []string{"ALL", "SYS_ADMIN", "CAP_SYS_ADMIN", "SYS_MODULE", "CAP_SYS_MODULE", "DAC_READ_SEARCH", "SYS_RAWIO",
		"SYS_BOOT", "SYS_TIME", "BPF", "PERFMON", "MAC_ADMIN", "MAC_OVERRIDE", "SYS_RESOURCE", "SYS_NICE", "NET_BROADCAST",
		"LINUX_IMMUTABLE", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_CONTROL", "AUDIT_READ", "CHECKPOINT_RESTORE", "LEASE",
		"SYS_PACCT", "SYS_TTY_CONFIG", "IPC_OWNER"}
	for _, c := range refused {
		g := validGroup()
		g.Spec.Containers[0].SecurityContext = &SecurityContext{Capabilities: &Capabilities{Add: []string{"NET_ADMIN", c}}}
		err := ValidateContainerGroup(g)
		var fe FieldErrors
		if !errors.As(err, &fe) || len(fe) != 1 || fe[0].Field != "spec.containers[0].securityContext.capabilities.add[1]" ||
			!strings.Contains(fe[0].Message, "allowed: AUDIT_WRITE, CHOWN") || !strings.Contains(fe[0].Message, "SYS_PTRACE") {
			t.Errorf("add %s: %v", c, err)
		}
	}
	for _, c := range AllowedCapabilities() {
		for _, spelled := range []string{c, "CAP_" + c} {
			g := validGroup()
			g.Spec.Containers[0].SecurityContext = &SecurityContext{Capabilities: &Capabilities{Add: []string{spelled}, Drop: []string{"CAP_SYS_ADMIN", "ALL"}}}
			if err := ValidateContainerGroup(g); err != nil {
				t.Errorf("add %s: %v", spelled, err)
			}
		}
	}
	if slices.Contains(AllowedCapabilities(), "SYS_ADMIN") || len(AllowedCapabilities()) != len(DefaultCapabilities)+len(ExtraCapabilities) {
		t.Fatalf("allowlist %v", AllowedCapabilities())
	}
}

// What Kubernetes takes of a pod's DNS and host aliases, the API takes too.
func TestKubernetesDNSValuesPass(t *testing.T) {
	long := strings.Repeat("a", 64) + ".example.test"
	g := validGroup()
	g.Spec.DNSPolicy = DNSNone
	g.Spec.DNSConfig = &DNSConfig{Nameservers: []string{"198.18.0.10", "2001:db8::53"}, Searches: []string{"ns.svc.cluster.local", "Corp.Test.", ".", long},
		Options: []DNSOption{{Name: "ndots:2"}, {Name: "single-request-reopen"}, {Name: "timeout", Value: "1"}}}
	g.Spec.HostAliases = []HostAlias{{IP: "198.18.0.9", Hostnames: []string{"db", "db.corp.test", long, "under_score"}}}
	if err := ValidateContainerGroup(g); err != nil {
		t.Fatal(err)
	}
}
