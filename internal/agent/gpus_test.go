package agent

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/client"
	"github.com/eci-dev/eci/internal/poll"
	"github.com/eci-dev/eci/internal/runtime"
	"github.com/eci-dev/eci/internal/server/servertest"
)

// The GPUs of a host are the devices of its kind in the CDI spec files (a
// vendor's "all", other kinds, and a second name of the same device
// nodes, such as its UUID, are not); a missing directory has none.
func TestDiscoverGPUs(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"nvidia.yaml": "cdiVersion: 0.6.0\nkind: nvidia.com/gpu\ndevices:\n- name: \"1\"\n  containerEdits: {deviceNodes: [{path: /dev/nvidia1}]}\n" +
			"- name: \"0\"\n  containerEdits: {deviceNodes: [{path: /dev/nvidia0}]}\n- name: all\n" +
			"- name: GPU-0f3a\n  containerEdits: {deviceNodes: [{path: /dev/nvidia0}]}\n",
		"other.json": `{"cdiVersion": "0.6.0", "kind": "vendor.example/fpga", "devices": [{"name": "0"}]}`,
		"notes.txt":  "not a spec",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := DiscoverGPUs([]string{dir, filepath.Join(dir, "missing")}, "nvidia.com/gpu")
	if err != nil || strings.Join(got, ",") != "nvidia.com/gpu=0,nvidia.com/gpu=1" {
		t.Fatalf("DiscoverGPUs: %v, %v", got, err)
	}
	// A node every GPU lists beside its own does not make them one.
	amd := "cdiVersion: 0.6.0\nkind: amd.com/gpu\ndevices:\n" +
		"- name: \"0\"\n  containerEdits: {deviceNodes: [{path: /dev/dri/renderD128}, {path: /dev/kfd}]}\n" +
		"- name: \"1\"\n  containerEdits: {deviceNodes: [{path: /dev/dri/renderD129}, {path: /dev/kfd}]}\n"
	if err := os.WriteFile(filepath.Join(dir, "amd.yaml"), []byte(amd), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := DiscoverGPUs([]string{dir}, "amd.com/gpu"); err != nil || strings.Join(got, ",") != "amd.com/gpu=0,amd.com/gpu=1" {
		t.Fatalf("GPUs sharing /dev/kfd: %v, %v", got, err)
	}
}

// Each container gets its own share of its group's GPUs, in order; init
// containers each from the first; a container asking for none gets none.
func TestGPUsOfContainers(t *testing.T) {
	g := &apiv1.ContainerGroup{Spec: apiv1.ContainerGroupSpec{GPU: 3, Containers: []apiv1.Container{{Name: "a", GPU: 1}, {Name: "none"}, {Name: "b", GPU: 2}}}}
	devices := "g=0,g=1,g=2"
	names := func(ds []*runtimeapi.CDIDevice) string {
		var out []string
		for _, d := range ds {
			out = append(out, d.Name)
		}
		return strings.Join(out, ",")
	}
	for _, tc := range []struct {
		c    apiv1.Container
		init bool
		want string
	}{
		{g.Spec.Containers[0], false, "g=0"},
		{g.Spec.Containers[1], false, ""},
		{g.Spec.Containers[2], false, "g=1,g=2"},
		{apiv1.Container{Name: "setup", GPU: 2}, true, "g=0,g=1"},
	} {
		if got := names(gpusOf(g, tc.c, tc.init, devices)); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.c.Name, got, tc.want)
		}
	}
}

// Groups on one host never share a GPU: each sandbox holds its own,
// written on it; a device is free again once its group is gone.
func TestGPUAssignment(t *testing.T) {
	srv := servertest.Start(t)
	srv.VSwitch(t, "vsw-a", "zone-a", "198.19.128.0/24")
	rt := runtime.NewFake(netip.MustParseAddr("198.19.200.2"))
	res := apiv1.Resources{MilliCPU: 8000, MemoryMiB: 16384, Pods: 20}
	cfg := Config{
		Client: srv.HostClient(t, "h1"), Runtime: rt, LogDir: t.TempDir(), StateDir: t.TempDir(), NoCgroups: true,
		Host:           apiv1.Host{Metadata: apiv1.ObjectMeta{Name: "h1"}, Spec: apiv1.HostSpec{Zone: "zone-a", Capacity: res, Allocatable: res}},
		ResyncInterval: 500 * time.Millisecond, AllowedLocalRegistries: []string{"docker.io"},
	}
	cfg.UseGPUs([]string{"nvidia.com/gpu=0", "nvidia.com/gpu=1"})
	if cfg.Host.Spec.Allocatable.GPU != 2 {
		t.Fatalf("allocatable GPUs %d, want the 2 devices", cfg.Host.Spec.Allocatable.GPU)
	}
	runAgent(t, cfg)
	gpuGroup := func(name string) string {
		g := simpleGroup(name, "", "main")
		g.Spec.GPU, g.Spec.Containers[0].GPU = 1, 1
		return createGroup(t, srv, g)
	}
	a, b := gpuGroup("a"), gpuGroup("b")
	for _, id := range []string{a, b} {
		srv.WaitGroup(t, id, "Running", inState(apiv1.StateRunning))
	}
	if ga, gb := gpusLabel(t, rt, a), gpusLabel(t, rt, b); ga == gb || !slices.Contains(cfg.GPUDevices, ga) || !slices.Contains(cfg.GPUDevices, gb) {
		t.Fatalf("a holds %q, b %q", ga, gb)
	}
	// The container is given its sandbox's device.
	if devs := rt.ContainerConfig(running(t, rt, a, "main").Id).GetCDIDevices(); len(devs) != 1 || devs[0].Name != gpusLabel(t, rt, a) {
		t.Errorf("a's container has CDI devices %v, want its sandbox's %q", devs, gpusLabel(t, rt, a))
	}
	freed := gpusLabel(t, rt, a)
	if _, err := srv.Admin.DeleteGroup(context.Background(), a, client.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	c := gpuGroup("c")
	srv.WaitGroup(t, c, "Running", inState(apiv1.StateRunning))
	if got := gpusLabel(t, rt, c); got != freed {
		t.Errorf("c holds %q, want a's freed %q", got, freed)
	}
}

// gpusLabel is the GPUs written on group's ready sandbox.
func gpusLabel(t *testing.T, rt Runtime, group string) string {
	t.Helper()
	var out string
	poll.Eventually(t, 10*time.Second, "the sandbox of "+group, func() error {
		sbs, err := rt.ListPodSandbox(context.Background(), &runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{LabelGroup: group},
			State: &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_READY}})
		if err != nil || len(sbs) != 1 {
			return fmt.Errorf("%d ready sandboxes: %v", len(sbs), err)
		}
		out = sbs[0].Labels[LabelGPUs]
		return nil
	})
	return out
}
