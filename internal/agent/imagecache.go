package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"time"

	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/imageref"
	"github.com/eci-dev/eci/internal/log"
)

// The host's part of the image caches (api/v1 imagecache.go): every
// ImageCacheInterval the agent asks the server which caches the host
// keeps, pulls their missing images one at a time (a background task: the
// groups' own pulls go on beside it), removes the images it pulled for
// caches that are gone (never one a container is made of), and reports
// the images the host holds, which the placer and the caches' status
// read. A cache pulls no further than its imageCacheSize, and none pulls
// while the image filesystem has less than ImageCacheMinFreePercent free.

// cachePulls are the images the agent pulled for caches (StateDir
// image-caches.json), the only ones it removes.
type cachePulls struct {
	Pulled []string `json:"pulled"`
	// Sizes are the caches' images' sizes last seen held: a cache
	// dropped for ImageCacheBytes still counts its images' size.
	Sizes map[string]uint64 `json:"sizes,omitempty"`
}

func (a *Agent) cachePullsFile() string { return filepath.Join(a.cfg.StateDir, "image-caches.json") }

func (a *Agent) loadCachePulls() cachePulls {
	var cp cachePulls
	if data, err := os.ReadFile(a.cachePullsFile()); err == nil {
		_ = json.Unmarshal(data, &cp)
	}
	return cp
}

func (a *Agent) saveCachePulls(cp cachePulls) error {
	slices.Sort(cp.Pulled)
	cp.Pulled = slices.Compact(cp.Pulled)
	data, err := json.Marshal(cp)
	if err != nil {
		return err
	}
	tmp := a.cachePullsFile() + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, a.cachePullsFile())
}

// refresh keeps the sizes of the caches' images held, forgets those of
// images no cache keeps, and drops from Pulled what someone else removed
// (pulled again, it is not the caches' to remove); it tells whether cp
// changed.
func (cp *cachePulls) refresh(caches []apiv1.ImageCache, held map[string]uint64) bool {
	if cp.Sizes == nil {
		cp.Sizes = map[string]uint64{}
	}
	n := len(cp.Pulled)
	cp.Pulled = slices.DeleteFunc(cp.Pulled, func(img string) bool { _, ok := held[img]; return !ok })
	changed, wanted := len(cp.Pulled) != n, map[string]bool{}
	for _, c := range caches {
		for _, img := range c.Spec.Images {
			wanted[img] = true
			if n, ok := held[img]; ok && cp.Sizes[img] != n {
				cp.Sizes[img], changed = n, true
			}
		}
	}
	for img := range cp.Sizes {
		if !wanted[img] {
			delete(cp.Sizes, img)
			changed = true
		}
	}
	return changed
}

