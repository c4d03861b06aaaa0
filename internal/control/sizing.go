package control

import (
	"fmt"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/sizes"
)

// Size derivation is the service's, not the wire types': api/v1 validates
// that a size can be given (it reads the size table for that), control
// decides which sizes a group is tried at.

// sizeCandidates returns the sizes to try for a valid group, in order, each
// rounded up to a supported size: the specs list; else cpu and memory; else what
// the containers ask for; else the default 2 vCPU / 4 GiB.
func sizeCandidates(s *apiv1.ContainerGroupSpec) ([]sizes.Size, error) {
	var reqs []sizes.Size
	switch {
	case len(s.Specs) > 0:
		for _, sp := range s.Specs {
			size, err := sizes.Parse(sp)
			if err != nil {
				return nil, err
			}
			reqs = append(reqs, size)
		}
	case s.CPU > 0:
		reqs = append(reqs, sizes.FromGiB(s.CPU, s.Memory))
	default:
		want := s.ContainersSize()
		if want.MilliCPU == 0 && want.MemoryMiB == 0 {
			want = sizes.Default
		}
		reqs = append(reqs, want)
	}
	out := make([]sizes.Size, 0, len(reqs))
	seen := map[sizes.Size]bool{}
	for _, r := range reqs {
		size, ok := sizes.Round(r)
		if !ok {
			return nil, fmt.Errorf("%s is larger than any supported size", r)
		}
		if !seen[size] {
			seen[size] = true
			out = append(out, size)
		}
	}
	return out, nil
}
