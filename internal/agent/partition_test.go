package agent

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/client"
	"github.com/eci-dev/eci/internal/errdefs"
	"github.com/eci-dev/eci/internal/poll"
	"github.com/eci-dev/eci/internal/runtime"
	"github.com/eci-dev/eci/internal/server"
	"github.com/eci-dev/eci/internal/server/servertest"
	"github.com/eci-dev/eci/internal/testbed"
)

// partition drops the loopback traffic of port (both ways) until heal.
func partition(t *testing.T, port int) (heal func()) {
	t.Helper()
	rules := [][]string{
		{"OUTPUT", "-o", "lo", "-p", "tcp", "--dport", strconv.Itoa(port), "-j", "DROP"},
		{"OUTPUT", "-o", "lo", "-p", "tcp", "--sport", strconv.Itoa(port), "-j", "DROP"},
	}
	for _, r := range rules {
		if out, err := exec.Command("iptables", append([]string{"-w", "-I"}, r...)...).CombinedOutput(); err != nil {
			t.Fatalf("iptables: %v\n%s", err, out)
		}
	}
	healed := false
	heal = func() {
		if healed {
			return
		}
		healed = true
		for _, r := range rules {
			if out, err := exec.Command("iptables", append([]string{"-w", "-D"}, r...)...).CombinedOutput(); err != nil {
				t.Errorf("iptables: %v\n%s", err, out)
			}
		}
	}
	t.Cleanup(heal)
	return heal
}

