package e2e

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/client"
	"github.com/eci-dev/eci/internal/fakeagent"
	"github.com/eci-dev/eci/internal/pki"
	"github.com/eci-dev/eci/internal/poll"
	"github.com/eci-dev/eci/internal/store"
	"github.com/eci-dev/eci/internal/testbed"
)

// proc is a process of the test, killed (the whole group, -9) at its end.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
}

func startProc(t testing.TB, name, logDir string, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, cmd: exec.Command(bin, args...), log: filepath.Join(logDir, name+".log")}
	f, err := os.Create(p.log)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stdout, p.cmd.Stderr = f, f
	// They die with the test process, however it ends (a killed test leaves no eci on the bed).
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { _ = p.cmd.Wait(); _ = f.Close() }()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			data, _ := os.ReadFile(p.log)
			lines := strings.Split(strings.TrimSpace(string(data)), "\n")
			t.Logf("%s's log, last lines:\n%s", name, strings.Join(lines[max(0, len(lines)-15):], "\n"))
		}
	})
	return p
}

// kill -9s the process group.
func (p *proc) kill() {
	if p.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	_ = poll.Until(context.Background(), 2*time.Second, gone(p.cmd.Process.Pid))
}

// gone is a condition for poll.Until: process pid no longer exists.
func gone(pid int) func() error {
	return func() error {
		if syscall.Kill(pid, 0) == nil {
			return fmt.Errorf("process %d still exists", pid)
		}
		return nil
	}
}

func loopbackPorts(t *testing.T, n int) []int {
	t.Helper()
	var out []int
	var ls []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		_ = l.Close()
	}
	return out
}

