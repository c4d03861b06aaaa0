package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/client"
	"github.com/eci-dev/eci/internal/fakeagent"
	"github.com/eci-dev/eci/internal/server"
	"github.com/eci-dev/eci/internal/server/servertest"
)

// eci runs the client verbs as the binary does.
func eci(t *testing.T, args ...string) (string, error) {
	t.Helper()
	return eciCtx(t, context.Background(), args...)
}

// eciCtx runs them until ctx ends.
func eciCtx(t *testing.T, ctx context.Context, args ...string) (string, error) {
	t.Helper()
	root := &cobra.Command{Use: "eci", SilenceUsage: true, SilenceErrors: true}
	root.AddCommand(Commands()...)
	root.AddCommand(ProfileCommand())
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	return out.String(), err
}

func startServer(t *testing.T, tune ...func(*server.Config)) (conf string) {
	t.Helper()
	srv := servertest.Start(t, tune...)
	conf = filepath.Join(t.TempDir(), "admin.conf")
	if err := client.WriteConfigFile(conf, client.ConfigFile{Server: srv.URL(), Token: srv.AdminToken(), CAFile: srv.CAFile()}); err != nil {
		t.Fatal(err)
	}
	return conf
}

func TestClientVerbs(t *testing.T) {
	conf := startServer(t)
	t.Setenv("ECI_CONFIG", conf)

	out, err := eci(t, "vswitches", "create", "vsw-a", "--zone", "zone-a", "--cidr", "198.19.128.0/24")
	if err != nil || !strings.Contains(out, "vsw-a created (198.19.128.0/24 in zone-a, 253 addresses)") {
		t.Fatalf("vswitches create: %v %q", err, out)
	}
	out, err = eci(t, "run", "web", "--image", "busybox", "--cpu", "1", "--memory", "2", "--label", "app=web", "--env", "A=1", "--", "httpd", "-f")
	if err != nil || !strings.HasPrefix(out, "eci-") || !strings.Contains(out, " created") {
		t.Fatalf("run: %v %q", err, out)
	}
	id := strings.Fields(out)[0]

	file := filepath.Join(t.TempDir(), "group.yaml")
	if err := os.WriteFile(file, []byte(`metadata:
  name: job
spec:
  specs: ["2-4Gi"]
  restartPolicy: Never
  containers:
  - name: main
    image: busybox
    command: ["sh", "-c", "echo done"]
`), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err = eci(t, "run", "-f", file, "-o", "json"); err != nil {
		t.Fatalf("run -f: %v %q", err, out)
	}
	var job apiv1.ContainerGroup
	if err := json.Unmarshal([]byte(out), &job); err != nil || job.Spec.RestartPolicy != apiv1.RestartNever || job.Spec.Specs[0] != "2-4Gi" {
		t.Fatalf("run -f -o json printed %q (%v)", out, err)
	}

	out, err = eci(t, "ps", "-l", "app=web")
	if err != nil || !strings.Contains(out, id) || strings.Contains(out, job.Metadata.ID) || !strings.HasPrefix(out, "ID") {
		t.Fatalf("ps -l app=web: %v\n%s", err, out)
	}
	if out, err = eci(t, "ps", "-o", "yaml"); err != nil || !strings.Contains(out, "name: job") {
		t.Fatalf("ps -o yaml: %v\n%s", err, out)
	}
	if out, err = eci(t, "describe", id); err != nil || !strings.Contains(out, "image: busybox") || !strings.Contains(out, "Created") {
		t.Fatalf("describe: %v\n%s", err, out)
	}
	if out, err = eci(t, "events", id); err != nil || !strings.Contains(out, "Created") {
		t.Fatalf("events: %v\n%s", err, out)
	}
	tok, err := eci(t, "token", "create", "--tenant", "acme")
	if err != nil || len(strings.TrimSpace(tok)) != 64 {
		t.Fatalf("token create: %v %q", err, tok)
	}
	if out, err = eci(t, "ps", "--token", strings.TrimSpace(tok)); err != nil || strings.Contains(out, id) {
		t.Fatalf("a tenant token sees the default tenant's group: %v\n%s", err, out)
	}
	if out, err = eci(t, "rm", id, "--force"); err != nil || !strings.Contains(out, id+" deleted") {
		t.Fatalf("rm: %v %q", err, out)
	}
	if out, err = eci(t, "rm", id); err == nil || !strings.Contains(out, "not found") {
		t.Fatalf("rm of a deleted group: %v %q", err, out)
	}
	if _, err = eci(t, "run", "bad", "--image", "busybox", "--cpu", "2"); err == nil || !strings.Contains(err.Error(), "spec.memory") {
		t.Fatalf("run with cpu only: %v", err)
	}
	if _, err = eci(t, "ps", "-o", "xml"); err == nil || !strings.Contains(err.Error(), "allowed: json, yaml, wide") {
		t.Fatalf("ps -o xml: %v", err)
	}
	t.Setenv("ECI_CONFIG", "")
	t.Setenv("HOME", t.TempDir())
	if _, err = eci(t, "ps"); err == nil || !strings.Contains(err.Error(), "no server") {
		t.Fatalf("ps without a server: %v", err)
	}
}

func TestVPCVerbs(t *testing.T) {
	t.Setenv("ECI_CONFIG", startServer(t))
	if out, err := eci(t, "vpcs", "create", "vpc-a", "--cidr", "198.19.0.0/16"); err != nil || !strings.Contains(out, "vpc-a created (VNI 2)") {
		t.Fatalf("vpcs create: %v %q", err, out)
	}
	for _, args := range [][]string{{"vsw-d", "--cidr", "198.19.128.0/24"}, {"vsw-a", "--cidr", "198.19.128.0/24", "--vpc", "vpc-a"}} {
		if out, err := eci(t, append([]string{"vswitches", "create", "--zone", "zone-a"}, args...)...); err != nil || !strings.Contains(out, args[0]+" created") {
			t.Fatalf("vswitches create %v: %v %q", args, err, out)
		}
	}
	out, err := eci(t, "vswitches")
	if err != nil || !strings.Contains(out, "vsw-a") || !strings.Contains(out, "vpc-a") || !strings.Contains(out, apiv1.DefaultVPC) {
		t.Fatalf("vswitches: %v %q", err, out)
	}
	out, err = eci(t, "vpcs")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if err != nil || len(lines) != 3 || !strings.HasPrefix(lines[1], apiv1.DefaultVPC) || !strings.Contains(lines[2], "vpc-a") || strings.Fields(lines[2])[4] != "1" || strings.Fields(lines[1])[4] != "1" {
		t.Fatalf("vpcs: %v %q", err, out)
	}
	if out, err := eci(t, "vpcs", "delete", "vpc-a"); err == nil || !strings.Contains(err.Error()+out, "vSwitch") {
		t.Fatalf("delete a VPC with a vSwitch: %v %q", err, out)
	}
}

func TestSecurityGroupVerbs(t *testing.T) {
	t.Setenv("ECI_CONFIG", startServer(t))
	if out, err := eci(t, "token", "create", "--tenant", "a"); err != nil {
		t.Fatalf("token: %v %q", err, out)
	}
	out, err := eci(t, "securitygroups", "apply", "web", "--tenant", "a", "--ingress", "tcp:80/80:sg=web", "--ingress", "icmp::198.18.0.0/15")
	if err != nil || !strings.Contains(out, "web applied (2 ingress, 0 egress rules)") {
		t.Fatalf("apply: %v %q", err, out)
	}
	out, err = eci(t, "sg")
	if err != nil || !strings.Contains(out, "tcp:80/80:sg=web,icmp::198.18.0.0/15") || !strings.Contains(out, "all") {
		t.Fatalf("list: %v %q", err, out)
	}
	if out, err := eci(t, "sg", "apply", "bad", "--tenant", "a", "--ingress", "tcp:80/80"); err == nil || !strings.Contains(err.Error()+out, "PROTOCOL:PORTS:PEER") {
		t.Fatalf("a rule without its peer: %v %q", err, out)
	}
	if out, err := eci(t, "sg", "apply", "bad", "--tenant", "a", "--ingress", "tcp:99/80:0.0.0.0/0"); err == nil || !strings.Contains(err.Error()+out, "spec.ingress[0].portRange") {
		t.Fatalf("a bad port range: %v %q", err, out)
	}
	if out, err := eci(t, "sg", "delete", "web", "--tenant", "a"); err != nil || !strings.Contains(out, "web deleted") {
		t.Fatalf("delete: %v %q", err, out)
	}
}

func TestEIPVerbs(t *testing.T) {
	t.Setenv("ECI_CONFIG", startServer(t, func(c *server.Config) { c.Control.EIPRange = netip.MustParsePrefix("198.18.200.0/29") }))
	if out, err := eci(t, "token", "create", "--tenant", "a"); err != nil {
		t.Fatalf("token: %v %q", err, out)
	}
	if out, err := eci(t, "eips", "allocate", "web", "--tenant", "nobody"); err == nil || !strings.Contains(err.Error()+out, "metadata.tenant") {
		t.Fatalf("allocate for no tenant: %v %q", err, out)
	}
	if out, err := eci(t, "eips", "allocate", "web", "--tenant", "a"); err != nil || !strings.Contains(out, "eip-c612c801 allocated (198.18.200.1)") {
		t.Fatalf("allocate: %v %q", err, out)
	}
	out, err := eci(t, "eips")
	if err != nil || !strings.Contains(out, "eip-c612c801") || !strings.Contains(out, "web") || !strings.Contains(out, "198.18.200.1") {
		t.Fatalf("eips: %v %q", err, out)
	}
	if out, err := eci(t, "eips", "release", "eip-c612c801"); err != nil || !strings.Contains(out, "released") {
		t.Fatalf("release: %v %q", err, out)
	}
	if out, err := eci(t, "run", "x", "--image", "busybox", "--cpu", "1", "--memory", "2", "--eip", "eip-1", "--with-eip"); err == nil || !strings.Contains(err.Error()+out, "spec.eipId") {
		t.Fatalf("run with a bad EIP id and --with-eip: %v %q", err, out)
	}
}

func TestRouteVerbs(t *testing.T) {
	t.Setenv("ECI_CONFIG", startServer(t))
	if out, err := eci(t, "routes", "add", "node-1", "--destination", "198.18.10.0/24", "--next-hop", "198.18.192.5"); err != nil || !strings.Contains(out, "node-1 added (198.18.10.0/24 via 198.18.192.5)") {
		t.Fatalf("routes add: %v %q", err, out)
	}
	if out, err := eci(t, "routes"); err != nil || !strings.Contains(out, "node-1") || !strings.Contains(out, "198.18.192.5") {
		t.Fatalf("routes: %v %q", err, out)
	}
	if out, err := eci(t, "routes", "add", "bad", "--destination", "198.18.10.0/24", "--next-hop", "ff02::1"); err == nil || !strings.Contains(err.Error()+out, "spec.nextHop") {
		t.Fatalf("routes add with a bad next hop: %v %q", err, out)
	}
	if out, err := eci(t, "routes", "delete", "node-1"); err != nil || !strings.Contains(out, "deleted") {
		t.Fatalf("routes delete: %v %q", err, out)
	}
}

// Dual stack: a vSwitch with --ipv6-cidr, a group with --ipv6 placed on it
// shows its IPv6 address (ps -o wide, describe); an IPv6 security rule.
func TestIPv6Verbs(t *testing.T) {
	srv := startWithHost(t)

	out, err := eci(t, "vswitches", "create", "vsw-6", "--zone", "zone-a", "--cidr", "198.19.128.0/24", "--ipv6-cidr", "2001:2:0:1::/64")
	if err != nil || !strings.Contains(out, "vsw-6 created (198.19.128.0/24 and 2001:2:0:1::/64 in zone-a, 253 addresses)") {
		t.Fatalf("vswitches create --ipv6-cidr: %v %q", err, out)
	}
	if out, err := eci(t, "vswitches", "create", "vsw-x", "--zone", "zone-a", "--cidr", "198.19.129.0/24", "--ipv6-cidr", "2001:2:0:1::/96"); err == nil || !strings.Contains(err.Error()+out, "spec.ipv6Cidr") {
		t.Fatalf("an overlapping --ipv6-cidr: %v %q", err, out)
	}
	out, err = eci(t, "vswitches")
	if lines := strings.Split(strings.TrimSpace(out), "\n"); err != nil || len(lines) != 2 || strings.Fields(lines[0])[6] != "IPV6-CIDR" || strings.Fields(lines[1])[6] != "2001:2:0:1::/64" {
		t.Fatalf("vswitches: %v\n%s", err, out)
	}
	if out, err = eci(t, "run", "web", "--image", "busybox", "--cpu", "1", "--memory", "2", "--ipv6", "-o", "json"); err != nil {
		t.Fatalf("run --ipv6: %v %q", err, out)
	}
	var g apiv1.ContainerGroup
	if err := json.Unmarshal([]byte(out), &g); err != nil || !g.Spec.EnableIPv6 {
		t.Fatalf("run --ipv6 -o json printed %q (%v)", out, err)
	}
	placed := srv.WaitGroup(t, g.Metadata.ID, "placed with IPv6", func(g *apiv1.ContainerGroup) bool { return g.Status.IPv6Address != "" })
	if out, err = eci(t, "ps", "-o", "wide"); err != nil || !strings.Contains(out, "IPV6") || !strings.Contains(out, placed.Status.IP+"  ") || !strings.Contains(out, placed.Status.IPv6Address) {
		t.Fatalf("ps -o wide: %v\n%s", err, out)
	}
	if out, err = eci(t, "describe", g.Metadata.ID); err != nil || !strings.Contains(out, "ipv6Address: "+placed.Status.IPv6Address) || !strings.Contains(out, "enableIpv6: true") {
		t.Fatalf("describe: %v\n%s", err, out)
	}
	if _, err := eci(t, "token", "create", "--tenant", "a"); err != nil {
		t.Fatal(err)
	}
	if out, err = eci(t, "sg", "apply", "web6", "--tenant", "a", "--ingress", "tcp:80/80:2001:2::/48", "--egress", "all::::/0"); err != nil || !strings.Contains(out, "web6 applied (1 ingress, 1 egress rules)") {
		t.Fatalf("an IPv6 security rule: %v %q", err, out)
	}
	if out, err = eci(t, "sg"); err != nil || !strings.Contains(out, "tcp:80/80:2001:2::/48") || !strings.Contains(out, "all::::/0") {
		t.Fatalf("sg: %v %q", err, out)
	}
}

// startWithHost runs a server whose admin config $ECI_CONFIG names, with
// one fake host h1 (16 vCPU, 64 GiB, 10 groups) in zone-a, until the test
// ends.
func startWithHost(t *testing.T) *servertest.Server {
	t.Helper()
	srv := servertest.Start(t)
	conf := filepath.Join(t.TempDir(), "admin.conf")
	if err := client.WriteConfigFile(conf, client.ConfigFile{Server: srv.URL(), Token: srv.AdminToken(), CAFile: srv.CAFile()}); err != nil {
		t.Fatal(err)
	}
	t.Setenv("ECI_CONFIG", conf)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	res := apiv1.Resources{MilliCPU: 16000, MemoryMiB: 65536, Pods: 10}
	agent := fakeagent.New(fakeagent.Config{Client: srv.HostClient(t, "h1"),
		Hosts: []apiv1.Host{{Metadata: apiv1.ObjectMeta{Name: "h1"}, Spec: apiv1.HostSpec{Zone: "zone-a", Capacity: res, Allocatable: res}}}})
	go func() { _ = agent.Run(ctx) }()
	<-agent.Ready()
	return srv
}
