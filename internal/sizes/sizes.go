// Package sizes holds the table of instance sizes (vCPU and memory pairs) the
// service sells, rounds a request up to the smallest size that holds it, and
// parses and prints sizes in the forms users write them ("2-4Gi", "0.5-1Gi") and
// the form written back to pods ("2.0-4.0Gi").
//
// Quantities are integers: vCPU in millicores, memory in MiB, so that rounding
// and comparison never meet a float.
package sizes

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Size is one instance size.
type Size struct {
	MilliCPU  int64 `json:"milliCPU"`
	MemoryMiB int64 `json:"memoryMiB"`
}

// Default is the size of a group that asks for nothing: 2 vCPU, 4 GiB.
var Default = Size{MilliCPU: 2000, MemoryMiB: 4096}

// MaxMilliCPU is the largest vCPU count one instance may have (64).
const MaxMilliCPU = 64000

// table is the supported sizes, vCPU -> GiB list (docs/spec.md section 4).
var table = map[float64][]float64{
	0.25: {0.5, 1},
	0.5:  {1, 2},
	1:    {2, 4, 8},
	2:    {1, 2, 4, 8, 16},
	4:    {2, 4, 8, 16, 32},
	8:    {4, 8, 16, 32, 64},
	12:   {12, 24, 48, 96},
	16:   {16, 32, 64, 128},
	24:   {24, 48, 96, 192},
	32:   {32, 64, 128, 256},
	52:   {96, 192, 384},
	64:   {128, 256, 512},
}

// Supported lists every size, ordered by vCPU then memory: the order in which
// Round looks for the smallest size that fits.
var Supported = func() []Size {
	var out []Size
	for cpu, mems := range table {
		for _, m := range mems {
			out = append(out, Size{MilliCPU: int64(cpu * 1000), MemoryMiB: int64(m * 1024)})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].MilliCPU != out[j].MilliCPU {
			return out[i].MilliCPU < out[j].MilliCPU
		}
		return out[i].MemoryMiB < out[j].MemoryMiB
	})
	return out
}()

// Round returns the smallest supported size whose vCPU and memory are both at
// least the request's (7 vCPU / 13 GiB becomes 8 / 16). ok is false when no
// size is that large.
func Round(req Size) (Size, bool) {
	for _, s := range Supported {
		if s.MilliCPU >= req.MilliCPU && s.MemoryMiB >= req.MemoryMiB {
			return s, true
		}
	}
	return Size{}, false
}

// IsSupported tells whether s is exactly one of the supported sizes.
func IsSupported(s Size) bool {
	for _, t := range Supported {
		if t == s {
			return true
		}
	}
	return false
}

// String prints the form written back to pods in k8s.aliyun.com/eci-instance-spec:
// vCPU and GiB with at least one decimal, "2.0-4.0Gi", "0.25-0.5Gi".
func (s Size) String() string {
	return decimal(s.MilliCPU, 1000) + "-" + decimal(s.MemoryMiB, 1024) + "Gi"
}

// VCPU is the vCPU count as a float, for prices and display.
func (s Size) VCPU() float64 { return float64(s.MilliCPU) / 1000 }

// GiB is the memory as a float, for prices and display.
func (s Size) GiB() float64 { return float64(s.MemoryMiB) / 1024 }

func decimal(v, unit int64) string {
	f := strconv.FormatFloat(float64(v)/float64(unit), 'f', -1, 64)
	if !strings.Contains(f, ".") {
		f += ".0"
	}
	return f
}

// Parse reads "<cpu>-<mem>Gi" ("2-4Gi", "0.5-1Gi", "2.0-4.0Gi", also "2-4" and
// "2-4G"): the forms of k8s.aliyun.com/eci-use-specs entries.
func Parse(s string) (Size, error) {
	cpuPart, memPart, ok := strings.Cut(strings.TrimSpace(s), "-")
	if !ok {
		return Size{}, fmt.Errorf("%q is not a size: want <vCPU>-<memory>Gi, for example 2-4Gi", s)
	}
	memPart = strings.TrimSuffix(strings.TrimSuffix(memPart, "Gi"), "G")
	cpu, err := strconv.ParseFloat(cpuPart, 64)
	if err != nil || cpu <= 0 {
		return Size{}, fmt.Errorf("%q: vCPU %q is not a positive number; want <vCPU>-<memory>Gi, for example 2-4Gi", s, cpuPart)
	}
	mem, err := strconv.ParseFloat(memPart, 64)
	if err != nil || mem <= 0 {
		return Size{}, fmt.Errorf("%q: memory %q is not a positive number of GiB; want <vCPU>-<memory>Gi, for example 2-4Gi", s, memPart)
	}
	return Size{MilliCPU: int64(cpu*1000 + 0.5), MemoryMiB: int64(mem*1024 + 0.5)}, nil
}

// FromGiB is the size of vCPU and GiB figures as the API gives them.
func FromGiB(vcpu, memGiB float64) Size {
	return Size{MilliCPU: int64(vcpu*1000 + 0.5), MemoryMiB: int64(memGiB*1024 + 0.5)}
}

// Together is what containers ask for together, as Kubernetes counts a
// pod's request: the sum over the containers, or the largest init container
// if that is more (init containers run one at a time, before the others),
// per dimension.
func Together(containers, inits []Size) Size {
	var sum, maxInit Size
	for _, c := range containers {
		sum.MilliCPU += c.MilliCPU
		sum.MemoryMiB += c.MemoryMiB
	}
	for _, c := range inits {
		maxInit.MilliCPU = max(maxInit.MilliCPU, c.MilliCPU)
		maxInit.MemoryMiB = max(maxInit.MemoryMiB, c.MemoryMiB)
	}
	return Size{MilliCPU: max(sum.MilliCPU, maxInit.MilliCPU), MemoryMiB: max(sum.MemoryMiB, maxInit.MemoryMiB)}
}
