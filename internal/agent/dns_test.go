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
	long := "# " + strings.Repeat("x", 100<<10) + "\n"
	body := long + testResolvConf + "nameserver 127.0.0.53\nnameserver\t198.18.0.54 ; trailing comment\r\nnameserver ::1\nnameserver 198.18.0.55\nnameserver 198.18.0.56\ndomain ignored.test\n"
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := readResolvConf(p)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got.Servers, " ") != "198.18.0.53 198.18.0.54 198.18.0.55" || strings.Join(got.Searches, " ") != "bed.test" ||
		strings.Join(got.Options, " ") != "ndots:2 timeout:1" {
		t.Fatalf("read %+v: want three nameservers (no loopback: systemd-resolved's stub is the instance's own), the last search line, the options", got)
	}
	if err := os.WriteFile(p, []byte("options ndots:2 rotate\noptions ndots:3\nnameserver 198.18.0.1\nnameserver 198.18.0.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, _ := readResolvConf(p); strings.Join(got.Options, " ") != "ndots:3 rotate" || strings.Join(got.Servers, " ") != "198.18.0.1" {
		t.Fatalf("repeated options and nameservers: %+v, want one of each, the last option of a name", got)
	}
	if err := os.WriteFile(p, []byte("search a.test. .\nsearch\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, _ := readResolvConf(p); len(got.Searches) != 0 {
		t.Fatalf("a bare search line after others: %v, want it to clear them", got.Searches)
	}
	if err := os.WriteFile(p, []byte("search a.test. . b.test\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, _ := readResolvConf(p); strings.Join(got.Searches, " ") != "a.test b.test" {
		t.Fatalf("searches %v, want trailing dots and '.' dropped", got.Searches)
	}
	if _, err := readResolvConf(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "--resolv-conf") {
		t.Fatalf("a missing file: %v, want an error naming --resolv-conf", err)
	}
}

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
	if got := h.get(ctx); strings.Join(got.Servers, " ") != "198.18.0.99" || strings.Join(got.Searches, " ") != "new.test" {
		t.Fatalf("after the file changed: %+v", got)
	}
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if got := h.get(ctx); strings.Join(got.Servers, " ") != "198.18.0.99" {
		t.Fatalf("after the file went: %+v, want the last good", got)
	}
	if err := (&hostResolv{path: p}).load(); err == nil {
		t.Fatal("a missing --resolv-conf at start: no error")
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
	host := &Agent{hostDNS: &hostResolv{cfg: &runtimeapi.DNSConfig{Servers: []string{"198.18.0.53"}, Searches: []string{"bed.test"}, Options: []string{"ndots:2", "timeout:1"}}}}
	none := &Agent{hostDNS: &hostResolv{cfg: &runtimeapi.DNSConfig{}}}
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
