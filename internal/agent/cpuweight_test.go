package agent

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/eci-dev/eci/internal/client"
	"github.com/eci-dev/eci/internal/runtime"
)

func TestGroupsCPUWeight(t *testing.T) {
	for w, shares := range map[int]int64{1: 10, 25: 256, 100: 1024, MaxCPUWeight: 102400} {
		if got := cpuSharesOfWeight(w); got != shares {
			t.Errorf("cpuSharesOfWeight(%d) = %d, want %d (systemd's CPUWeight= to CPUShares=)", w, got, shares)
		}
	}
	cfg := DefaultConfig()
	cfg.Host.Metadata.Name = "h1"
	cfg.Client, cfg.Runtime = &client.Client{}, runtime.NewFake(netip.MustParseAddr("198.19.128.2"))
	for _, bad := range []int{-1, MaxCPUWeight + 1} {
		cfg.GroupsCPUWeight = bad
		if err := cfg.validate(); err == nil || !strings.Contains(err.Error(), "--groups-cpu-weight") || !strings.Contains(err.Error(), "1 to 10000") {
			t.Errorf("--groups-cpu-weight %d: %v, want an error naming the flag and what is allowed", bad, err)
		}
	}
	if err := setCPUWeight("eci-test-weight", 0); err == nil {
		t.Error("weight 0 was taken")
	}
	for _, root := range []string{"", "/", "../.."} {
		if err := setCPUWeight(root, 50); err == nil || !strings.Contains(err.Error(), "root cgroup") {
			t.Errorf("setCPUWeight(%q): %v, want the root cgroup refused", root, err)
		}
	}
	if os.Geteuid() != 0 {
		t.Skip("writing a cgroup needs root")
	}
	// A real cgroup: what the kernel then reads back.
	rel := fmt.Sprintf("eci-test-weight-%d", os.Getpid())
	if err := setCPUWeight(rel, 25); err != nil {
		t.Fatal(err)
	}
	file, want := filepath.Join(cgroupRoot, "cpu", rel, "cpu.shares"), "256"
	var st syscall.Statfs_t
	if err := syscall.Statfs(cgroupRoot, &st); err == nil && st.Type == 0x63677270 {
		file, want = filepath.Join(cgroupRoot, rel, "cpu.weight"), "25"
	}
	defer os.Remove(filepath.Dir(file))
	data, err := os.ReadFile(file)
	if err != nil || strings.TrimSpace(string(data)) != want {
		t.Fatalf("%s = %q (%v), want %s", file, data, err, want)
	}
	// Set again (an agent's restart): the same, no error.
	if err := setCPUWeight(rel, 25); err != nil {
		t.Fatal(err)
	}
}
