package control

import (
	"fmt"
	"maps"
	"slices"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/errdefs"
)

// withResources is g's spec with the CPU and memory of its app containers
// named in res changed (in-place resize). A name of no app container is
// refused, naming it; so is a change that does not fit the size the group
// was given: an instance keeps its size (and its price) for its life, so
// a resize beyond it needs a new instance. (Bounds are checked with the
// whole spec.)
func withResources(g *apiv1.ContainerGroup, res map[string]apiv1.ContainerResources) (apiv1.ContainerGroupSpec, error) {
	spec := g.Spec
	spec.Containers = slices.Clone(spec.Containers)
	for _, name := range slices.Sorted(maps.Keys(res)) {
		i := slices.IndexFunc(spec.Containers, func(c apiv1.Container) bool { return c.Name == name })
		if i < 0 {
			what := "the group has no container of that name"
			if slices.ContainsFunc(spec.InitContainers, func(c apiv1.Container) bool { return c.Name == name }) {
				what = "init containers are not resized"
			}
			return spec, fmt.Errorf("resources[%q]: %s: %w", name, what, errdefs.ErrInvalidArgument)
		}
		spec.Containers[i].CPU, spec.Containers[i].Memory = res[name].CPU, res[name].Memory
	}
	if g.Status.MilliCPU == 0 {
		return spec, nil // not placed: the size follows the spec
	}
	want := spec.ContainersSize()
	if want.MilliCPU > g.Status.MilliCPU || want.MemoryMiB > g.Status.MemoryMiB {
		return spec, fmt.Errorf("resources: the containers would ask for %v vCPU / %v GiB together, more than the instance's size, %v vCPU / %v GiB; "+
			"an instance is resized within its size only (a larger one needs a new instance): %w",
			want.VCPU(), want.GiB(), float64(g.Status.MilliCPU)/1000, float64(g.Status.MemoryMiB)/1024, errdefs.ErrInvalidArgument)
	}
	return spec, nil
}