// keepImageCaches keeps the host's caches until ctx ends; it waits while
// the host is fenced.
func (a *Agent) keepImageCaches(ctx context.Context) {
	ctx = log.With(ctx, "part", "image-caches")
	t := time.NewTicker(a.cfg.ImageCacheInterval)
	defer t.Stop()
	var last *apiv1.HostImages
	for ctx.Err() == nil {
		if !a.lease.isFenced() {
			rep, err := a.syncImageCaches(ctx)
			if err == nil && (last == nil || !reflect.DeepEqual(*last, rep)) {
				if err = a.cfg.Client.ReportHostImages(ctx, a.name, rep); err == nil {
					last = &rep
				}
			}
			if err != nil && ctx.Err() == nil {
				log.G(ctx).Warn("image caches", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// syncImageCaches pulls and prunes the host's caches and returns what the
// host holds.
func (a *Agent) syncImageCaches(ctx context.Context) (apiv1.HostImages, error) {
	caches, err := a.cfg.Client.HostImageCaches(ctx, a.name)
	if err != nil {
		return apiv1.HostImages{}, fmt.Errorf("read the host's image caches: %w", err)
	}
	sort.Slice(caches, func(i, j int) bool { return caches[i].Metadata.ID < caches[j].Metadata.ID })
	held, err := a.heldImages(ctx)
	if err != nil {
		return apiv1.HostImages{}, err
	}
	cp := a.loadCachePulls()
	if cp.refresh(caches, held) {
		if err := a.saveCachePulls(cp); err != nil {
			return apiv1.HostImages{}, err
		}
	}
	var failed []apiv1.ImagePullFailure
	var kept []apiv1.ImageCache
	taken := map[string]bool{} // images counted against ImageCacheBytes
	for _, i := range byRecency(caches) {
		c := &caches[i]
		if a.overBudget(c, cp.Sizes, taken) {
			for _, img := range c.Spec.Images {
				failed = append(failed, apiv1.ImagePullFailure{Cache: c.Metadata.ID, Image: img,
					Message: fmt.Sprintf("not kept on this host: the caches matched more recently take its %d GiB of image caches", a.cfg.ImageCacheBytes>>30)})
			}
			continue
		}
		kept = append(kept, *c)
		f, pulled := a.pullCache(ctx, c, held)
		failed = append(failed, f...)
		if len(pulled) > 0 {
			cp.Pulled = append(cp.Pulled, pulled...)
			if err := a.saveCachePulls(cp); err != nil {
				return apiv1.HostImages{}, err
			}
			if held, err = a.heldImages(ctx); err != nil {
				return apiv1.HostImages{}, err
			}
		}
	}
	if err := a.pruneCaches(ctx, kept, &cp); err != nil {
		return apiv1.HostImages{}, err
	}
	images, err := a.cfg.Runtime.ListImages(ctx, nil)
	if err != nil {
		return apiv1.HostImages{}, fmt.Errorf("list images: %w", err)
	}
	rep := apiv1.HostImages{Images: []apiv1.HostImage{}, Failed: failed}
	for _, img := range images {
		refs := append(slices.Clone(img.RepoTags), img.RepoDigests...)
		if len(refs) > 0 && len(rep.Images) < apiv1.MaxHostImages {
			rep.Images = append(rep.Images, apiv1.HostImage{Refs: refs[:min(len(refs), 32)], SizeBytes: int64(img.Size)})
		}
	}
	sort.Slice(rep.Images, func(i, j int) bool { return rep.Images[i].Refs[0] < rep.Images[j].Refs[0] })
	return rep, nil
}

// byRecency are the indexes of caches, the most recently matched (or
// made) first: the order the host keeps them in within ImageCacheBytes.
func byRecency(caches []apiv1.ImageCache) []int {
	at := func(c *apiv1.ImageCache) time.Time {
		if t := c.Status.LastMatchedTime; t != nil && t.After(c.Metadata.CreatedAt) {
			return *t
		}
		return c.Metadata.CreatedAt
	}
	idx := make([]int, len(caches))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(i, j int) bool { return at(&caches[idx[i]]).After(at(&caches[idx[j]])) })
	return idx
}

// overBudget tells whether cache c's images, with those of the caches kept
// before it (taken), would take more than ImageCacheBytes by their sizes
// last seen; if not, they are counted in taken. An image never held yet
// counts once pulled (the next pass).
func (a *Agent) overBudget(c *apiv1.ImageCache, sizes map[string]uint64, taken map[string]bool) bool {
	if a.cfg.ImageCacheBytes == 0 {
		return false
	}
	var total uint64
	for img := range taken {
		total += sizes[img]
	}
	for _, img := range c.Spec.Images {
		if !taken[img] {
			total += sizes[img]
		}
	}
	if total > a.cfg.ImageCacheBytes {
		return true
	}
	for _, img := range c.Spec.Images {
		taken[img] = true
	}
	return false
}

// heldImages are the images the runtime holds, by name (as containerd
// writes them), with their size.
func (a *Agent) heldImages(ctx context.Context) (map[string]uint64, error) {
	images, err := a.cfg.Runtime.ListImages(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	out := map[string]uint64{}
	for _, img := range images {
		for _, ref := range append(slices.Clone(img.RepoTags), img.RepoDigests...) {
			if n, err := imageref.Normal(ref); err == nil {
				out[n] = img.Size
			}
		}
	}
	return out, nil
}

// pullCache pulls c's images the host lacks, within the cache's size and
// the filesystem's free share; it returns what failed and what it pulled.
func (a *Agent) pullCache(ctx context.Context, c *apiv1.ImageCache, held map[string]uint64) (failed []apiv1.ImagePullFailure, pulled []string) {
	var size uint64
	for _, img := range c.Spec.Images {
		size += held[img]
	}
	limit := uint64(c.Spec.ImageCacheSize) << 30
	for _, img := range c.Spec.Images {
		if _, ok := held[img]; ok {
			continue
		}
		fail := func(msg string) {
			failed = append(failed, apiv1.ImagePullFailure{Cache: c.Metadata.ID, Image: img, Message: msg})
		}
		if size > limit {
			fail(fmt.Sprintf("the cache's images take %d MiB, over its imageCacheSize of %d GiB", size>>20, c.Spec.ImageCacheSize))
			continue
		}
		if why := a.imageFsFull(ctx); why != "" {
			fail(why)
			continue
		}
		id, err := a.pullForCache(ctx, c, img)
		if err != nil {
			fail(err.Error())
			continue
		}
		pulled = append(pulled, img)
		if st, err := a.cfg.Runtime.ImageStatus(ctx, &runtimeapi.ImageSpec{Image: id}, false); err == nil && st.GetImage() != nil {
			size += st.GetImage().GetSize()
		}
		log.G(ctx).Info("image cache: pulled", "cache", c.Metadata.ID, "image", img)
	}
	return failed, pulled
}

// pullForCache pulls img with the cache's credential for its registry,
// over the host's own transport (verified TLS), under the registry's lock
// as a group's pull (pullguard.go); an image pulled with a credential is
// the cache's tenant's (imageowners.go).
func (a *Agent) pullForCache(ctx context.Context, c *apiv1.ImageCache, img string) (string, error) {
	reg, err := imageref.RegistryOf(img)
	if err != nil {
		return "", err
	}
	auth := credentialFor(c.Spec.ImageRegistryCredentials, img)
	var id string
	err = a.withTransport(reg, "", func() error {
		if err := a.checkLocalRegistry(ctx, reg); err != nil {
			return err
		}
		var err error
		if id, err = a.cfg.Runtime.PullImage(ctx, &runtimeapi.ImageSpec{Image: img}, auth, nil); err != nil {
			return fmt.Errorf("pull %s: %w", img, err)
		}
		if err := a.owners.pulled(id, c.Metadata.Tenant, auth != nil); err != nil {
			return err
		}
		return a.pulls.mark(img, false)
	})
	return id, err
}

// imageFsFull says why no cache may pull now (the image filesystem has
// less than ImageCacheMinFreePercent free), or nothing.
func (a *Agent) imageFsFull(ctx context.Context) string {
	info, err := a.cfg.Runtime.ImageFsInfo(ctx)
	if err != nil {
		return ""
	}
	for _, fs := range info.GetImageFilesystems() {
		mp := fs.GetFsId().GetMountpoint()
		var st unix.Statfs_t
		if mp == "" || unix.Statfs(mp, &st) != nil || st.Blocks == 0 {
			continue
		}
		if free := st.Bavail * 100 / st.Blocks; free < uint64(a.cfg.ImageCacheMinFreePercent) {
			return fmt.Sprintf("the host's image filesystem has %d%% free, under the %d%% image caches leave", free, a.cfg.ImageCacheMinFreePercent)
		}
	}
	return ""
}

// pruneCaches removes the images the agent pulled for caches that no
// cache of the host keeps any more, unless a container is made of one.
func (a *Agent) pruneCaches(ctx context.Context, caches []apiv1.ImageCache, cp *cachePulls) error {
	kept := map[string]bool{}
	for _, c := range caches {
		for _, img := range c.Spec.Images {
			kept[img] = true
		}
	}
	var stale []string
	for _, img := range cp.Pulled {
		if !kept[img] {
			stale = append(stale, img)
		}
	}
	if len(stale) == 0 {
		return nil
	}
	ctrs, err := a.cfg.Runtime.ListContainers(ctx, nil)
	if err != nil {
		return fmt.Errorf("list containers: %w", err)
	}
	inUse := map[string]bool{} // image ids (and names) containers are made of, or a cache keeps
	for _, c := range ctrs {
		inUse[c.GetImageRef()] = true
		inUse[c.GetImage().GetImage()] = true
	}
	images, err := a.cfg.Runtime.ListImages(ctx, nil)
	if err != nil {
		return fmt.Errorf("list images: %w", err)
	}
	for _, img := range images { // the runtime removes an image with all its names
		for _, ref := range append(slices.Clone(img.RepoTags), img.RepoDigests...) {
			if n, err := imageref.Normal(ref); err == nil && kept[n] {
				inUse[img.Id] = true
			}
		}
	}
	for _, img := range stale {
		st, err := a.cfg.Runtime.ImageStatus(ctx, &runtimeapi.ImageSpec{Image: img}, false)
		if err != nil {
			return fmt.Errorf("image %s: %w", img, err)
		}
		if id := st.GetImage().GetId(); id != "" {
			if inUse[id] || inUse[img] {
				continue // a container is made of it, or a cache keeps it by another name: removed once none is
			}
			if err := a.cfg.Runtime.RemoveImage(ctx, &runtimeapi.ImageSpec{Image: id}); err != nil {
				return fmt.Errorf("remove image %s: %w", img, err)
			}
			if err := a.owners.forget(id); err != nil {
				return err
			}
			log.G(ctx).Info("image cache: removed", "image", img)
		}
		cp.Pulled = slices.DeleteFunc(cp.Pulled, func(s string) bool { return s == img })
	}
	return a.saveCachePulls(*cp)
}
