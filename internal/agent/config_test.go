package agent

import (
	"strings"
	"testing"
)

func TestMachineHost(t *testing.T) {
	h, err := DefaultMachine().Host()
	if err != nil {
		t.Fatal(err)
	}
	c, a := h.Spec.Capacity, h.Spec.Allocatable
	if c.Pods != 110 || h.Spec.Zone != "zone-a" || len(h.Spec.RuntimeHandlers) != 1 || h.Spec.RuntimeHandlers[0] != "runc" || h.Metadata.Name == "" {
		t.Fatalf("default host %+v", h)
	}
	if a.MemoryMiB != c.MemoryMiB-512 || a.MilliCPU != c.MilliCPU {
		t.Fatalf("allocatable %+v of capacity %+v, want half a GiB kept", a, c)
	}
	m := DefaultMachine()
	m.CPU, m.MemoryGiB, m.Overcommit, m.ReservedCPU = 2, 4, 2, 1
	if h, err = m.Host(); err != nil || h.Spec.Capacity.MilliCPU != 4000 || h.Spec.Capacity.MemoryMiB != 8192 || h.Spec.Allocatable.MilliCPU != 3000 {
		t.Fatalf("2 vCPU / 4 GiB overcommitted twice, 1 vCPU kept: %+v, %v", h.Spec, err)
	}
	m = DefaultMachine()
	m.RuntimeHandlers = []string{"kata", "runc", "kata", "gvisor"}
	if h, err = m.Host(); err != nil || strings.Join(h.Spec.RuntimeHandlers, ",") != "runc,kata,gvisor" {
		t.Fatalf("--runtime-handlers kata,runc,kata,gvisor: %v, %v; want the default first, each once", h.Spec.RuntimeHandlers, err)
	}
	for _, tc := range []struct {
		mutate func(*Machine)
		says   string
	}{
		{func(m *Machine) { m.MaxGroups = 0 }, "--max-groups 0"},
		{func(m *Machine) { m.RuntimeHandler = "" }, "--runtime-handler"},
		{func(m *Machine) { m.Zone = "" }, "--zone"},
		{func(m *Machine) { m.CPU, m.ReservedCPU = 1, 1 }, "leave nothing"},
	} {
		m := DefaultMachine()
		tc.mutate(&m)
		if _, err := m.Host(); err == nil || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("Host() = %v, want an error saying %q", err, tc.says)
		}
	}
}
