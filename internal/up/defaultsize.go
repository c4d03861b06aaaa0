package up

import (
	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/sizes"
	"github.com/eci-dev/eci/internal/vnode"
)

// fitDefault is how many pods that ask for no size should fit on the
// machine at the default size eci up chooses.
const fitDefault = 32

// defaultSize is the virtual node's size for pods that ask for none:
// --default-size when given, else the spec's 2 vCPU / 4 GiB halved (down
// to 0.25 vCPU / 0.5 GiB) until fitDefault such pods fit on this machine's
// allocatable. On a 2-core machine offered 4 times over that is 0.25-0.5Gi:
// 32 plain pods run, where 2 vCPU each would have let 4 run.
func defaultSize(flag string, alloc apiv1.Resources) (sizes.Size, error) {
	if flag != "" {
		return vnode.ParseDefaultSize(flag)
	}
	s := sizes.Default
	for s.MilliCPU > 250 && (s.MilliCPU*fitDefault > alloc.MilliCPU || s.MemoryMiB*fitDefault > alloc.MemoryMiB) {
		s = sizes.Size{MilliCPU: s.MilliCPU / 2, MemoryMiB: s.MemoryMiB / 2}
	}
	return s, nil
}
