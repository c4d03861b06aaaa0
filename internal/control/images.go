package control

import (
	"fmt"
	"slices"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/errdefs"
)

// withImages is spec with the images of its containers (app or init)
// named in images changed; a name of no container is refused, naming it.
// (The image itself is checked with the whole spec.)
func withImages(spec apiv1.ContainerGroupSpec, images map[string]string) (apiv1.ContainerGroupSpec, error) {
	spec.Containers = slices.Clone(spec.Containers)
	spec.InitContainers = slices.Clone(spec.InitContainers)
	for name, image := range images {
		found := false
		for _, list := range [][]apiv1.Container{spec.Containers, spec.InitContainers} {
			for i := range list {
				if list[i].Name == name {
					list[i].Image, found = image, true
				}
			}
		}
		if !found {
			return spec, fmt.Errorf("images[%q]: the group has no container of that name: %w", name, errdefs.ErrInvalidArgument)
		}
	}
	return spec, nil
}
