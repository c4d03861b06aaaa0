package testbed

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/eci-dev/eci/internal/datapath"
	"github.com/eci-dev/eci/internal/poll"
)

// trace is what a bed can leave on the machine.
type trace struct {
	processes []string // processes whose command line mentions the bed's dir
	links     []string
	cgroups   []string
	mounts    []string
	dirExists bool
}

func (tr trace) empty() bool {
	return len(tr.processes)+len(tr.links)+len(tr.cgroups)+len(tr.mounts) == 0 && !tr.dirExists
}

func (tr trace) String() string {
	return fmt.Sprintf("processes=%v links=%v cgroups=%v mounts=%v dir=%v", tr.processes, tr.links, tr.cgroups, tr.mounts, tr.dirExists)
}

func traceOf(t *testing.T, slotIndex int, dir string) trace {
	t.Helper()
	var tr trace
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(cmdline, []byte(dir)) {
			tr.processes = append(tr.processes, fmt.Sprintf("%d:%s", pid, strings.ReplaceAll(string(cmdline), "\x00", " ")))
		}
	}
	n := networkFor(slotIndex)
	natSide, natPeer := datapath.NATDevices(n.AgentNetwork)
	for _, l := range []string{n.Bridge, n.NodeLink, n.NodePeer, n.AgentNetwork, n.UnderlayBridge, natSide, natPeer} {
		if linkExists(l) {
			tr.links = append(tr.links, l)
		}
	}
	for _, table := range agentTables(n.AgentNetwork) {
		if nftTableExists(table) {
			tr.links = append(tr.links, "nftables table "+table.String())
		}
	}
	if out, _ := exec.Command("ip", "netns", "list").Output(); strings.Contains(string(out), hostNetNS(slotIndex, 1)) {
		tr.links = append(tr.links, "network namespace "+hostNetNS(slotIndex, 1))
	}
	// veths whose peer was in a pod's netns are gone with the netns; any
	// interface still enslaved to the bridge would show here too.
	out, _ := exec.Command("ip", "-o", "link", "show", "master", n.Bridge).CombinedOutput()
	if s := strings.TrimSpace(string(out)); s != "" && !strings.Contains(s, "does not exist") {
		tr.links = append(tr.links, s)
	}
	var err error
	if tr.cgroups, err = leftCgroups(fmt.Sprintf("eci-bed-%d", slotIndex)); err != nil {
		t.Fatal(err)
	}
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	for _, line := range strings.Split(string(mi), "\n") {
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], dir) {
			tr.mounts = append(tr.mounts, f[4])
		}
	}
	_, err = os.Stat(dir)
	tr.dirExists = err == nil
	return tr
}

// A bed with a control plane and a running pod leaves nothing behind when it
// stops: no process, link, cgroup, mount or directory; and a second bed on the
// same slot right after starts cleanly.
func TestStopLeavesNothingBehind(t *testing.T) {
	for round := 1; round <= 2; round++ {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		// The second round adds the real kubelet and a pod it runs (its
		// cgroups, its projected service-account token mount).
		withKubelet := round == 2
		b, err := Start(ctx, Options{Kube: true, Containerd: true, Kubelet: withKubelet})
		if err != nil {
			cancel()
			t.Fatalf("round %d: %v", round, err)
		}
		// A pod made through CRI alone only without the kubelet: the
		// kubelet kills the sandboxes it did not make (at its next
		// housekeeping, which may come before the pod's container starts).
		if withKubelet {
			runKubeletPod(ctx, t, b, "leak-kube")
		} else if pod := runBusyboxPod(ctx, t, b, "leak", "sleep 3600"); !b.Network.PodCIDR.Contains(mustAddr(t, pod.IP)) {
			t.Fatalf("pod IP %q outside %s", pod.IP, b.Network.PodCIDR)
		}
		during := traceOf(t, b.Slot, b.Dir)
		if len(during.processes) == 0 || len(during.links) == 0 || len(during.cgroups) == 0 || !during.dirExists {
			t.Fatalf("round %d: the trace check sees nothing of a running bed, so it proves nothing: %s", round, during)
		}
		if err := b.Stop(); err != nil {
			t.Fatalf("round %d: stop: %v", round, err)
		}
		cancel()
		if after := traceOf(t, b.Slot, b.Dir); !after.empty() {
			t.Fatalf("round %d: the bed left: %s", round, after)
		}
	}
}

