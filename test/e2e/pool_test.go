package e2e

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/poll"
	"github.com/eci-dev/eci/internal/server"
	"github.com/eci-dev/eci/internal/server/servertest"
	"github.com/eci-dev/eci/internal/testbed"
)

// A pool of two hosts on one machine (network namespaces joined by an
// underlay, each with its own containerd and an `eci agent` process given
// its tunnel IP): instances of one vSwitch on different hosts reach each
// other by IP through the hosts' tunnels: TCP, a transfer of 4 MiB (the
// links' MTU leaves room for the tunnel), UDP (traceroute's probes, which
// the far instance's kernel answers); when a group goes, the other host no
// longer routes its address.
func TestPoolOfHosts(t *testing.T) {
	bed := testbed.New(t, testbed.Options{Hosts: 2})
	eciBin := buildEci(t)
	gw := bed.Network.UnderlayGateway.String()
	srv := servertest.Start(t, func(c *server.Config) { c.Addr = gw + ":0"; c.TLSNames = []string{gw} })
	srv.VSwitch(t, "vsw-pool", "zone-a", bed.Network.VSwitchCIDR.String())
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	startPoolAgents(t, srv, bed, eciBin)

	// web on h1, client on h2: each made while the other host is cordoned.
	pin := func(host string, g *apiv1.ContainerGroup) *apiv1.ContainerGroup {
		t.Helper()
		for _, h := range bed.Hosts {
			cordon := h.Name != host
			if _, err := srv.Admin.UpdateHost(ctx, h.Name, apiv1.HostUpdate{Unschedulable: &cordon}); err != nil {
				t.Fatal(err)
			}
		}
		out, _, err := srv.Admin.CreateGroup(ctx, g)
		if err != nil {
			t.Fatal(err)
		}
		return srv.WaitGroup(t, out.Metadata.ID, "Running on "+host, func(g *apiv1.ContainerGroup) bool {
			return g.Status.State == apiv1.StateRunning && g.Status.Host == host
		})
	}
	web := pin("h1", poolGroup(bed, "web", "mkdir -p /srv && echo pool-web > /srv/index.html && dd if=/dev/zero of=/srv/big bs=1024 count=4096 2>/dev/null && exec httpd -f -p 8080 -h /srv"))
	ip := web.Status.IP
	// (This busybox's wget crashes with -T.)
	client := pin("h2", poolGroup(bed, "client", fmt.Sprintf(`for i in $(seq 1 60); do wget -q -O - http://%[1]s:8080/ && break; sleep 1; done
echo "bytes=$(wget -q -O - http://%[1]s:8080/big | wc -c)"
traceroute -n -q 1 -w 2 -m 5 %[1]s 2>&1 | tail -1
echo end; exec sleep 3600`, ip)))

	var out string
	poll.Eventually(t, 90*time.Second, "the client's checks end", func() error {
		out = groupLog(ctx, srv, client.Metadata.ID)
		if !strings.Contains(out, "end\n") {
			return fmt.Errorf("log so far: %q", out)
		}
		return nil
	})
	if !strings.Contains(out, "pool-web\n") {
		t.Errorf("h2's instance did not fetch h1's page: %q", out)
	}
	if !strings.Contains(out, "bytes=4194304\n") {
		t.Errorf("h2's instance did not get the 4 MiB file whole: %q", out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 2 || !strings.Contains(lines[len(lines)-2], " "+ip+" ") {
		t.Errorf("traceroute's UDP probes did not reach %s: %q", ip, out)
	}

	srv.DeleteGroup(t, web.Metadata.ID, time.Minute, "web deleted")
	poll.Eventually(t, 20*time.Second, "h2 routes web's address no more", func() error {
		routes, err := exec.Command("ip", "-n", bed.Hosts[1].NetNS, "-4", "route", "show", ip+"/32").CombinedOutput()
		if err != nil || strings.TrimSpace(string(routes)) != "" {
			return fmt.Errorf("%s (%v)", routes, err)
		}
		return nil
	})
}

// startPoolAgents runs an eci agent process in each host of the bed's
// pool, with the host's tunnel IP, and waits until every host is Ready.
func startPoolAgents(t *testing.T, srv *servertest.Server, bed *testbed.Bed, eciBin string) {
	t.Helper()
	dir := t.TempDir()
	logs := filepath.Join(dir, "logs")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, h := range bed.Hosts {
		copyFile(t, filepath.Join(filepath.Dir(eciBin), "eci-cni"), filepath.Join(h.Containerd.CNIBinDir, "eci-cni"))
		tok, err := srv.Admin.CreateToken(context.Background(), &apiv1.Token{Spec: apiv1.TokenSpec{Kind: apiv1.TokenHost, Host: h.Name}})
		if err != nil {
			t.Fatal(err)
		}
		tokenFile := filepath.Join(dir, h.Name+".token")
		if err := os.WriteFile(tokenFile, []byte(tok.Status.Token), 0o600); err != nil {
			t.Fatal(err)
		}
		startProc(t, "agent-"+h.Name, logs, "nsenter", "--net=/var/run/netns/"+h.NetNS, "--", eciBin, "agent",
			"--server", srv.URL(), "--ca-file", srv.CAFile(), "--token-file", tokenFile, "--host-name", h.Name, "--zone", "zone-a",
			"--cpu", "8", "--memory", "16", "--max-groups", "50", "--cri-endpoint", h.Containerd.Endpoint,
			"--cgroup-parent", bed.CgroupParent+"/"+h.Name, "--log-dir", filepath.Join(h.Dir, "group-logs"), "--state-dir", filepath.Join(h.Dir, "agent"),
			"--cni-conf-dir", h.Containerd.CNIConfDir, "--network-name", bed.Network.AgentNetwork, "--cni-socket", filepath.Join(h.Dir, "cni.sock"),
			"--resolv-conf", "", "--stream-address", h.TunnelIP.String()+":0", "--registry-config-dir", h.Containerd.CertsDir,
			"--tunnel-ip", h.TunnelIP.String())
	}
	poll.Eventually(t, 60*time.Second, "every host of the pool Ready with its tunnel IP", func() error {
		hosts, err := srv.Admin.ListHosts(context.Background())
		if err != nil {
			return err
		}
		ready := 0
		for _, h := range hosts {
			if h.Status.Ready && h.Spec.TunnelIP != "" {
				ready++
			}
		}
		if ready != len(bed.Hosts) {
			return fmt.Errorf("%d of %d ready: %+v", ready, len(bed.Hosts), hosts)
		}
		return nil
	})
}

// poolGroup is a group of one busybox container running script.
func poolGroup(bed *testbed.Bed, name, script string) *apiv1.ContainerGroup {
	return &apiv1.ContainerGroup{Metadata: apiv1.ObjectMeta{Name: name}, Spec: apiv1.ContainerGroupSpec{
		Containers: []apiv1.Container{{Name: "main", Image: bed.Registry.Busybox, Command: []string{"sh", "-c", script}}}}}
}

// groupLog is the log of a group's main container ("" when unreadable).
func groupLog(ctx context.Context, srv *servertest.Server, id string) string {
	rc, err := srv.Admin.Logs(ctx, id, apiv1.LogOptions{Container: "main"})
	if err != nil {
		return ""
	}
	defer rc.Close()
	data, _ := io.ReadAll(rc)
	return string(data)
}
