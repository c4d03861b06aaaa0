package cli

import (
	"context"
	"strings"
	"testing"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
)

// The verbs of issue #17's item 7: tenants and their quotas, quota, hosts
// cordon/uncordon/drain (drain waits for the groups to end and moves
// nothing), restart, update, ps -w.
func TestAdminVerbs(t *testing.T) {
	srv := startWithHost(t)
	if _, err := eci(t, "vswitches", "create", "vsw-a", "--zone", "zone-a", "--cidr", "198.19.128.0/24"); err != nil {
		t.Fatal(err)
	}

	out, err := eci(t, "tenants", "set", "acme", "--cpu", "4", "--groups", "3")
	if err != nil || !strings.Contains(out, "tenant acme: quota cpu 4, memory unlimited, gpu unlimited, groups 3") {
		t.Fatalf("tenants set: %v %q", err, out)
	}
	if out, err = eci(t, "tenants", "set", "acme", "--cpu", "-1"); err == nil {
		t.Fatalf("a negative quota: %q", out)
	}
	if out, err = eci(t, "tenants"); err != nil || !strings.Contains(out, "acme") || !strings.Contains(out, "unlimited") {
		t.Fatalf("tenants: %v %q", err, out)
	}
	if out, err = eci(t, "quota"); err != nil || !strings.Contains(out, "POOL FREE") || !strings.Contains(out, "cpu") {
		t.Fatalf("quota: %v %q", err, out)
	}

	out, err = eci(t, "run", "web", "--image", "busybox", "--cpu", "1", "--memory", "2")
	if err != nil {
		t.Fatal(err)
	}
	id := strings.Fields(out)[0]
	srv.WaitGroup(t, id, "running", func(g *apiv1.ContainerGroup) bool { return g.Status.State == apiv1.StateRunning })
	if out, err = eci(t, "update", id, "--image", "nope=busybox:2"); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("update of an unknown container: %v %q", err, out)
	}
	if out, err = eci(t, "update", id); err == nil || !strings.Contains(err.Error(), "nothing to change") {
		t.Fatalf("update with nothing: %v %q", err, out)
	}
	if out, err = eci(t, "update", id, "--tag", "team=shop", "--image", "main=busybox:2"); err != nil || !strings.Contains(out, id+" updated") {
		t.Fatalf("update: %v %q", err, out)
	}
	if out, err = eci(t, "restart", id); err != nil || !strings.Contains(out, id+" Restarting") {
		t.Fatalf("restart: %v %q", err, out)
	}

	// ps -w: the list, then a row for the group's change, until
	// interrupted.
	wctx, wcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer wcancel()
	watched := make(chan string, 1)
	go func() { o, _ := eciCtx(t, wctx, "get", "-w"); watched <- o }()
	time.Sleep(time.Second)
	if _, err := eci(t, "update", id, "--tag", "team=web"); err != nil {
		t.Fatal(err)
	}
	if out = <-watched; !strings.Contains(out, "STATE") || strings.Count(out, id) < 2 {
		t.Fatalf("get -w: want the list and a change row of %s:\n%s", id, out)
	}

	for _, verb := range []string{"cordon", "uncordon"} {
		if out, err = eci(t, "hosts", verb, "h1"); err != nil || !strings.Contains(out, "host h1 "+verb+"ed") {
			t.Fatalf("hosts %s: %v %q", verb, err, out)
		}
	}
	if out, err = eci(t, "hosts", "warm-pool", "h1", "4"); err != nil || !strings.Contains(out, "host h1 keeps 4 ready sandboxes on each vSwitch") {
		t.Fatalf("hosts warm-pool: %v %q", err, out)
	}
	if out, err = eci(t, "hosts", "warm-pool", "h1", "1000"); err == nil || !strings.Contains(err.Error(), "warmPoolTarget") {
		t.Fatalf("hosts warm-pool 1000: %v %q", err, out)
	}
	if out, err = eci(t, "hosts", "warm-pool", "h1", "agent"); err != nil || !strings.Contains(out, "keeps its agent's warm pool size") {
		t.Fatalf("hosts warm-pool agent: %v %q", err, out)
	}
	if out, err = eci(t, "hosts", "drain", "h1", "--timeout", "3s"); err == nil || !strings.Contains(out, "waiting for 1 group(s) on h1") || !strings.Contains(err.Error(), "still holds 1") {
		t.Fatalf("drain of a host with a group: %v %q", err, out)
	}
	if out, err = eci(t, "hosts"); err != nil || !strings.Contains(out, "Draining") {
		t.Fatalf("hosts after drain: %v %q", err, out)
	}
	if _, err = eci(t, "rm", id); err != nil {
		t.Fatal(err)
	}
	if out, err = eci(t, "hosts", "drain", "h1", "--timeout", "30s"); err != nil || !strings.Contains(out, "host h1 drained: no groups left") {
		t.Fatalf("drain: %v %q", err, out)
	}
}