// An agent cut off from the server (iptables drops its traffic): a short
// partition changes nothing; a long one makes the agent fence itself (its
// sandboxes stop within three quarters of the lease) before the server
// declares the host lost, and the lost group's address is given to no one
// until that is certain. At no moment do two sandboxes hold one address.
func TestAgentPartition(t *testing.T) {
	bed := testbed.New(t, testbed.Options{Containerd: true})
	const lease = 8 * time.Second
	srv := servertest.Start(t, func(c *server.Config) { c.HostLeaseTTL = lease })
	srv.VSwitch(t, "vsw-a", "zone-a", bed.Network.VSwitchCIDR.String())
	rt, err := runtime.NewCRI(bed.Containerd.Endpoint, quiet())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tok, err := srv.Admin.CreateToken(ctx, &apiv1.Token{Spec: apiv1.TokenSpec{Kind: apiv1.TokenHost, Host: "h1"}})
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(srv.Addr())
	// The agent reaches the server through a relay whose port an iptables
	// rule cuts, as a partition would (packets dropped, not refused).
	_, fwdPort, _ := net.SplitHostPort(testbed.Relay(t, "127.0.0.1:"+port))
	fwd, _ := strconv.Atoi(fwdPort)
	cut, err := client.New(client.Config{Server: fmt.Sprintf("https://127.0.0.1:%d", fwd), Token: tok.Status.Token, CAFile: srv.CAFile()})
	if err != nil {
		t.Fatal(err)
	}
	installPlugin(t, bed, "")
	res := apiv1.Resources{MilliCPU: 32000, MemoryMiB: 65536, Pods: 200}
	runAgent(t, Config{
		Client: cut, Runtime: rt, CgroupParent: bed.CgroupParent, LogDir: bed.Containerd.LogDir, StateDir: filepath.Join(bed.Dir, "agent", "state"),
		Host:       apiv1.Host{Metadata: apiv1.ObjectMeta{Name: "h1"}, Spec: apiv1.HostSpec{Zone: "zone-a", Capacity: res, Allocatable: res}},
		CNIConfDir: bed.Containerd.CNIConfDir, NetworkName: bed.Network.AgentNetwork, CNISocket: filepath.Join(bed.Dir, "agent", "cni.sock"),
		RegistryConfigDir: bed.Containerd.CertsDir, AllowedLocalRegistries: []string{bed.Registry.Host},
		HeartbeatInterval: time.Second, ResyncInterval: time.Second,
	})

	// Every 100 ms: no two ready sandboxes with one address.
	var mu sync.Mutex
	var clash string
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	go func() {
		for watchCtx.Err() == nil {
			sbs, err := rt.ListPodSandbox(watchCtx, &runtimeapi.PodSandboxFilter{State: &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_READY}})
			if err == nil {
				owner := map[string]string{}
				for _, sb := range sbs {
					st, err := rt.PodSandboxStatus(watchCtx, sb.Id, false)
					if err != nil || st.GetStatus().GetNetwork().GetIp() == "" {
						continue
					}
					ip := st.GetStatus().GetNetwork().GetIp()
					if other, ok := owner[ip]; ok {
						mu.Lock()
						clash = fmt.Sprintf("%s held by the sandboxes of %s and %s", ip, other, sb.Labels[LabelGroup])
						mu.Unlock()
					}
					owner[ip] = sb.Labels[LabelGroup]
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	sleeper := func(name string, ip string) string {
		return createGroup(t, srv, &apiv1.ContainerGroup{Metadata: apiv1.ObjectMeta{Name: name}, Spec: apiv1.ContainerGroupSpec{
			PrivateIPAddress: ip, Containers: []apiv1.Container{{Name: "main", Image: bed.Registry.Busybox, Command: []string{"sleep", "3600"}}}}})
	}
	first := srv.WaitGroup(t, sleeper("first", ""), "Running with its container ready", func(g *apiv1.ContainerGroup) bool {
		return g.Status.State == apiv1.StateRunning && len(g.Status.Containers) == 1 && g.Status.Containers[0].Ready && g.Status.Containers[0].ContainerID != ""
	})
	ip := first.Status.IP

	t.Run("a partition shorter than the fence changes nothing", func(t *testing.T) {
		heal := partition(t, fwd)
		time.Sleep(lease / 2) // the partition's length, on purpose
		heal()
		poll.Consistently(t, 2*time.Second, "the group unchanged after a short partition", func() error {
			g, err := srv.Admin.GetGroup(ctx, first.Metadata.ID)
			if err != nil {
				return err
			}
			switch now := sandboxIP(t, rt, first.Metadata.ID); {
			case g.Status.State != apiv1.StateRunning:
				return fmt.Errorf("state %s (%s)", g.Status.State, g.Status.Reason)
			case g.Status.Containers[0].ContainerID != first.Status.Containers[0].ContainerID || g.Status.Containers[0].RestartCount != 0:
				return fmt.Errorf("container %s (restarts %d), was %s", g.Status.Containers[0].ContainerID, g.Status.Containers[0].RestartCount, first.Status.Containers[0].ContainerID)
			case now != ip:
				return fmt.Errorf("the sandbox's address %q, was %s", now, ip)
			}
			return nil
		})
	})

	t.Run("a long partition: the agent fences itself before the host is lost; the address waits for it", func(t *testing.T) {
		heal := partition(t, fwd)
		cutAt := time.Now()
		poll.Eventually(t, 30*time.Second, "the agent stopped its sandbox (fenced)", func() error {
			sbs, err := rt.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{LabelGroup: first.Metadata.ID}})
			if err != nil || len(sbs) != 0 {
				return fmt.Errorf("%d sandboxes (%v)", len(sbs), err)
			}
			return nil
		})
		fencedAfter := time.Since(cutAt)
		lost := srv.WaitGroup(t, first.Metadata.ID, "Failed with HostLost", func(g *apiv1.ContainerGroup) bool {
			return g.Status.State == apiv1.StateFailed && g.Status.Reason == "HostLost"
		})
		lostAfter := time.Since(cutAt)
		if fencedAfter >= lostAfter || fencedAfter > lease {
			t.Fatalf("fenced after %s, host lost after %s (lease %s): the fence must come first", fencedAfter, lostAfter, lease)
		}
		// The lost group's address is not free: asked for, it is refused.
		if _, _, err := srv.Admin.CreateGroup(ctx, &apiv1.ContainerGroup{Metadata: apiv1.ObjectMeta{Name: "same-ip"}, Spec: apiv1.ContainerGroupSpec{
			PrivateIPAddress: ip, Containers: []apiv1.Container{{Name: "main", Image: "busybox"}}}}); !errdefs.IsConflict(err) {
			t.Fatalf("the lost group's address during its quarantine: %v", err)
		}
		heal()
		// Healed, the host is Ready again and the address, once released,
		// goes to a new group on it.
		second := srv.WaitGroup(t, func() string {
			var id string
			poll.Eventually(t, 30*time.Second, "the address free again", func() error {
				g, _, err := srv.Admin.CreateGroup(ctx, quickStop(&apiv1.ContainerGroup{Metadata: apiv1.ObjectMeta{Name: "second"}, Spec: apiv1.ContainerGroupSpec{
					PrivateIPAddress: ip, Containers: []apiv1.Container{{Name: "main", Image: bed.Registry.Busybox, Command: []string{"sleep", "3600"}}}}}))
				if err != nil {
					return err
				}
				id = g.Metadata.ID
				return nil
			})
			return id
		}(), "Running at the lost group's address", inState(apiv1.StateRunning))
		if second.Status.IP != ip || lost.Status.IP != ip {
			t.Fatalf("second at %s, lost at %s, want %s", second.Status.IP, lost.Status.IP, ip)
		}
		t.Logf("fenced %s after the cut, host lost after %s (lease %s)", fencedAfter.Round(100*time.Millisecond), lostAfter.Round(100*time.Millisecond), lease)
	})
	stopWatch()
	mu.Lock()
	defer mu.Unlock()
	if clash != "" {
		t.Fatalf("two sandboxes at one address: %s", clash)
	}
}
