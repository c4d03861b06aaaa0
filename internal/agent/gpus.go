package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"sigs.k8s.io/yaml"

	apiv1 "github.com/eci-dev/eci/api/v1"
)

// A host's GPUs are CDI devices (the Container Device Interface, which
// containerd applies: device nodes, their cgroup rules, mounts, env),
// named kind=name (nvidia.com/gpu=0) as the vendor's tool writes them into
// the runtime's CDI spec directories (nvidia-ctk cdi generate). A group
// asking for N GPUs (spec.gpu; a pod's nvidia.com/gpu limits) gets N that
// no other live group holds, written on its sandbox (LabelGPUs) so that a
// restarted agent knows them; each container gets its own count of them,
// in the group's order (each init container from the first: they run one
// at a time). A container asks the runtime for nothing else: a tenant
// names no device.

// LabelGPUs holds the CDI devices a group's sandbox was given.
const LabelGPUs = "eci.dev/gpus"

// cdiSpec is what DiscoverGPUs reads of a CDI spec file.
type cdiSpec struct {
	Kind    string `json:"kind"`
	Devices []struct {
		Name           string `json:"name"`
		ContainerEdits struct {
			DeviceNodes []struct {
				Path string `json:"path"`
			} `json:"deviceNodes"`
		} `json:"containerEdits"`
	} `json:"devices"`
}

// DiscoverGPUs lists the devices of kind (nvidia.com/gpu) in the CDI spec
// files (.yaml, .yml, .json) of dirs, as kind=name, sorted; the "all"
// device a vendor's spec also has is no GPU of its own, and a device whose
// device nodes are all among those of one listed before it, or the other
// way round, is the same GPU under another name (its UUID, a MIG slice of
// it): it is left out, so that no two groups get one GPU (a node every GPU
// lists beside its own, such as /dev/kfd, does not make them one).
// Missing dirs hold none.
func DiscoverGPUs(dirs []string, kind string) ([]string, error) {
	nodes := map[string][]string{} // device nodes by kind=name
	var out []string
	for _, dir := range dirs {
		entries, err := os.ReadDir(dir)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("CDI spec dir: %w", err)
		}
		for _, e := range entries {
			if ext := filepath.Ext(e.Name()); e.IsDir() || (ext != ".yaml" && ext != ".yml" && ext != ".json") {
				continue
			}
			raw, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				return nil, fmt.Errorf("CDI spec: %w", err)
			}
			var spec cdiSpec
			if err := yaml.Unmarshal(raw, &spec); err != nil {
				return nil, fmt.Errorf("CDI spec %s: %w", filepath.Join(dir, e.Name()), err)
			}
			for _, d := range spec.Devices {
				if spec.Kind == kind && d.Name != "" && d.Name != "all" && !slices.Contains(out, kind+"="+d.Name) {
					out = append(out, kind+"="+d.Name)
					for _, n := range d.ContainerEdits.DeviceNodes {
						nodes[kind+"="+d.Name] = append(nodes[kind+"="+d.Name], n.Path)
					}
				}
			}
		}
	}
	slices.Sort(out)
	var kept [][]string
	return slices.DeleteFunc(out, func(name string) bool {
		mine := nodes[name]
		for _, k := range kept {
			if len(mine) > 0 && len(k) > 0 && (subset(mine, k) || subset(k, mine)) {
				return true
			}
		}
		kept = append(kept, mine)
		return false
	}), nil
}

// subset: every device node of a is one of b's.
func subset(a, b []string) bool {
	for _, n := range a {
		if !slices.Contains(b, n) {
			return false
		}
	}
	return true
}

// UseGPUs gives the host devices (DiscoverGPUs) as its GPUs: its capacity
// and allocatable count them.
func (c *Config) UseGPUs(devices []string) {
	c.GPUDevices = devices
	c.Host.Spec.Capacity.GPU, c.Host.Spec.Allocatable.GPU = len(devices), len(devices)
}

// assignGPUs writes on sbCfg the GPUs g's new sandbox gets: g.Spec.GPU of
// the host's that no other sandbox holds (until it is removed). The caller creates the
// sandbox, then calls unlock: no two groups take the same device.
func (a *Agent) assignGPUs(ctx context.Context, g *apiv1.ContainerGroup, sbCfg *runtimeapi.PodSandboxConfig) (unlock func(), err error) {
	if g.Spec.GPU == 0 {
		return func() {}, nil
	}
	a.gpuMu.Lock()
	sbs, err := a.cfg.Runtime.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{LabelManaged: "true"}})
	if err != nil {
		a.gpuMu.Unlock()
		return nil, fmt.Errorf("list sandboxes: %w", err)
	}
	held := map[string]bool{}
	for _, sb := range sbs {
		// Every sandbox holds its GPUs until it is removed (a stopped
		// one's containers may still be stopping).
		if sb.Labels[LabelGroup] != g.Metadata.ID {
			for _, d := range strings.Split(sb.Labels[LabelGPUs], ",") {
				held[d] = true
			}
		}
	}
	var mine []string
	for _, d := range a.cfg.GPUDevices {
		if !held[d] && len(mine) < g.Spec.GPU {
			mine = append(mine, d)
		}
	}
	if len(mine) < g.Spec.GPU {
		a.gpuMu.Unlock()
		return nil, fmt.Errorf("the group asks for %d GPUs; %d of the host's %d are free", g.Spec.GPU, len(mine), len(a.cfg.GPUDevices))
	}
	sbCfg.Labels[LabelGPUs] = strings.Join(mine, ",")
	return a.gpuMu.Unlock, nil
}

// gpusOf are the CDI devices of container c of g, from devices, its
// sandbox's (LabelGPUs).
func gpusOf(g *apiv1.ContainerGroup, c apiv1.Container, init bool, devices string) []*runtimeapi.CDIDevice {
	if c.GPU == 0 || devices == "" {
		return nil
	}
	all := strings.Split(devices, ",")
	first := 0
	if !init {
		for _, o := range g.Spec.Containers {
			if o.Name == c.Name {
				break
			}
			first += o.GPU
		}
	}
	var out []*runtimeapi.CDIDevice
	for _, d := range all[min(first, len(all)):min(first+c.GPU, len(all))] {
		out = append(out, &runtimeapi.CDIDevice{Name: d})
	}
	return out
}