// Three servers on a three-member etcd cluster (real etcd processes, TLS
// with client certificates both ways), behind a balancer, under a steady
// load of creates: kill -9 of one etcd member, then of the leading server.
// The API keeps serving, placement continues on the new leader, every
// group created is placed, no address is given twice.
func TestHAUnderFaults(t *testing.T) {
	binDir, err := testbed.KubeBinDir()
	if err != nil {
		t.Fatal(err)
	}
	eciBin := buildEci(t)
	dir := t.TempDir()
	ca, err := pki.NewCA("e2e-ha", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, kp *pki.KeyPair) (cert, key string) {
		cert, key = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
		if err := pki.WriteKeyPair(cert, key, kp.Cert, kp.Key); err != nil {
			t.Fatal(err)
		}
		return cert, key
	}
	caFile := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(caFile, pki.CertPEM(ca.Cert), 0o600); err != nil {
		t.Fatal(err)
	}
	loopback := []net.IP{net.IPv4(127, 0, 0, 1)}
	kp, err := ca.Issue(pki.CertRequest{CommonName: "etcd", IPs: loopback, DNSNames: []string{"localhost"}, Server: true, Client: true})
	if err != nil {
		t.Fatal(err)
	}
	etcdCert, etcdKey := write("etcd", kp)
	if kp, err = ca.Issue(pki.CertRequest{CommonName: "eci-server", Client: true}); err != nil {
		t.Fatal(err)
	}
	clientCert, clientKey := write("eci-etcd-client", kp)
	if kp, err = ca.Issue(pki.CertRequest{CommonName: "eci", IPs: loopback, Server: true}); err != nil {
		t.Fatal(err)
	}
	serveCert, serveKey := write("eci-serving", kp)

	// etcd: three members.
	ports := loopbackPorts(t, 9)
	var members, endpoints []string
	for i := range 3 {
		members = append(members, fmt.Sprintf("m%d=https://127.0.0.1:%d", i, ports[3+i]))
		endpoints = append(endpoints, fmt.Sprintf("https://127.0.0.1:%d", ports[i]))
	}
	var etcds []*proc
	for i := range 3 {
		etcds = append(etcds, startProc(t, fmt.Sprintf("etcd-%d", i), dir, filepath.Join(binDir, "etcd"),
			"--name", fmt.Sprintf("m%d", i), "--data-dir", filepath.Join(dir, fmt.Sprintf("etcd-%d", i)),
			"--listen-client-urls", endpoints[i], "--advertise-client-urls", endpoints[i],
			"--listen-peer-urls", fmt.Sprintf("https://127.0.0.1:%d", ports[3+i]), "--initial-advertise-peer-urls", fmt.Sprintf("https://127.0.0.1:%d", ports[3+i]),
			"--initial-cluster", strings.Join(members, ","), "--initial-cluster-state", "new",
			"--cert-file", etcdCert, "--key-file", etcdKey, "--trusted-ca-file", caFile, "--client-cert-auth",
			"--peer-cert-file", etcdCert, "--peer-key-file", etcdKey, "--peer-trusted-ca-file", caFile, "--peer-client-cert-auth",
			"--log-level", "warn"))
	}

	// Three servers, one key file, one admin token, one serving certificate.
	keys := filepath.Join(dir, "keys")
	if err := store.WriteKeyFile(keys); err != nil {
		t.Fatal(err)
	}
	const admin = "e2e-ha-admin-token-0123456789abcdef"
	var servers []*proc
	var addrs []string
	for i := range 3 {
		addr := fmt.Sprintf("127.0.0.1:%d", ports[6+i])
		addrs = append(addrs, addr)
		servers = append(servers, startProc(t, fmt.Sprintf("server-%d", i), dir, eciBin, "server",
			"--data-dir", filepath.Join(dir, fmt.Sprintf("server-%d", i)), "--listen", addr,
			"--etcd-endpoints", strings.Join(endpoints, ","), "--etcd-cafile", caFile, "--etcd-certfile", clientCert, "--etcd-keyfile", clientKey,
			"--encryption-key-file", keys, "--admin-token", admin, "--tls-cert-file", serveCert, "--tls-key-file", serveKey,
			"--host-lease-ttl", "20s"))
	}
	hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // a probe of /readyz
	leading := func(i int) (bool, error) {
		resp, err := hc.Get("https://" + addrs[i] + "/readyz")
		if err != nil {
			return false, err
		}
		defer resp.Body.Close()
		var st struct{ Leader bool }
		_ = json.NewDecoder(resp.Body).Decode(&st)
		if resp.StatusCode != 200 {
			return false, fmt.Errorf("readyz %d", resp.StatusCode)
		}
		return st.Leader, nil
	}
	leader := func(alive []int) int {
		for _, i := range alive {
			if ok, _ := leading(i); ok {
				return i
			}
		}
		return -1
	}
	poll.Eventually(t, 60*time.Second, "three servers ready, one leading", func() error {
		if l := leader([]int{0, 1, 2}); l < 0 {
			return fmt.Errorf("no leader yet")
		}
		for i := range 3 {
			if _, err := leading(i); err != nil {
				return err
			}
		}
		return nil
	})

	lb := testbed.Relay(t, addrs...) // a balancer in front of the servers
	c, err := client.New(client.Config{Server: "https://" + lb, Token: admin, CAFile: caFile, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := c.CreateVSwitch(ctx, &apiv1.VSwitch{Metadata: apiv1.ObjectMeta{Name: "vsw-ha"}, Spec: apiv1.VSwitchSpec{Zone: "zone-a", CIDR: "198.19.0.0/20"}}); err != nil {
		t.Fatal(err)
	}
	res := apiv1.Resources{MilliCPU: 1000000, MemoryMiB: 4 << 20, Pods: 5000}
	agent := fakeagent.New(fakeagent.Config{Client: c, HeartbeatInterval: time.Second,
		Hosts: []apiv1.Host{{Metadata: apiv1.ObjectMeta{Name: "ha-1"}, Spec: apiv1.HostSpec{Zone: "zone-a", Capacity: res, Allocatable: res}}}})
	go func() { _ = agent.Run(ctx) }()
	<-agent.Ready()

	// The load: a create every 50 ms for 40 s.
	type result struct {
		at  time.Time
		id  string
		err error
	}
	var mu sync.Mutex
	var results []result
	began := time.Now()
	loadDone := make(chan struct{})
	go func() {
		defer close(loadDone)
		for i := 0; time.Since(began) < 40*time.Second; i++ {
			g, _, err := c.CreateGroup(ctx, &apiv1.ContainerGroup{Metadata: apiv1.ObjectMeta{Name: fmt.Sprintf("ha-%d", i)},
				Spec: apiv1.ContainerGroupSpec{CPU: 0.25, Memory: 0.5, Containers: []apiv1.Container{{Name: "app", Image: "busybox"}}}})
			r := result{at: time.Now(), err: err}
			if err == nil {
				r.id = g.Metadata.ID
			}
			mu.Lock()
			results = append(results, r)
			mu.Unlock()
			time.Sleep(50 * time.Millisecond)
		}
	}()
	time.Sleep(8 * time.Second) // the scenario: 8 s of load before the etcd kill,
	etcds[0].kill()
	etcdKilled := time.Now()
	time.Sleep(8 * time.Second) // 8 s with one etcd down before the leader's kill
	old := leader([]int{0, 1, 2})
	if old < 0 {
		t.Fatal("no leading server before the kill")
	}
	servers[old].kill()
	serverKilled := time.Now()
	var alive []int
	for i := range 3 {
		if i != old {
			alive = append(alive, i)
		}
	}
	var takeover time.Duration
	poll.Eventually(t, 60*time.Second, "another server leads", func() error {
		if l := leader(alive); l >= 0 {
			takeover = time.Since(serverKilled)
			return nil
		}
		return fmt.Errorf("no leader among %v", alive)
	})
	<-loadDone

	mu.Lock()
	defer mu.Unlock()
	ok, failed := 0, 0
	var gap time.Duration
	last := began
	for _, r := range results {
		if r.err != nil {
			failed++
			continue
		}
		ok++
		gap = max(gap, r.at.Sub(last))
		last = r.at
	}
	afterKills := 0
	for _, r := range results {
		if r.err == nil && r.at.After(serverKilled) {
			afterKills++
		}
	}
	var placed map[string]string
	poll.Eventually(t, 60*time.Second, "every group created is placed and Running", func() error {
		placed = map[string]string{}
		ips := map[string]string{}
		for _, r := range results {
			if r.err != nil {
				continue
			}
			g, err := c.GetGroup(ctx, r.id)
			if err != nil {
				return err
			}
			if g.Status.State != apiv1.StateRunning {
				return fmt.Errorf("group %s is %s (%s)", r.id, g.Status.State, g.Status.Message)
			}
			if other, dup := ips[g.Status.IP]; dup {
				t.Fatalf("address %s given to %s and %s", g.Status.IP, other, r.id)
			}
			ips[g.Status.IP] = r.id
			placed[r.id] = g.Status.IP
		}
		return nil
	})
	var errs []string
	for _, r := range results {
		if r.err != nil {
			errs = append(errs, r.at.Sub(began).Round(100*time.Millisecond).String()+" "+r.err.Error())
		}
	}
	sort.Strings(errs)
	t.Logf("creates: %d answered, %d failed (%s); longest gap between answered creates %s; etcd member killed at %s, leading server at %s; a new leader %s after; %d creates answered after the kills; all %d placed and Running with distinct addresses",
		ok, failed, strings.Join(errs[:min(len(errs), 3)], "; "), gap.Round(10*time.Millisecond), etcdKilled.Sub(began).Round(100*time.Millisecond),
		serverKilled.Sub(began).Round(100*time.Millisecond), takeover.Round(100*time.Millisecond), afterKills, len(placed))
	if afterKills == 0 || gap > 10*time.Second {
		t.Fatalf("the API stopped serving: longest gap %s, %d creates after the kills", gap, afterKills)
	}
	if float64(failed) > 0.05*float64(ok+failed) {
		t.Fatalf("%d of %d creates failed", failed, ok+failed)
	}
	var ids []string
	for _, r := range results {
		if r.err == nil {
			ids = append(ids, r.id)
		}
	}
	checkBilledOnce(ctx, t, c, ids, failed, began)
}

// checkBilledOnce: after the kills, every group is billed once, from its
// own pendingAt; the groups removed then (their usage records written by
// whichever server removed them) are billed to their removal.
// A create whose answer was lost (failed, of them) may have made a group
// too: such extra lines are allowed, each billed once.
func checkBilledOnce(ctx context.Context, t *testing.T, c *client.Client, ids []string, failed int, began time.Time) {
	t.Helper()
	pending := map[string]time.Time{}
	for _, id := range ids {
		g, err := c.GetGroup(ctx, id)
		if err != nil || g.Status.PendingAt == nil {
			t.Fatalf("group %s: %+v (%v)", id, g, err)
		}
		pending[id] = *g.Status.PendingAt
	}
	removed := map[string]time.Time{}
	for _, id := range ids[:min(len(ids), 20)] {
		if _, err := c.DeleteGroup(ctx, id, client.DeleteOptions{Force: true}); err != nil {
			t.Fatal(err)
		}
		removed[id] = time.Now()
	}
	bill, err := c.Bill(ctx, client.BillQuery{From: began.Add(-time.Hour).UTC().Format(time.RFC3339), To: time.Now().Add(time.Hour).UTC().Format(time.RFC3339), By: "group"})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	lines := map[string]apiv1.BillLine{}
	for _, l := range bill.Lines {
		if l.Groups != 1 {
			t.Fatalf("group %s billed %d times: %+v", l.Key, l.Groups, l)
		}
		lines[l.Key] = l
	}
	if len(lines) < len(ids) || len(lines) > len(ids)+failed {
		t.Fatalf("%d groups billed, %d created (and %d creates unanswered)", len(lines), len(ids), failed)
	}
	for _, id := range ids {
		l, ok := lines[id]
		end := now
		if at, gone := removed[id]; gone {
			end = at
		}
		want := end.Sub(pending[id]).Seconds()
		if got := float64(l.PendingSeconds + l.RunningSeconds); !ok || got < want-5 || got > want+2 {
			t.Fatalf("group %s billed %v s, want about %.0f (from its pendingAt to %s)", id, got, want, map[bool]string{true: "its removal", false: "now"}[removed[id] != time.Time{}])
		}
	}
	t.Logf("billing across the kills: %d groups each billed once, %d removed after them to their removal; total %s %s", len(ids), len(removed), bill.Total, bill.Currency)
}
