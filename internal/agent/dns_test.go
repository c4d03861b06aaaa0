package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/server/servertest"
	"github.com/eci-dev/eci/internal/testbed"
)

// testResolvConf is the --resolv-conf of the containerd tests' agent: a
// nameserver of the test network (nothing is sent to it), a search path.
const testResolvConf = "# a comment\nnameserver 198.18.0.53\nsearch old.test\nsearch bed.test\noptions ndots:2 timeout:1\n"

func TestReadResolvConf(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "resolv.conf")
	body := testResolvConf + "nameserver 198.18.0.54 ; trailing comment\nnameserver 198.18.0.55\nnameserver 198.18.0.56\n"
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := readResolvConf(p)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got.Servers, " ") != "198.18.0.53 198.18.0.54 198.18.0.55" || strings.Join(got.Searches, " ") != "bed.test" ||
		strings.Join(got.Options, " ") != "ndots:2 timeout:1" {
		t.Fatalf("read %+v: want three nameservers, the last search line, the options", got)
	}
	if _, err := readResolvConf(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "--resolv-conf") {
		t.Fatalf("a missing file: %v, want an error naming --resolv-conf", err)
	}
	if got, err := readResolvConf(""); err != nil || len(got.Servers)+len(got.Searches)+len(got.Options) != 0 {
		t.Fatalf("no file: %+v %v, want nothing", got, err)
	}
}

// The runtime never falls back to the machine's resolv.conf: a group gets
// its own DNS settings, else the host's of --resolv-conf, and something
// even when both are empty.
func TestDNSConfigIsNeverEmpty(t *testing.T) {
	withDNS := &apiv1.ContainerGroup{Spec: apiv1.ContainerGroupSpec{DNSConfig: &apiv1.DNSConfig{
		Nameservers: []string{"198.18.0.10"}, Searches: []string{"ns.svc.cluster.local"}, Options: []apiv1.DNSOption{{Name: "ndots", Value: "5"}, {Name: "edns0"}}}}}
	bare := &apiv1.ContainerGroup{}
	emptyDNS := &apiv1.ContainerGroup{Spec: apiv1.ContainerGroupSpec{DNSConfig: &apiv1.DNSConfig{}}}
	host := &Agent{hostDNS: &runtimeapi.DNSConfig{Servers: []string{"198.18.0.53"}, Searches: []string{"bed.test"}}}
	none := &Agent{hostDNS: &runtimeapi.DNSConfig{}}
	for _, c := range []struct {
		name string
		a    *Agent
		g    *apiv1.ContainerGroup
		want string
	}{
		{"the group's own", host, withDNS, "[198.18.0.10] [ns.svc.cluster.local] [ndots:5 edns0]"},
		{"the host's for a group with none", host, bare, "[198.18.0.53] [bed.test] []"},
		{"no --resolv-conf: no nameserver, but not nothing", none, bare, "[] [] [ndots:1]"},
		{"an empty group config: not nothing either", host, emptyDNS, "[] [] [ndots:1]"},
	} {
		d := c.a.dnsConfigOf(c.g)
		if got := fmt.Sprint(d.Servers, " ", d.Searches, " ", d.Options); got != c.want {
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
	}
}

// On containerd: an instance's /etc/resolv.conf is its group's DNS, else
// the agent's --resolv-conf, and never the machine's own.
func testDNS(t *testing.T, bed *testbed.Bed, srv *servertest.Server, rt Runtime) {
	ctx := context.Background()
	machine, _ := os.ReadFile("/etc/resolv.conf")
	resolvOf := func(g *apiv1.ContainerGroup) string {
		t.Helper()
		id := createGroup(t, srv, g)
		running := srv.WaitGroup(t, id, "Running", inState(apiv1.StateRunning))
		out, _, err := rt.ExecSync(ctx, running.Status.Containers[0].ContainerID, []string{"cat", "/etc/resolv.conf"}, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		srv.DeleteGroup(t, id, 30*time.Second, "the DNS test's group gone")
		for _, line := range strings.Split(string(machine), "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "nameserver") && strings.Contains(string(out), strings.TrimSpace(line)) {
				t.Fatalf("the instance's resolv.conf has the machine's %q:\n%s", line, out)
			}
		}
		return string(out)
	}
	sleeper := func(name string) *apiv1.ContainerGroup {
		return &apiv1.ContainerGroup{Metadata: apiv1.ObjectMeta{Name: name}, Spec: apiv1.ContainerGroupSpec{Containers: []apiv1.Container{
			{Name: "main", Image: bed.Registry.Busybox, Command: []string{"sleep", "3600"}}}}}
	}
	g := sleeper("dns-default")
	if out := resolvOf(g); !strings.Contains(out, "nameserver 198.18.0.53") || !strings.Contains(out, "search bed.test") || strings.Contains(out, "old.test") {
		t.Fatalf("a group with no DNS of its own: resolv.conf\n%s\nwant the agent's --resolv-conf", out)
	}
	g = sleeper("dns-own")
	g.Spec.DNSConfig = &apiv1.DNSConfig{Nameservers: []string{"198.18.0.10"}, Searches: []string{"default.svc.cluster.local"}, Options: []apiv1.DNSOption{{Name: "ndots", Value: "5"}}}
	if out := resolvOf(g); !strings.Contains(out, "nameserver 198.18.0.10") || strings.Contains(out, "198.18.0.53") || !strings.Contains(out, "ndots:5") {
		t.Fatalf("a group with its own DNS: resolv.conf\n%s", out)
	}
	g = sleeper("dns-options-only")
	g.Spec.DNSConfig = &apiv1.DNSConfig{Options: []apiv1.DNSOption{{Name: "ndots", Value: "1"}}}
	if out := resolvOf(g); strings.Contains(out, "nameserver") {
		t.Fatalf("a group whose DNS has no nameserver (what --resolv-conf \"\" gives): resolv.conf\n%s\nwant none, not the machine's", out)
	}
}
