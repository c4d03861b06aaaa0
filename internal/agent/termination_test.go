package agent

import (
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/runtime"
	"github.com/eci-dev/eci/internal/server/servertest"
)

// A container's termination message is what it wrote at its
// terminationMessagePath (a file any user may write, its own per
// attempt), else, with FallbackToLogsOnError and a failure, the end of its
// log; with the File policy a failure that wrote nothing says nothing.
func TestTerminationMessages(t *testing.T) {
	srv := servertest.Start(t)
	srv.VSwitch(t, "vsw-a", "zone-a", "198.19.128.0/24")
	rt := runtime.NewFake(netip.MustParseAddr("198.19.200.2"))
	a, _ := startFakeAgent(t, srv, rt, "eci-test")
	spec := simpleGroup("ends", apiv1.RestartNever, "written", "fallback", "silent")
	spec.Spec.Containers[0].TerminationMessagePath = "/var/run/msg"
	spec.Spec.Containers[1].TerminationMessagePolicy = apiv1.TerminationMessageFallbackToLogsOnError
	spec.Spec.Containers[2].TerminationMessagePath, spec.Spec.Containers[2].TerminationMessagePolicy = "/dev/termination-log", apiv1.TerminationMessageFile
	id := createGroup(t, srv, spec)
	srv.WaitGroup(t, id, "Running", inState(apiv1.StateRunning))

	file := a.terminationFile(id, "written", 0)
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o666 {
		t.Fatalf("the termination file: %v, %v; want mode 0666", fi, err)
	}
	if err := os.WriteFile(file, []byte("wrote this"), 0o666); err != nil {
		t.Fatal(err)
	}
	logFile := filepath.Join(a.cfg.LogDir, id, "fallback", "0.log")
	if err := os.MkdirAll(filepath.Dir(logFile), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(logFile, []byte("2026-11-29T12:00:00.000000000Z stderr F panic: boom\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"written", "fallback", "silent"} {
		rt.Exit(running(t, rt, id, name).Id, 2)
	}
	g := srv.WaitGroup(t, id, "Failed", inState(apiv1.StateFailed))
	want := map[string]string{"written": "wrote this", "fallback": "panic: boom\n", "silent": ""}
	for _, c := range g.Status.Containers {
		if got := c.State.Terminated.Message; got != want[c.Name] {
			t.Errorf("%s: message %q, want %q", c.Name, got, want[c.Name])
		}
	}
}
