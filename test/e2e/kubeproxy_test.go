package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eci-dev/eci/internal/poll"
	"github.com/eci-dev/eci/internal/testbed"
)

// kubeProxy is a real kube-proxy (built by hack/kube) in nftables mode,
// the reference the agents' Service rules are measured against. It runs in
// a network namespace of its own, joined to the machine by a veth pair
// (198.18.252.0/30) so that it reaches the bed's apiserver at the node IP;
// its rules, conntrack settings and metrics stay in that namespace.
type kubeProxy struct {
	ns string
}

const kubeProxyNS = "ecib-kproxy"

func startKubeProxy(b *testing.B, bed *testbed.Bed) *kubeProxy {
	b.Helper()
	run := func(args ...string) {
		b.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			b.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	_ = exec.Command("ip", "netns", "del", kubeProxyNS).Run()
	_ = exec.Command("ip", "link", "del", "ecibkp0").Run()
	run("netns", "add", kubeProxyNS)
	b.Cleanup(func() { _ = exec.Command("ip", "netns", "del", kubeProxyNS).Run() })
	run("link", "add", "ecibkp0", "type", "veth", "peer", "name", "eth0", "netns", kubeProxyNS)
	b.Cleanup(func() { _ = exec.Command("ip", "link", "del", "ecibkp0").Run() })
	run("addr", "add", "198.18.252.1/30", "dev", "ecibkp0")
	run("link", "set", "ecibkp0", "up")
	run("-n", kubeProxyNS, "addr", "add", "198.18.252.2/30", "dev", "eth0")
	run("-n", kubeProxyNS, "link", "set", "eth0", "up")
	run("-n", kubeProxyNS, "link", "set", "lo", "up")
	run("-n", kubeProxyNS, "route", "add", bed.Network.NodeIP.String()+"/32", "via", "198.18.252.1")

	cmd := exec.Command("ip", "netns", "exec", kubeProxyNS, filepath.Join(bed.Kube.BinDir, "kube-proxy"),
		"--kubeconfig="+bed.Kube.Kubeconfig, "--proxy-mode=nftables", "--hostname-override=ecib-kproxy",
		"--metrics-bind-address=127.0.0.1:10249", "--healthz-bind-address=127.0.0.1:10256",
		"--conntrack-max-per-core=0", "--v=1")
	logf, err := os.Create(filepath.Join(bed.Dir, "kube-proxy.log"))
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		_ = logf.Close()
	})
	return &kubeProxy{ns: kubeProxyNS}
}

// metric is the value of kube-proxy's metric name for IPv4 (its line
// without labels, or with ip_family="IPv4"; 0 when there is none).
func (k *kubeProxy) metric(b *testing.B, name string) float64 {
	b.Helper()
	out, err := exec.Command("ip", "netns", "exec", k.ns, "/bin/busybox", "wget", "-q", "-O-", "http://127.0.0.1:10249/metrics").Output()
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(out), "\n") {
		rest, ok := strings.CutPrefix(line, name)
		if !ok || !strings.HasPrefix(rest, " ") && !strings.HasPrefix(rest, `{ip_family="IPv4"}`) {
			continue
		}
		f := strings.Fields(rest)
		v, _ := strconv.ParseFloat(f[len(f)-1], 64)
		return v
	}
	return 0
}

// syncs is how many syncs kube-proxy made and how long they took together.
func (k *kubeProxy) syncs(b *testing.B) (int, time.Duration) {
	n := k.metric(b, "kubeproxy_sync_proxy_rules_duration_seconds_count")
	sum := k.metric(b, "kubeproxy_sync_proxy_rules_duration_seconds_sum")
	return int(n), time.Duration(sum * float64(time.Second))
}

// waitSynced waits for a sync of kube-proxy's that saw at least services
// Services.
func (k *kubeProxy) waitSynced(b *testing.B, services int) {
	b.Helper()
	poll.Eventually(b, 3*time.Minute, "kube-proxy's rules of the Services", func() error {
		out, err := exec.Command("ip", "netns", "exec", k.ns, "nft", "list", "map", "ip", "kube-proxy", "service-ips").Output()
		if err != nil {
			return fmt.Errorf("no service-ips map yet: %v", err)
		}
		if n := strings.Count(string(out), "goto service-"); n < services {
			return fmt.Errorf("%d services in its map", n)
		}
		return nil
	})
}

// tableSize is the text size of an nftables table of a namespace ("" for
// the machine's): what nft lists, a proxy of what it holds.
func tableSize(ns, family, table string) int {
	args := []string{"nft", "list", "table", family, table}
	if ns != "" {
		args = append([]string{"ip", "netns", "exec", ns}, args...)
	}
	out, err := exec.Command(args[0], args[1:]...).Output()
	if err != nil {
		return 0
	}
	return len(out)
}
