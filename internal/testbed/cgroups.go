package testbed

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/eci-dev/eci/internal/poll"
)

const cgroup2Magic = 0x63677270

// cgroupMountScript returns shell commands that, run in a private mount namespace,
// put a fresh tmpfs on /sys/fs/cgroup and mount every enabled cgroup v1
// hierarchy under it, hugetlb included (this kind of machine has it enabled but
// not mounted, and without it runc cannot load container cgroups: stats read 0
// and OOM events are lost). On a cgroup v2 host it returns "" (nothing to do).
func cgroupMountScript() (string, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs("/sys/fs/cgroup", &st); err == nil && st.Type == cgroup2Magic {
		return "", nil
	}
	f, err := os.Open("/proc/cgroups")
	if err != nil {
		return "", fmt.Errorf("read cgroup controllers: %w", err)
	}
	defer f.Close()
	byHierarchy := map[string][]string{}
	var alone []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 4 || strings.HasPrefix(fields[0], "#") || fields[3] != "1" {
			continue
		}
		if fields[1] == "0" {
			alone = append(alone, fields[0])
		} else {
			byHierarchy[fields[1]] = append(byHierarchy[fields[1]], fields[0])
		}
	}
	var groups [][]string
	for _, g := range byHierarchy {
		sort.Strings(g)
		groups = append(groups, g)
	}
	for _, c := range alone {
		groups = append(groups, []string{c})
	}
	sort.Slice(groups, func(i, j int) bool { return groups[i][0] < groups[j][0] })

	var b strings.Builder
	b.WriteString("set -e\nmount -t tmpfs -o mode=755 cgroup_root /sys/fs/cgroup\n")
	for _, g := range groups {
		dir := strings.Join(g, ",")
		fmt.Fprintf(&b, "mkdir -p /sys/fs/cgroup/%s && mount -t cgroup -o %s cgroup /sys/fs/cgroup/%s\n", dir, dir, dir)
		if len(g) > 1 {
			for _, c := range g {
				fmt.Fprintf(&b, "ln -s %s /sys/fs/cgroup/%s\n", dir, c)
			}
		}
	}
	b.WriteString("mkdir -p /sys/fs/cgroup/systemd && mount -t cgroup -o none,name=systemd cgroup /sys/fs/cgroup/systemd\n")
	b.WriteString("mkdir -p /sys/fs/cgroup/unified && mount -t cgroup2 cgroup2 /sys/fs/cgroup/unified || true\n")
	return b.String(), nil
}

// cgroupScript runs script after the cgroup mounts, in a throw-away private
// mount namespace, so that it sees every hierarchy (hugetlb included).
func cgroupScript(script string) ([]byte, error) {
	mounts, err := cgroupMountScript()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c", mounts+"set +e\n"+script)
	return cmd.CombinedOutput()
}

// leftCgroups lists the cgroup directories named name (and below) in every hierarchy.
func leftCgroups(name string) ([]string, error) {
	out, err := cgroupScript(fmt.Sprintf(`for d in /sys/fs/cgroup/*/%s; do
  [ -L "$(dirname "$d")" ] && continue
  [ -d "$d" ] && find "$d" -type d
done; exit 0`, name))
	if err != nil {
		return nil, fmt.Errorf("list cgroups %s: %w: %s", name, err, out)
	}
	return strings.Fields(string(out)), nil
}

// removeCgroups removes the cgroups named name (and below) from every hierarchy,
// retrying while the tasks in them finish exiting.
func removeCgroups(name string) error {
	script := fmt.Sprintf(`for d in /sys/fs/cgroup/*/%s; do [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null; done
left=0; for d in /sys/fs/cgroup/*/%s; do [ -d "$d" ] && left=1 && echo "$d"; done; exit $left`, name, name)
	var out []byte
	if err := poll.Until(context.Background(), 10*time.Second, func() (err error) {
		out, err = cgroupScript(script)
		return err
	}); err != nil {
		return fmt.Errorf("cgroups still present (tasks still in them?): %s", strings.TrimSpace(string(out)))
	}
	return nil
}

// Shares of the bed's data plane (docs/fast-start.md "CPU priority"): the
// pods' cgroup parent holds the pods (runc's init joins its container's
// cgroup), and in its child "runtime" containerd with the shims it starts
// and the runc they run (they stay in containerd's cgroup); as a whole
// it weighs a quarter of one busy process of the control plane (the
// apiserver, etcd, the test's eci), as an operator gives containerd and
// `eci agent --groups-cpu-weight` a low weight on a host they share with
// the control path. While the CPU is idle the data plane gets it all.
const (
	dataPlaneShares = 256 // cgroup v1 cpu.shares
	dataPlaneWeight = 25  // cgroup v2 cpu.weight: the same by systemd's map
)

// runtimeCgroupScript returns shell commands that give the bed's cgroup
// parent its weight and move the shell (and so what it starts next:
// containerd) into the parent's "runtime" child: on cgroup v1 for the cpu
// controller only (the runtime's memory stays where it was); on v2 one
// move covers every controller.
func runtimeCgroupScript(parent string, v2 bool) string {
	if v2 {
		d := "/sys/fs/cgroup" + parent
		return fmt.Sprintf("mkdir -p %[1]s/runtime\necho +cpu > %[1]s/cgroup.subtree_control\necho %[2]d > %[1]s/cpu.weight\necho $$ > %[1]s/runtime/cgroup.procs\n", d, dataPlaneWeight)
	}
	d := "/sys/fs/cgroup/cpu" + parent
	return fmt.Sprintf("mkdir -p %[1]s/runtime\necho %[2]d > %[1]s/cpu.shares\necho $$ > %[1]s/runtime/cgroup.procs\n", d, dataPlaneShares)
}
