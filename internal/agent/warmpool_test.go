package agent

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/client"
	"github.com/eci-dev/eci/internal/errdefs"
	"github.com/eci-dev/eci/internal/poll"
	"github.com/eci-dev/eci/internal/server/servertest"
	"github.com/eci-dev/eci/internal/testbed"
)

// The warm pool on the bed's containerd: the host keeps two ready
// sandboxes whose addresses the server reserved; a group placed there
// takes one with its own size, hostname and DNS, and the pool makes
// another; a sandbox is used once; a group that needs its own sandbox
// gets one; an agent started again finds the group's sandbox; a sandbox
// the runtime lost is made again; the operator's size of 0 empties the
// pool.
func TestWarmPool(t *testing.T) {
	bed, srv, rt := containerdBed(t)
	warm := func(c *Config) { c.Host.Spec.WarmPool = &apiv1.WarmPoolSpec{Size: 2} }
	stop := startAgentWith(t, srv, rt, bed, "", warm)
	ctx := context.Background()

	before := waitWarm(t, srv, rt, 2, nil)
	g := &apiv1.ContainerGroup{Metadata: apiv1.ObjectMeta{Name: "alpha"}, Spec: apiv1.ContainerGroupSpec{Containers: []apiv1.Container{{
		Name: "web", Image: bed.Registry.Busybox,
		Command: []string{"sh", "-c", `mkdir -p /srv && { echo "uts=$(hostname)"; echo "file=$(cat /etc/hostname)"; echo "env=$HOSTNAME"; cat /etc/resolv.conf; } > /srv/info && exec httpd -f -p 8080 -h /srv`},
	}}}}
	id := createGroup(t, srv, g)
	running := srv.WaitGroup(t, id, "Running", inState(apiv1.StateRunning))
	taken := before[running.Status.IP]
	if taken == "" {
		t.Fatalf("the group got %s; the pool's ready sandboxes had %v", running.Status.IP, before)
	}
	sbs, err := sandboxesHolding(ctx, rt, id)
	if err != nil || !slices.Equal(sbs, []string{taken}) {
		t.Fatalf("the group's sandbox: %v (%v); the pool's on its address was %s", sbs, err, short(taken))
	}
	evs, err := srv.Admin.GroupEvents(ctx, id)
	if err != nil || !slices.ContainsFunc(evs, func(e apiv1.Event) bool { return strings.Contains(e.Message, "taken from the host's warm pool") }) {
		t.Fatalf("no event tells the sandbox came from the warm pool: %+v (%v)", evs, err)
	}
	info := get(t, "http://"+running.Status.IP+":8080/info")
	for _, want := range []string{"uts=alpha\n", "file=alpha\n", "env=alpha\n", "nameserver 198.18.0.53\n", "search bed.test\n", "options ndots:2 timeout:1\n"} {
		if !strings.Contains(info, want) {
			t.Errorf("the group's container sees %q; want a line %q", info, want)
		}
	}
	if limit := warmMemoryLimit(t, bed, rt, taken); limit != running.Status.MemoryMiB<<20 {
		t.Errorf("the taken sandbox's cgroup allows %d bytes; the group's size is %d MiB", limit, running.Status.MemoryMiB)
	}

	// The pool refills on other addresses; the taken one is the group's alone.
	after := waitWarm(t, srv, rt, 2, func(ready map[string]string) error {
		if _, again := ready[running.Status.IP]; again {
			return fmt.Errorf("the group's address %s is ready in the pool again", running.Status.IP)
		}
		return nil
	})

	// A group that needs its own sandbox (its own process namespace's
	// PID 1 is the pause) does not take one.
	own := &apiv1.ContainerGroup{Metadata: apiv1.ObjectMeta{Name: "own"}, Spec: apiv1.ContainerGroupSpec{ShareProcessNamespace: true,
		Containers: []apiv1.Container{{Name: "c", Image: bed.Registry.Busybox, Command: []string{"sleep", "3600"}}}}}
	ownID := createGroup(t, srv, own)
	ownRunning := srv.WaitGroup(t, ownID, "Running", inState(apiv1.StateRunning))
	if _, fromPool := after[ownRunning.Status.IP]; fromPool {
		t.Errorf("a group with shareProcessNamespace took the pool's sandbox at %s", ownRunning.Status.IP)
	}
	if labelled, err := rt.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{LabelGroup: ownID}}); err != nil || len(labelled) != 1 {
		t.Errorf("the group with shareProcessNamespace has %d sandboxes of its own (%v), want 1", len(labelled), err)
	}

	// An agent started again finds the group on the sandbox it took.
	stop()
	startAgentWith(t, srv, rt, bed, "", warm)
	poll.Consistently(t, 3*time.Second, "the group keeps its sandbox after the agent started again", func() error {
		if sbs, err := sandboxesHolding(ctx, rt, id); err != nil || len(sbs) != 0 && sbs[0] != taken {
			return fmt.Errorf("sandboxes %v (%v)", sbs, err)
		}
		cur, err := srv.Admin.GetGroup(ctx, id)
		if err != nil || cur.Status.State != apiv1.StateRunning {
			return fmt.Errorf("group: %v (%v)", cur.Status.State, err)
		}
		return nil
	})
	if got := get(t, "http://"+running.Status.IP+":8080/info"); got != info {
		t.Errorf("after the agent started again the group answers %q, before %q", got, info)
	}

	// Deleted, the group's sandbox goes, never back to the pool.
	for _, gid := range []string{id, ownID} {
		if _, err := srv.Admin.DeleteGroup(ctx, gid, client.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	poll.Eventually(t, 30*time.Second, "the taken sandbox is removed with its group", func() error {
		if _, err := srv.Admin.GetGroup(ctx, id); !errdefs.IsNotFound(err) {
			return fmt.Errorf("group still there (%v)", err)
		}
		left, err := rt.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{Id: taken})
		if err != nil || len(left) != 0 {
			return fmt.Errorf("%d left (%v)", len(left), err)
		}
		return nil
	})

	// A sandbox the runtime lost (a containerd restart, a fence) is made
	// again, and never told ready meanwhile.
	ready := waitWarm(t, srv, rt, 2, nil)
	var lostIP, lostID string
	for ip, id := range ready {
		lostIP, lostID = ip, id
		break
	}
	if err := rt.StopPodSandbox(ctx, lostID); err != nil {
		t.Fatal(err)
	}
	if err := rt.RemovePodSandbox(ctx, lostID); err != nil {
		t.Fatal(err)
	}
	waitWarm(t, srv, rt, 2, func(now map[string]string) error {
		if now[lostIP] == lostID {
			return fmt.Errorf("the lost sandbox %s is still told ready", short(lostID))
		}
		return nil
	})

	// The operator's size replaces the agent's: 0 empties the pool.
	zero := 0
	if _, err := srv.Admin.UpdateHost(ctx, "h1", apiv1.HostUpdate{WarmPoolTarget: &zero}); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, 60*time.Second, "the pool is empty", func() error {
		left, err := rt.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{LabelWarm: "true"}})
		if err != nil || len(left) != 0 {
			return fmt.Errorf("%d warm sandboxes (%v)", len(left), err)
		}
		h, err := srv.Admin.GetHost(ctx, "h1")
		if err != nil || h.Status.WarmPool == nil || h.Status.WarmPool.Reserved != 0 {
			return fmt.Errorf("host's pool: %+v (%v)", h.Status.WarmPool, err)
		}
		return nil
	})
}

