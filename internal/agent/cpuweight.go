package agent

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// The groups' share of the host's CPU against everything outside their
// parent cgroup (docs/fast-start.md "CPU priority"). Where the control
// path (eci server, the virtual node, an apiserver, etcd) shares a host
// with the groups, a weight below the default 100 keeps a burst's
// containers (runc's init runs in the container's cgroup) from slowing
// the placements and status writes of the pods after them. The weight
// only matters while the CPU is contended: an idle control path leaves
// the groups every cycle (a weight is not a limit).

// MaxCPUWeight is cgroup v2's largest cpu.weight (1 is the least; 100 is
// the kernel's default).
const MaxCPUWeight = 10000

// cpuSharesOfWeight is cgroup v1's cpu.shares for a v2 weight, as systemd
// maps CPUWeight= to CPUShares=: the default 100 is the default 1024.
func cpuSharesOfWeight(weight int) int64 {
	s := int64(weight) * 1024 / 100
	if s < 2 {
		s = 2
	}
	return s
}

// setCPUWeight gives the cgroup rel (created if missing) the CPU weight, on
// cgroup v2 (cpu.weight) or v1 (the cpu hierarchy's cpu.shares).
func setCPUWeight(rel string, weight int) error {
	if weight < 1 || weight > MaxCPUWeight {
		return fmt.Errorf("cpu weight %d: allowed: 1 to %d", weight, MaxCPUWeight)
	}
	// The groups' parent, as spec.go names their cgroups: never above the
	// hierarchy's root, never the root itself.
	rel = filepath.Join("/", rel)
	if rel == "/" {
		return fmt.Errorf("the groups' cgroup parent is the root cgroup: give them one of their own (--cgroup-parent)")
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(cgroupRoot, &st); err == nil && st.Type == 0x63677270 { // cgroup v2
		dir := filepath.Join(cgroupRoot, rel)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		have, _ := os.ReadFile(filepath.Join(dir, "cgroup.controllers"))
		if !slices.Contains(strings.Fields(string(have)), "cpu") {
			return fmt.Errorf("cgroup %s does not have the cpu controller: enable it in its parent's cgroup.subtree_control (systemd: Delegate=yes on the agent's unit)", dir)
		}
		return writeFiles(dir, map[string]string{"cpu.weight": strconv.Itoa(weight)})
	}
	dir := filepath.Join(cgroupRoot, "cpu", rel)
	if _, err := os.Stat(filepath.Join(cgroupRoot, "cpu")); err != nil {
		return fmt.Errorf("the cpu cgroup controller is not mounted at %s/cpu: %w", cgroupRoot, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return writeFiles(dir, map[string]string{"cpu.shares": strconv.FormatInt(cpuSharesOfWeight(weight), 10)})
}
