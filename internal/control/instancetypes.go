package control

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/errdefs"
	"github.com/eci-dev/eci/internal/sizes"
)

// Named instance types (docs/spec.md section 4: `eci-instance-type`,
// spec.instanceType, and names among `eci-use-specs`): the operator names
// sizes, with GPUs or not (--instance-type NAME=VCPU,GIB[,GPUS]), and a
// group asks for one by name. The server turns a name into its size when
// the group is created (the name is kept in instanceType); the size is
// rounded up to the table as any size is.

// InstanceType is a named size.
type InstanceType struct {
	CPU    float64 `json:"cpu"`
	Memory float64 `json:"memory"`
	GPU    int     `json:"gpu,omitempty"`
}

// ParseInstanceType reads NAME=VCPU,GIB[,GPUS] (ecs.gn6i-c4g1.xlarge=4,16,1).
func ParseInstanceType(v string) (string, InstanceType, error) {
	name, figures, ok := strings.Cut(v, "=")
	parts := strings.Split(figures, ",")
	bad := fmt.Errorf("--instance-type %q: want NAME=VCPU,GIB[,GPUS], such as ecs.c6.large=2,4 or ecs.gn6i-c4g1.xlarge=4,16,1", v)
	if !ok || name == "" || len(name) > 64 || strings.ContainsAny(name, " ,=") || len(parts) < 2 || len(parts) > 3 {
		return "", InstanceType{}, bad
	}
	var t InstanceType
	var err1, err2, err3 error
	t.CPU, err1 = strconv.ParseFloat(parts[0], 64)
	t.Memory, err2 = strconv.ParseFloat(parts[1], 64)
	if len(parts) == 3 {
		t.GPU, err3 = strconv.Atoi(parts[2])
	}
	if err1 != nil || err2 != nil || err3 != nil || t.CPU <= 0 || t.Memory <= 0 || t.GPU < 0 {
		return "", InstanceType{}, bad
	}
	if _, err := sizes.Parse(name); err == nil {
		return "", InstanceType{}, fmt.Errorf("--instance-type %q: %q reads as a size; name a type otherwise", v, name)
	}
	if _, ok := sizes.Round(sizes.FromGiB(t.CPU, t.Memory)); !ok {
		return "", InstanceType{}, fmt.Errorf("--instance-type %q: larger than the largest size (64 vCPU, 512 GiB)", v)
	}
	return name, t, nil
}

// checkedNew is a new group g with its named instance types turned into
// sizes, validated.
func (s *Service) checkedNew(g *apiv1.ContainerGroup) (*apiv1.ContainerGroup, error) {
	spec, err := s.withInstanceTypes(g.Spec)
	if err != nil {
		return nil, err
	}
	g = &apiv1.ContainerGroup{Metadata: g.Metadata, Spec: spec}
	if len(spec.EphemeralContainers) > 0 {
		return nil, fmt.Errorf("spec.ephemeralContainers: added to a running group only (UpdateContainerGroup), as a pod's: %w", errdefs.ErrInvalidArgument)
	}
	if err := apiv1.ValidateContainerGroup(g); err != nil {
		return nil, fmt.Errorf("%w: %w", errdefs.ErrInvalidArgument, err)
	}
	return g, nil
}

// withInstanceTypes is spec with its instanceType, and the names of types
// among its specs, turned into sizes (and GPUs). A name that is neither a
// size nor a configured type is refused, naming the configured ones.
func (s *Service) withInstanceTypes(spec apiv1.ContainerGroupSpec) (apiv1.ContainerGroupSpec, error) {
	types := s.opts.InstanceTypes
	unknown := func(field, name string) error {
		known := "none are"
		if len(types) > 0 {
			known = "configured: " + strings.Join(slices.Sorted(maps.Keys(types)), ", ")
		}
		return fmt.Errorf("%s: %q is not a configured instance type (%s); or give a size such as 2-4Gi: %w", field, name, known, errdefs.ErrInvalidArgument)
	}
	if name := spec.InstanceType; name != "" {
		t, ok := types[name]
		switch {
		case !ok:
			return spec, unknown("spec.instanceType", name)
		case (spec.CPU != 0 || spec.Memory != 0) && (spec.CPU != t.CPU || spec.Memory != t.Memory):
			return spec, fmt.Errorf("spec.instanceType: %q is %v vCPU / %v GiB, and spec.cpu and spec.memory say %v / %v; give one of them: %w",
				name, t.CPU, t.Memory, spec.CPU, spec.Memory, errdefs.ErrInvalidArgument)
		}
		spec.CPU, spec.Memory, spec.GPU = t.CPU, t.Memory, max(spec.GPU, t.GPU)
	}
	asked := spec.Specs
	spec.Specs = slices.Clone(spec.Specs)
	gpus := map[int]bool{} // the GPUs of each entry: one count for all
	for i, sp := range spec.Specs {
		if _, err := sizes.Parse(sp); err == nil {
			gpus[0] = true
			continue
		}
		t, ok := types[sp]
		if !ok {
			return spec, unknown(fmt.Sprintf("spec.specs[%d]", i), sp)
		}
		spec.Specs[i] = sizes.FromGiB(t.CPU, t.Memory).String()
		spec.GPU, gpus[t.GPU] = max(spec.GPU, t.GPU), true
	}
	if len(gpus) > 1 {
		return spec, fmt.Errorf("spec.specs: %v names sizes with different GPU counts; allowed: entries of one GPU count (an instance's GPUs are the same whichever size it gets): %w", asked, errdefs.ErrInvalidArgument)
	}
	return spec, nil
}
