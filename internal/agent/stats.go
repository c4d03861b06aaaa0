package agent

import (
	"bufio"
	"context"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/httpapi"
)

// cpuSample is a group's cumulative CPU time at a moment, to turn the next
// sample into a rate.
type cpuSample struct {
	at    time.Time
	usage uint64
}

func (a *Agent) serveStats(w http.ResponseWriter, r *http.Request) {
	g, err := a.streamGroup(r)
	if err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	st, err := a.groupStats(r.Context(), g)
	if err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, st)
}

// groupStats samples a running group: CPU and memory of its cgroup (the sum
// of its containers' where the agent keeps no cgroups), network of its
// sandbox, and the ephemeral storage it writes on the host.
func (a *Agent) groupStats(ctx context.Context, g *apiv1.ContainerGroup) (*apiv1.GroupStats, error) {
	id := g.Metadata.ID
	sb, err := a.readySandbox(ctx, id)
	if err != nil {
		return nil, err
	}
	cs, err := a.cfg.Runtime.ListContainerStats(ctx, &runtimeapi.ContainerStatsFilter{PodSandboxId: sb})
	if err != nil {
		return nil, err
	}
	st := &apiv1.GroupStats{Time: time.Now().UTC()}
	var sumCPU, sumNano, sumMem, sumWS uint64
	for _, c := range cs {
		name := c.GetAttributes().GetLabels()[LabelContainer]
		if c.GetAttributes().GetLabels()[LabelInit] == "true" {
			continue
		}
		ct := apiv1.ContainerStat{
			Name: name,
			CPU: apiv1.CPUStats{UsageCoreNanoSeconds: c.GetCpu().GetUsageCoreNanoSeconds().GetValue(),
				UsageNanoCores: c.GetCpu().GetUsageNanoCores().GetValue()},
			Memory: apiv1.MemoryStats{UsageBytes: c.GetMemory().GetUsageBytes().GetValue(),
				WorkingSetBytes: c.GetMemory().GetWorkingSetBytes().GetValue(), RSSBytes: c.GetMemory().GetRssBytes().GetValue()},
			WritableLayer: apiv1.FSStats{UsedBytes: c.GetWritableLayer().GetUsedBytes().GetValue()},
			Logs:          apiv1.FSStats{UsedBytes: dirUsage(filepath.Join(a.cfg.LogDir, id, name))},
		}
		sumCPU += ct.CPU.UsageCoreNanoSeconds
		sumNano += ct.CPU.UsageNanoCores
		sumMem += ct.Memory.UsageBytes
		sumWS += ct.Memory.WorkingSetBytes
		st.Containers = append(st.Containers, ct)
	}
	st.CPU = apiv1.CPUStats{UsageCoreNanoSeconds: sumCPU, UsageNanoCores: sumNano}
	st.Memory = apiv1.MemoryStats{UsageBytes: sumMem, WorkingSetBytes: sumWS}
	if !a.cfg.NoCgroups {
		if cpu, mem, ok := cgroupUsage(a.groupCgroup(id)); ok {
			st.CPU = apiv1.CPUStats{UsageCoreNanoSeconds: cpu, UsageNanoCores: a.cpuRate(id, cpu)}
			st.Memory = mem
		}
	}
	if ps, err := a.cfg.Runtime.PodSandboxStats(ctx, sb); err == nil {
		if n := ps.GetLinux().GetNetwork().GetDefaultInterface(); n != nil {
			st.Network = apiv1.NetworkStats{Interface: n.Name, RxBytes: n.GetRxBytes().GetValue(), TxBytes: n.GetTxBytes().GetValue(),
				RxErrors: n.GetRxErrors().GetValue(), TxErrors: n.GetTxErrors().GetValue()}
		}
	}
	st.EphemeralStorage = apiv1.FSStats{UsedBytes: a.ephemeralUsed(id, cs), CapacityBytes: a.ephemeralBound(g)}
	return st, nil
}

// ephemeralBound is what a group may write on the host: the base every
// instance has (30 GiB) plus its extraEphemeralStorage.
func (a *Agent) ephemeralBound(g *apiv1.ContainerGroup) uint64 {
	return a.cfg.EphemeralStorageBase + uint64(g.Spec.ExtraEphemeralStorage)<<30
}

// cpuRate turns cumulative CPU time into nanocores since the last sample.
func (a *Agent) cpuRate(id string, usage uint64) uint64 {
	now := time.Now()
	var prev *cpuSample
	a.states.update(id, func(s *groupState) { prev, s.cpu = s.cpu, &cpuSample{at: now, usage: usage} })
	if prev == nil || usage < prev.usage || now.Sub(prev.at) <= 0 {
		return 0
	}
	return uint64(float64(usage-prev.usage) / now.Sub(prev.at).Seconds())
}

// cgroupUsage reads the CPU time and memory of cgroup rel (v1 or v2).
func cgroupUsage(rel string) (cpu uint64, mem apiv1.MemoryStats, ok bool) {
	if v, err := readUint(filepath.Join(cgroupRoot, "cpuacct", rel, "cpuacct.usage")); err == nil {
		cpu = v
		mem.UsageBytes, _ = readUint(filepath.Join(cgroupRoot, "memory", rel, "memory.usage_in_bytes"))
		stat := readKV(filepath.Join(cgroupRoot, "memory", rel, "memory.stat"))
		mem.RSSBytes = stat["total_rss"]
		mem.WorkingSetBytes = sub(mem.UsageBytes, stat["total_inactive_file"])
		return cpu, mem, true
	}
	stat := readKV(filepath.Join(cgroupRoot, rel, "cpu.stat"))
	usec, found := stat["usage_usec"]
	if !found {
		return 0, mem, false
	}
	mem.UsageBytes, _ = readUint(filepath.Join(cgroupRoot, rel, "memory.current"))
	ms := readKV(filepath.Join(cgroupRoot, rel, "memory.stat"))
	mem.RSSBytes = ms["anon"]
	mem.WorkingSetBytes = sub(mem.UsageBytes, ms["inactive_file"])
	return usec * 1000, mem, true
}

func sub(a, b uint64) uint64 {
	if b > a {
		return 0
	}
	return a - b
}

func readUint(path string) (uint64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(strings.TrimSpace(string(data)), 10, 64)
}

// readKV reads a "key value" per line file (memory.stat, cpu.stat).
func readKV(path string) map[string]uint64 {
	out := map[string]uint64{}
	f, err := os.Open(path)
	if err != nil {
		return out
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if n, err := strconv.ParseUint(v, 10, 64); ok && err == nil {
			out[k] = n
		}
	}
	return out
}

// dirUsage is the disk space of the files under dir, on dir's own file
// system (a memory-medium emptyDir mounted inside is not disk).
func dirUsage(dir string, skip ...string) uint64 {
	var root os.FileInfo
	var total uint64
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() && slices.Contains(skip, path) {
			return filepath.SkipDir
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		if root == nil {
			root = info
		} else if d.IsDir() && !sameDevice(root, info) {
			return filepath.SkipDir
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			total += uint64(st.Blocks) * 512
		}
		return nil
	})
	return total
}

func sameDevice(a, b os.FileInfo) bool {
	sa, ok1 := a.Sys().(*syscall.Stat_t)
	sb, ok2 := b.Sys().(*syscall.Stat_t)
	return ok1 && ok2 && sa.Dev == sb.Dev
}