// A test run killed with SIGKILL takes its daemons with it (they die with their
// parent), and what it leaves (links, cgroups, files) is cleaned by the next bed
// that takes the slot.
func TestKilledRunIsCleanedByNextBed(t *testing.T) {
	if os.Getenv("ECI_BED_HELPER") == "1" {
		runHelperBed(t)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestKilledRunIsCleanedByNextBed$", "-test.v")
	cmd.Env = append(os.Environ(), "ECI_BED_HELPER=1")
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	// However the test ends, no helper outlives it (an orphan's bed would
	// hold a slot, and its end kill its pods, under the next tests).
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-exited })
	var slotIndex int
	var dir string
	// The helper's bed has its own bound (helperStart); beside the other
	// packages' beds on 2 cores, starting a control plane and a kubelet
	// takes minutes.
	poll.Eventually(t, helperStart+time.Minute, "the helper's bed runs a pod", func() error {
		select {
		case <-exited:
			t.Fatalf("the helper exited: %s", out.String())
		default:
		}
		for _, line := range strings.Split(out.String(), "\n") {
			if i := strings.Index(line, "HELPER-READY "); i >= 0 {
				if _, err := fmt.Sscanf(line[i:], "HELPER-READY %d %s", &slotIndex, &dir); err == nil {
					return nil
				}
			}
		}
		return fmt.Errorf("not yet")
	})
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-exited

	poll.Eventually(t, 15*time.Second, "the killed run's daemons die with it", func() error {
		if p := traceOf(t, slotIndex, dir).processes; len(p) > 0 {
			return fmt.Errorf("still running: %v", p)
		}
		return nil
	})
	left := traceOf(t, slotIndex, dir)
	if len(left.links) == 0 || len(left.cgroups) == 0 || !left.dirExists {
		t.Fatalf("expected the killed run to leave links, cgroups and its dir for the next bed to clean; found %s", left)
	}
	s, err := tryClaimSlot(DefaultBaseDir, slotIndex)
	if err != nil {
		t.Fatalf("claim the stale slot: %v", err)
	}
	if s == nil {
		t.Fatalf("slot %d is still locked after its owner was killed", slotIndex)
	}
	defer func() { _ = s.clean(); s.release() }()
	if after := traceOf(t, slotIndex, filepath.Join(DefaultBaseDir, fmt.Sprintf("slot-%d", slotIndex))); len(after.links)+len(after.cgroups)+len(after.processes) > 0 {
		t.Fatalf("claiming the slot did not clean it: %s", after)
	}
}

// helperStart bounds the helper's bed's start and first pods.
const helperStart = 4 * time.Minute

// lockedBuffer is a buffer a process writes while a test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func runHelperBed(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), helperStart)
	defer cancel()
	// The parent claims this slot again once the helper is killed; beds
	// other packages start meanwhile take the lowest free slot.
	claimFromTop = true
	b, err := Start(ctx, Options{Kube: true, Containerd: true, Kubelet: true})
	if err != nil {
		t.Fatal(err)
	}
	// The kubelet's pod only: the kubelet kills a sandbox made through CRI
	// alone on its containerd.
	runKubeletPod(ctx, t, b, "orphan-kube")
	fmt.Printf("HELPER-READY %d %s\n", b.Slot, b.Dir)
	time.Sleep(5 * time.Minute) // killed by the parent test long before
	t.Fatal("helper was not killed")
}

func mustAddr(t *testing.T, s string) netip.Addr {
	t.Helper()
	a, err := netip.ParseAddr(s)
	if err != nil {
		t.Fatalf("bad IP %q: %v", s, err)
	}
	return a
}
