package agent

import (
	"bufio"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
)

// setHostname changes the hostname of another process's UTS namespace,
// and neither the agent's nor the thread's it ran on.
func TestSetHostnameInAnotherNamespace(t *testing.T) {
	before, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", "-c", "read go; hostname")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUTS}
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	// Never a process outside the sandbox's cgroup, nor one in the agent's
	// own namespace.
	if err := setHostname(cmd.Process.Pid, "no-such-sandbox", "wrong"); err == nil || !strings.Contains(err.Error(), "is not the sandbox's") {
		t.Fatalf("a process outside the sandbox's cgroup: %v", err)
	}
	if err := setHostname(os.Getpid(), "/", "wrong"); err == nil || !strings.Contains(err.Error(), "shares the agent's UTS namespace") {
		t.Fatalf("a process in the agent's UTS namespace: %v", err)
	}
	// Many times: each call's thread goes back to the scheduler in the
	// agent's own namespace.
	for i := 0; i < 20; i++ {
		if err := setHostname(cmd.Process.Pid, "/", "warm-taken"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := in.Write([]byte("now\n")); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(line) != "warm-taken" {
		t.Fatalf("the other namespace's hostname is %q, want warm-taken", line)
	}
	for i := 0; i < 20; i++ { // on whichever threads the scheduler runs this
		if after, err := os.Hostname(); err != nil || after != before {
			t.Fatalf("the agent's hostname changed: %q, was %q (%v)", after, before, err)
		}
	}
	if data, err := os.ReadFile("/proc/sys/kernel/hostname"); err != nil || strings.TrimSpace(string(data)) != before {
		t.Fatalf("the machine's hostname is %q, was %q (%v)", data, before, err)
	}
}

// The pool's plan never removes a sandbox a group took, removes any other
// sandbox on that group's address and a second one on a reserved
// address, and keeps the newest ready one.
func TestWarmPlanKeepsTakenSandboxes(t *testing.T) {
	a := &Agent{view: newGroupView(), cfg: Config{}}
	p := newWarmPool(a)
	now := time.Now()
	p.sandboxes = map[string]*warmSandbox{
		"taken":   {id: "taken", vsw: "v", ip: "198.18.0.2", group: "eci-a", ready: false, created: 1},
		"beside":  {id: "beside", vsw: "v", ip: "198.18.0.2", ready: true, created: 2},
		"old":     {id: "old", vsw: "v", ip: "198.18.0.3", ready: true, created: 1},
		"new":     {id: "new", vsw: "v", ip: "198.18.0.3", ready: true, created: 2},
		"stopped": {id: "stopped", vsw: "v", ip: "198.18.0.4", ready: false, created: 3},
	}
	res := &apiv1.WarmPool{Size: 3, Reserved: []apiv1.WarmAddress{{VSwitchID: "v", IP: "198.18.0.2"}, {VSwitchID: "v", IP: "198.18.0.3"}, {VSwitchID: "v", IP: "198.18.0.4"}}}
	gone, missing, _ := p.plan(res, now)
	var ids []string
	for _, w := range gone {
		ids = append(ids, w.id)
	}
	slices.Sort(ids)
	if !slices.Equal(ids, []string{"beside", "old", "stopped"}) {
		t.Errorf("removed %v, want beside, old and stopped (never the taken one)", ids)
	}
	if len(missing) != 1 || missing[0].IP != "198.18.0.4" {
		t.Errorf("missing %v, want only 198.18.0.4 (198.18.0.2 is a group's)", missing)
	}
	// A second plan removes nothing twice and never the taken one.
	if gone, _, _ := p.plan(res, now); len(gone) != 0 {
		t.Errorf("the second plan removes %v again", gone)
	}
}