// waitWarm waits until the host's pool has n ready sandboxes the server
// knows of (and check passes), and returns their sandbox ids by address.
func waitWarm(t *testing.T, srv *servertest.Server, rt Runtime, n int, check func(map[string]string) error) map[string]string {
	t.Helper()
	var ready map[string]string
	poll.Eventually(t, 60*time.Second, fmt.Sprintf("%d ready sandboxes in the warm pool", n), func() error {
		h, err := srv.Admin.GetHost(context.Background(), "h1")
		if err != nil || h.Status.WarmPool == nil || len(h.Status.WarmPool.Ready) != n {
			return fmt.Errorf("host's pool: %+v (%v)", h.Status.WarmPool, err)
		}
		sbs, err := rt.ListPodSandbox(context.Background(), &runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{LabelWarm: "true"},
			State: &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_READY}})
		if err != nil {
			return err
		}
		ready = map[string]string{}
		for _, sb := range sbs {
			if slices.Contains(h.Status.WarmPool.Ready, apiv1.WarmAddress{VSwitchID: sb.Labels[LabelWarmVSwitch], IP: sb.Labels[LabelWarmIP]}) {
				ready[sb.Labels[LabelWarmIP]] = sb.Id
			}
		}
		if len(ready) != n {
			return fmt.Errorf("the runtime has %d of them ready", len(ready))
		}
		if check != nil {
			return check(ready)
		}
		return nil
	})
	return ready
}

// sandboxesHolding are the sandboxes that hold group id's containers, as
// the runtime lists them (a sandbox of the pool has no group label).
func sandboxesHolding(ctx context.Context, rt Runtime, id string) ([]string, error) {
	ctrs, err := rt.ListContainers(ctx, &runtimeapi.ContainerFilter{LabelSelector: map[string]string{LabelGroup: id}})
	if err != nil {
		return nil, err
	}
	var out []string
	for _, c := range ctrs {
		if !slices.Contains(out, c.PodSandboxId) {
			out = append(out, c.PodSandboxId)
		}
	}
	return out, nil
}

// warmMemoryLimit is the memory limit of warm sandbox id's cgroup.
func warmMemoryLimit(t *testing.T, bed *testbed.Bed, rt Runtime, id string) int64 {
	t.Helper()
	st, err := rt.PodSandboxStatus(context.Background(), id, false)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join("/sys/fs/cgroup/memory", bed.CgroupParent, st.GetStatus().GetMetadata().GetName(), "memory.limit_in_bytes"))
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	if _, err := fmt.Sscan(string(data), &n); err != nil {
		t.Fatal(err)
	}
	return n
}

// get is the body of url, once it answers.
func get(t *testing.T, url string) string {
	t.Helper()
	var body string
	poll.Eventually(t, 30*time.Second, "GET "+url, func() error {
		resp, err := (&http.Client{Timeout: time.Second}).Get(url)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		data, err := io.ReadAll(resp.Body)
		body = string(data)
		return err
	})
	return body
}
