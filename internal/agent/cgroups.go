package agent

import (
	"fmt"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cgroupRoot is where cgroup hierarchies are mounted.
const cgroupRoot = "/sys/fs/cgroup"

func (a *Agent) limitCgroup(g *apiv1.ContainerGroup) error {
	if a.cfg.NoCgroups {
		return nil
	}
	return limitCgroup(a.cgroupOf(g.Metadata.ID), g.Status.MilliCPU, g.Status.MemoryMiB, a.cfg.PidsLimit)
}

// DefaultPidsLimit is the processes and threads a group may have together
// unless the operator says otherwise (docs/security.md: a host's
// kernel.pid_max must leave room for its groups' limits).
const DefaultPidsLimit = 2048

func (a *Agent) removeCgroup(id string) error {
	if a.cfg.NoCgroups {
		return nil
	}
	if err := removeCgroup(a.groupCgroup(id)); err != nil {
		return err
	}
	a.pool.forget(id) // its sandbox was removed before (warmclaim.go)
	return nil
}

// removeCgroup removes the cgroup a group's sandbox and containers lived under,
// in every hierarchy this agent sees (cgroup v1: one per controller; v2: one).
// The runtime removes the containers' own cgroups, not their parent.
func removeCgroup(rel string) error {
	var dirs []string
	if entries, err := os.ReadDir(cgroupRoot); err == nil {
		for _, e := range entries {
			if e.IsDir() && e.Type()&fs.ModeSymlink == 0 {
				dirs = append(dirs, filepath.Join(cgroupRoot, e.Name(), rel))
			}
		}
	}
	dirs = append(dirs, filepath.Join(cgroupRoot, rel)) // cgroup v2
	var last error
	for attempt := 0; attempt < 50; attempt++ {
		last = nil
		for _, d := range dirs {
			if err := rmdirTree(d); err != nil {
				last = err
			}
		}
		if last == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond) // tasks still exiting
	}
	return fmt.Errorf("remove cgroup %s: %w", rel, last)
}

// rmdirTree removes a cgroup directory and its children, deepest first
// (cgroup directories are removed with rmdir, never by deleting files).
func rmdirTree(root string) error {
	if _, err := os.Stat(root); os.IsNotExist(err) {
		return nil
	}
	var dirs []string
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
	for _, d := range dirs {
		if err := os.Remove(d); err != nil && !os.IsNotExist(err) {
			return err
		}
	}
	return nil
}

// limitCgroup creates the group's cgroup with its size as limits, before the
// runtime puts the sandbox and containers under it: memory (limit), cpu
// (CFS quota over a 100 ms period) and pids (processes and threads, unless
// pids < 0), on cgroup v1 or v2. Other hierarchies are created by the
// runtime as needed. A host without the pids controller is refused: its
// groups could fork until the host has no process left.
func limitCgroup(rel string, milliCPU, memoryMiB, pids int64) error {
	if milliCPU <= 0 || memoryMiB <= 0 {
		return nil
	}
	quota := strconv.FormatInt(milliCPU*100, 10)
	mem := strconv.FormatInt(memoryMiB*1024*1024, 10)
	var st syscall.Statfs_t
	if err := syscall.Statfs(cgroupRoot, &st); err == nil && st.Type == 0x63677270 { // cgroup v2
		dir := filepath.Join(cgroupRoot, rel)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		files := map[string]string{"memory.max": mem, "cpu.max": quota + " 100000"}
		if pids > 0 {
			files["pids.max"] = strconv.FormatInt(pids, 10)
		}
		return writeFiles(dir, files)
	}
	hierarchies := map[string]map[string]string{
		"memory": {"memory.limit_in_bytes": mem},
		"cpu":    {"cpu.cfs_period_us": "100000", "cpu.cfs_quota_us": quota},
	}
	if pids > 0 {
		hierarchies["pids"] = map[string]string{"pids.max": strconv.FormatInt(pids, 10)}
		if _, err := os.Stat(filepath.Join(cgroupRoot, "pids")); err != nil {
			return fmt.Errorf("the pids cgroup controller is not mounted at %s/pids: a group's processes could not be bounded", cgroupRoot)
		}
	}
	for hierarchy, files := range hierarchies {
		dir := filepath.Join(cgroupRoot, hierarchy, rel)
		if _, err := os.Stat(filepath.Join(cgroupRoot, hierarchy)); err != nil {
			continue // not mounted here
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		if err := writeFiles(dir, files); err != nil {
			return err
		}
	}
	return nil
}

func writeFiles(dir string, files map[string]string) error {
	// Period before quota (v1 checks the quota against the current period).
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(files[n]), 0o644); err != nil {
			return fmt.Errorf("cgroup %s: %w", filepath.Join(dir, n), err)
		}
	}
	return nil
}

// cgroupPID is the first process of cgroup rel (cgroup v2, or v1's pids,
// memory or cpu hierarchy), in the agent's pid namespace.
func cgroupPID(rel string) (int, error) {
	var last error
	for _, dir := range []string{cgroupRoot, filepath.Join(cgroupRoot, "pids"), filepath.Join(cgroupRoot, "memory"), filepath.Join(cgroupRoot, "cpu")} {
		data, err := os.ReadFile(filepath.Join(dir, rel, "cgroup.procs"))
		if err != nil {
			last = err
			continue
		}
		for _, f := range strings.Fields(string(data)) {
			if pid, err := strconv.Atoi(f); err == nil && pid > 0 {
				return pid, nil
			}
		}
		last = fmt.Errorf("cgroup %s has no process", rel)
	}
	return 0, last
}
