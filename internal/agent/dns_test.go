package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/server/servertest"
	"github.com/eci-dev/eci/internal/testbed"
)

// testResolvConf is the --resolv-conf of the containerd tests' agent: a
// nameserver of the test network (nothing is sent to it), a search path.
const testResolvConf = "# a comment\nnameserver 198.18.0.53\nsearch old.test\nsearch bed.test\noptions ndots:2 timeout:1\n"

// The host's settings are read again when the file changes; a read that
// fails keeps the last good ones.
func TestHostResolvFollowsTheFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(p, []byte("nameserver 198.18.0.53\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h := &hostResolv{path: p}
	if err := h.load(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := os.WriteFile(p, []byte("nameserver 198.18.0.99\nsearch new.test\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := h.get(ctx); strings.Join(got.Nameservers, " ") != "198.18.0.99" || strings.Join(got.Searches, " ") != "new.test" {
		t.Fatalf("after the file changed: %+v", got)
	}
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if got := h.get(ctx); strings.Join(got.Nameservers, " ") != "198.18.0.99" {
		t.Fatalf("after the file went: %+v, want the last good", got)
	}
	if err := (&hostResolv{path: p}).load(); err == nil || !strings.Contains(err.Error(), "--resolv-conf") {
		t.Fatalf("a missing --resolv-conf at start: %v, want an error naming the flag", err)
	}
}

// The runtime never falls back to the machine's resolv.conf: dnsPolicy None
// is the group's DNS alone, Default the host's with the group's merged in
// (as the kubelet's appendDNSConfig), and something even when both are
// empty.
func TestDNSConfigOf(t *testing.T) {
	own := &apiv1.DNSConfig{Nameservers: []string{"198.18.0.10", "198.18.0.53"}, Searches: []string{"ns.svc.cluster.local", "bed.test"},
		Options: []apiv1.DNSOption{{Name: "ndots", Value: "5"}, {Name: "edns0"}}}
	group := func(policy apiv1.DNSPolicy, d *apiv1.DNSConfig) *apiv1.ContainerGroup {
		return &apiv1.ContainerGroup{Spec: apiv1.ContainerGroupSpec{DNSPolicy: policy, DNSConfig: d}}
	}
	host := &Agent{hostDNS: &hostResolv{cfg: &apiv1.DNSConfig{Nameservers: []string{"198.18.0.53"}, Searches: []string{"bed.test"},
		Options: []apiv1.DNSOption{{Name: "ndots", Value: "2"}, {Name: "timeout", Value: "1"}}}}}
	none := &Agent{hostDNS: &hostResolv{cfg: &apiv1.DNSConfig{}}}
	for _, c := range []struct {
		name string
		a    *Agent
		g    *apiv1.ContainerGroup
		want string
	}{
		{"None: the group's own alone", host, group(apiv1.DNSNone, own), "[198.18.0.10 198.18.0.53] [ns.svc.cluster.local bed.test] [ndots:5 edns0]"},
		{"Default: the host's", host, group("", nil), "[198.18.0.53] [bed.test] [ndots:2 timeout:1]"},
		{"Default: the group's merged into the host's, without repeats, its options winning",
			host, group(apiv1.DNSDefault, own), "[198.18.0.53 198.18.0.10] [bed.test ns.svc.cluster.local] [ndots:5 timeout:1 edns0]"},
		{"Default with an empty dnsConfig: the host's", host, group(apiv1.DNSDefault, &apiv1.DNSConfig{}), "[198.18.0.53] [bed.test] [ndots:2 timeout:1]"},
		{"no policy with a dnsConfig (groups stored before the field): the dnsConfig alone", host, group("", own),
			"[198.18.0.10 198.18.0.53] [ns.svc.cluster.local bed.test] [ndots:5 edns0]"},
		{"no --resolv-conf: no nameserver, but not nothing", none, group("", nil), "[] [] [ndots:1]"},
		{"more than 3 nameservers together: the first 3", host,
			group(apiv1.DNSDefault, &apiv1.DNSConfig{Nameservers: []string{"198.18.0.1", "198.18.0.2", "198.18.0.3"}}), "[198.18.0.53 198.18.0.1 198.18.0.2] [bed.test] [ndots:2 timeout:1]"},
	} {
		d := c.a.dnsConfigOf(context.Background(), c.g)
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
	g = sleeper("dns-none")
	g.Spec.DNSPolicy = apiv1.DNSNone
	g.Spec.DNSConfig = &apiv1.DNSConfig{Nameservers: []string{"198.18.0.10"}, Searches: []string{"default.svc.cluster.local"}, Options: []apiv1.DNSOption{{Name: "ndots", Value: "5"}}}
	if out := resolvOf(g); !strings.Contains(out, "nameserver 198.18.0.10") || strings.Contains(out, "198.18.0.53") || !strings.Contains(out, "ndots:5") {
		t.Fatalf("dnsPolicy None: resolv.conf\n%s\nwant the group's alone", out)
	}
	g = sleeper("dns-merged")
	g.Spec.DNSPolicy = apiv1.DNSDefault
	g.Spec.DNSConfig = &apiv1.DNSConfig{Nameservers: []string{"198.18.0.10"}, Options: []apiv1.DNSOption{{Name: "ndots", Value: "5"}}}
	if out := resolvOf(g); !strings.Contains(out, "nameserver 198.18.0.53\nnameserver 198.18.0.10") || !strings.Contains(out, "bed.test") ||
		!strings.Contains(out, "ndots:5") || strings.Contains(out, "ndots:2") {
		t.Fatalf("dnsPolicy Default with a dnsConfig: resolv.conf\n%s\nwant the host's with the group's merged in", out)
	}
}
