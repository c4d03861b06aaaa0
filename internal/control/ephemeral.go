package control

import (
	"fmt"
	"reflect"
	"slices"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/errdefs"
)

// withEphemeral is spec with the ephemeral containers of add appended
// (kubectl debug). One given again as it is changes nothing; one of an
// existing name that differs is refused: an ephemeral container is never
// changed or removed. (The containers are checked with the whole spec.)
func withEphemeral(spec apiv1.ContainerGroupSpec, add []apiv1.EphemeralContainer) (apiv1.ContainerGroupSpec, error) {
	spec.EphemeralContainers = slices.Clone(spec.EphemeralContainers)
	for _, c := range add {
		i := slices.IndexFunc(spec.EphemeralContainers, func(e apiv1.EphemeralContainer) bool { return e.Name == c.Name })
		switch {
		case i < 0:
			spec.EphemeralContainers = append(spec.EphemeralContainers, c)
		case !reflect.DeepEqual(spec.EphemeralContainers[i], c):
			return spec, fmt.Errorf("ephemeralContainers[%q]: the group has it already; ephemeral containers are not changed or removed: %w", c.Name, errdefs.ErrInvalidArgument)
		}
	}
	return spec, nil
}
