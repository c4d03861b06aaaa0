// Package agenttest runs a real host agent on a test bed's containerd, for
// the tests of other packages (the virtual node's e2e tests).
package agenttest

import (
	"context"
	"io"
	"log/slog"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/agent"
	"github.com/eci-dev/eci/internal/cni"
	"github.com/eci-dev/eci/internal/runtime"
	"github.com/eci-dev/eci/internal/server/servertest"
	"github.com/eci-dev/eci/internal/testbed"
)

// Start runs an agent for host name on the bed's containerd (the bed's
// vSwitch range is added to the server), with the eci-cni plugin built
// from this checkout, until the test ends.
func Start(t testing.TB, srv *servertest.Server, bed *testbed.Bed, name string, mutate ...func(*agent.Config)) *agent.Agent {
	t.Helper()
	return StartWithVSwitch(t, srv, bed, name, bed.Network.VSwitchCIDR.String(), mutate...)
}

// StartWithVSwitch is Start with the host's vSwitch on cidr (the agent's
// bridge carries one vSwitch's gateway: the CNI bridge plugin refuses a
// second subnet on it).
func StartWithVSwitch(t testing.TB, srv *servertest.Server, bed *testbed.Bed, name, cidr string, mutate ...func(*agent.Config)) *agent.Agent {
	t.Helper()
	srv.VSwitch(t, "vsw-"+name, "zone-a", cidr)
	plugin := filepath.Join(bed.Containerd.CNIBinDir, cni.PluginName)
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", plugin, "github.com/eci-dev/eci/cmd/eci-cni")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build eci-cni: %v\n%s", err, out)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	rt, err := runtime.NewCRI(bed.Containerd.Endpoint, quiet)
	if err != nil {
		t.Fatal(err)
	}
	res := apiv1.Resources{MilliCPU: 32000, MemoryMiB: 65536, Pods: 200}
	cfg := agent.DefaultConfig()
	cfg.Client, cfg.Runtime, cfg.CgroupParent = srv.HostClient(t, name), rt, bed.CgroupParent
	cfg.LogDir, cfg.StateDir = bed.Containerd.LogDir, filepath.Join(bed.Dir, "agent-"+name)
	cfg.Host = apiv1.Host{Metadata: apiv1.ObjectMeta{Name: name}, Spec: apiv1.HostSpec{Zone: "zone-a", Capacity: res, Allocatable: res}}
	cfg.CNIConfDir, cfg.NetworkName, cfg.CNISocket = bed.Containerd.CNIConfDir, bed.Network.AgentNetwork, filepath.Join(bed.Dir, "cni-"+name+".sock")
	cfg.RegistryConfigDir, cfg.AllowedLocalRegistries, cfg.StreamAddress = bed.Containerd.CertsDir, []string{bed.Registry.Host}, "127.0.0.1:0"
	cfg.ResolvConf = "" // never the machine's resolver
	for _, m := range mutate {
		m(&cfg)
	}
	a, err := agent.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { _ = a.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-a.Done() })
	select {
	case <-a.Ready():
	case <-a.Done():
		t.Fatalf("agent stopped: %v", a.Err())
	case <-time.After(30 * time.Second):
		t.Fatal("agent not ready after 30s")
	}
	return a
}
