package control

import (
	"context"
	"fmt"
	"slices"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/imageref"
	"github.com/eci-dev/eci/internal/store"
)

// Image locality and cache matching at placement (docs/fast-start.md). A
// group may name an image cache that does not exist, or not as its
// tenant's: it matches nothing (a pod's eci-imc-id outlives its cache, and
// a well-formed id of another tenant's tells nothing: ids are random). A
// host that holds more of a group's images (by size) is preferred to any
// other that fits, as the kube-scheduler's ImageLocality plugin does, so
// that it starts without pulling; the tenant's cache the host held them
// from is named in the group's status and a SuccessfulHitImageCache event.

// loadImages reads what each host holds (images and data caches) and the
// image caches into st.
func (s *Service) loadImages(ctx context.Context, st *placementState) error {
	reports, _, _, err := s.himgs.List(ctx, store.ListOptions{})
	if err != nil {
		return err
	}
	st.images = hostImageSets(reports)
	data, _, _, err := s.hdata.List(ctx, store.ListOptions{})
	if err != nil {
		return err
	}
	st.data = hostDataSets(data)
	st.caches, _, _, err = s.imcs.List(ctx, store.ListOptions{})
	return err
}

// groupImages are the images of spec's containers (init and app), as
// containerd names them.
func groupImages(spec *apiv1.ContainerGroupSpec) []string {
	var out []string
	for _, list := range [][]apiv1.Container{spec.InitContainers, spec.Containers} {
		for _, c := range list {
			if n, err := imageref.Normal(c.Image); err == nil && !slices.Contains(out, n) {
				out = append(out, n)
			}
		}
	}
	return out
}

// matchCache is the tenant's cache host holds that best serves g: the one
// with most of g's images, then the largest, then the newest; only g's
// imageCacheId when it names one, only one with every image of g with
// imageCachePerfectMatch, none with disableImageCacheMatch. A cache counts
// on host when the host holds all its images.
func (st *placementState) matchCache(g *apiv1.ContainerGroup, host string) *apiv1.ImageCache {
	if g.Spec.DisableImageCacheMatch || pullsAlways(&g.Spec) {
		return nil
	}
	want := groupImages(&g.Spec)
	var best *apiv1.ImageCache
	bestN := 0
	for _, c := range st.caches {
		if c.Metadata.Tenant != g.Metadata.Tenant || (g.Spec.ImageCacheID != "" && c.Metadata.ID != g.Spec.ImageCacheID) {
			continue
		}
		if slices.ContainsFunc(c.Spec.Images, func(img string) bool { i, ok := st.images[host][img]; return !ok || !i.UsableBy(c.Metadata.Tenant) }) {
			continue // the host lacks one of its images (for this tenant)
		}
		n := 0
		for _, img := range want {
			if slices.Contains(c.Spec.Images, img) {
				n++
			}
		}
		if n == 0 || (g.Spec.ImageCachePerfectMatch && n < len(want)) {
			continue
		}
		if best == nil || n > bestN || (n == bestN && (c.Status.SizeBytes > best.Status.SizeBytes ||
			(c.Status.SizeBytes == best.Status.SizeBytes && c.Metadata.CreatedAt.After(best.Metadata.CreatedAt)))) {
			best, bestN = c, n
		}
	}
	return best
}

// pullsAlways: a container of spec pulls its image whatever the host
// holds (imagePullPolicy Always): the group starts from no cache.
func pullsAlways(spec *apiv1.ContainerGroupSpec) bool {
	for _, list := range [][]apiv1.Container{spec.InitContainers, spec.Containers} {
		for _, c := range list {
			if c.ImagePullPolicy == apiv1.PullAlways {
				return true
			}
		}
	}
	return false
}

// hitMessage is the event of a group that matched cache id (the words of
// the instance service's SuccessfulHitImageCache).
func hitMessage(id string) string {
	return fmt.Sprintf("Successfully hit image cache %s, eci will be scheduled with this image cache.", id)
}

// firstPlacementEvents are the events of a group placed for the first
// time, written with its placement: Scheduled, and SuccessfulHitImageCache
// when it matched a cache.
func (s *Service) firstPlacementEvents(placed *apiv1.ContainerGroup, msg string) ([]store.Op, error) {
	g := placed.Metadata
	put, err := s.events.PutOp(s.newEvent("ContainerGroup", g.ID, g.Tenant, "", apiv1.EventNormal, "Scheduled", msg, "server"))
	if err != nil {
		return nil, err
	}
	ops := []store.Op{put}
	if id := placed.Status.MatchedImageCache; id != "" {
		hit, err := s.events.PutOp(s.newEvent("ContainerGroup", g.ID, g.Tenant, "", apiv1.EventNormal, "SuccessfulHitImageCache", hitMessage(id), "server"))
		if err != nil {
			return nil, err
		}
		ops = append(ops, hit)
	}
	return ops, nil
}

// cacheHit notes a placed group's match (the cache's lastMatchedTime), and
// records the event of a group placed again.
func (s *Service) cacheHit(ctx context.Context, placed *apiv1.ContainerGroup, first bool) {
	id := placed.Status.MatchedImageCache
	if id == "" {
		return
	}
	s.matches.note(id, s.now())
	if !first {
		s.recordEvent(ctx, "ContainerGroup", placed.Metadata.ID, placed.Metadata.Tenant, apiv1.EventNormal, "SuccessfulHitImageCache", hitMessage(id), "server")
	}
}
