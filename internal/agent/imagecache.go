package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/imageref"
	"github.com/eci-dev/eci/internal/log"
)

// The host's part of the image caches (api/v1 imagecache.go): every
// ImageCacheInterval the agent asks the server which caches the host
// keeps, pulls their missing images one at a time (imagecachepull.go: a
// background task beside the groups' own pulls, each with a timeout, a
// failed one tried again with back-off), removes the images it pulled that
// no cache of the host has kept for ImageCachePruneGrace (never one a
// container is made of), and reports the images the host holds, with the
// tenants each private one is for, which the placer and the caches'
// status read. A cache pulls no further than its imageCacheSize, the
// caches together no further than ImageCacheBytes (the least recently
// matched are not kept), and none pulls while the image filesystem has
// less than ImageCacheMinFreePercent free.

// cachePulls are the images the agent pulled for caches (StateDir
// image-caches.json), the only ones it removes.
type cachePulls struct {
	Pulled []string `json:"pulled"`
	// Sizes are the caches' images' sizes last seen held: a cache not
	// kept for ImageCacheBytes still counts its images' size.
	Sizes map[string]uint64 `json:"sizes,omitempty"`
	// Unwanted: since when no cache kept on the host has wanted each
	// pulled image.
	Unwanted map[string]time.Time `json:"unwanted,omitempty"`
}

// heldImage is an image the runtime holds.
type heldImage struct {
	id   string
	size uint64
}

func (a *Agent) cachePullsFile() string { return filepath.Join(a.cfg.StateDir, "image-caches.json") }

// loadCachePulls reads the record; an unreadable one is started again
// (what it listed is then never removed by the caches, only kept).
func (a *Agent) loadCachePulls(ctx context.Context) cachePulls {
	var cp cachePulls
	data, err := os.ReadFile(a.cachePullsFile())
	if err == nil {
		err = json.Unmarshal(data, &cp)
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		log.G(ctx).Warn("image caches: the record of the images they pulled is unreadable; started again (those images are kept)", "err", err)
		cp = cachePulls{}
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

// sizeKey keys a cache's image in Sizes: by its tenant (a size is known
// only of an image the tenant may run: another's private copy tells it
// nothing, through the bound either).
func sizeKey(tenant, img string) string { return tenant + "\x00" + img }

// refresh keeps the sizes of the caches' images held (those each cache's
// tenant may run), forgets those of images no cache keeps, and drops from
// Pulled what someone else removed (pulled again, it is not the caches' to
// remove); it tells whether cp changed.
func (cp *cachePulls) refresh(caches []apiv1.ImageCache, held map[string]heldImage, usable func(id, img, tenant string) bool) bool {
	if cp.Sizes == nil {
		cp.Sizes = map[string]uint64{}
	}
	n := len(cp.Pulled)
	cp.Pulled = slices.DeleteFunc(cp.Pulled, func(img string) bool { _, ok := held[img]; return !ok })
	changed, wanted := len(cp.Pulled) != n, map[string]bool{}
	for _, c := range caches {
		for _, img := range c.Spec.Images {
			key := sizeKey(c.Metadata.Tenant, img)
			wanted[key] = true
			if h, ok := held[img]; ok && usable(h.id, img, c.Metadata.Tenant) && cp.Sizes[key] != h.size {
				cp.Sizes[key], changed = h.size, true
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
	retries := cacheRetries{}
	passAndReport(log.With(ctx, "part", "image-caches"), a, "image caches",
		func(ctx context.Context) (apiv1.HostImages, error) { return a.syncImageCaches(ctx, retries) },
		func(ctx context.Context, rep apiv1.HostImages) error {
			return a.cfg.Client.ReportHostImages(ctx, a.name, rep)
		})
}

// passAndReport runs pass every ImageCacheInterval until ctx ends (none
// while the host is fenced), and reports what it returns when that
// changed since the last report that went through.
func passAndReport[R any](ctx context.Context, a *Agent, what string, pass func(context.Context) (R, error), report func(context.Context, R) error) {
	t := time.NewTicker(a.cfg.ImageCacheInterval)
	defer t.Stop()
	var last *R
	for ctx.Err() == nil {
		if !a.lease.isFenced() {
			rep, err := pass(ctx)
			if err == nil && (last == nil || !reflect.DeepEqual(*last, rep)) {
				if err = report(ctx, rep); err == nil {
					last = &rep
				}
			}
			if err != nil && ctx.Err() == nil {
				log.G(ctx).Warn(what, "err", err)
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
func (a *Agent) syncImageCaches(ctx context.Context, retries cacheRetries) (apiv1.HostImages, error) {
	caches, err := a.cfg.Client.HostImageCaches(ctx, a.name)
	if err != nil {
		return apiv1.HostImages{}, fmt.Errorf("read the host's image caches: %w", err)
	}
	sort.Slice(caches, func(i, j int) bool { return caches[i].Metadata.ID < caches[j].Metadata.ID })
	held, err := a.heldImages(ctx)
	if err != nil {
		return apiv1.HostImages{}, err
	}
	cp := a.loadCachePulls(ctx)
	if cp.refresh(caches, held, a.owners.mayUse) {
		if err := a.saveCachePulls(cp); err != nil {
			return apiv1.HostImages{}, err
		}
	}
	var failed []apiv1.ImagePullFailure
	var kept []apiv1.ImageCache
	taken := map[string]bool{} // sizeKeys counted against ImageCacheBytes
	for _, i := range byRecency(caches) {
		c := &caches[i]
		if a.overBudget(c, cp.Sizes, taken) {
			failed = append(failed, apiv1.ImagePullFailure{Cache: c.Metadata.ID, Image: c.Spec.Images[0],
				Message: fmt.Sprintf("not kept on this host: the caches matched more recently take its %d MiB for image caches", a.cfg.ImageCacheBytes>>20)})
			continue
		}
		kept = append(kept, *c)
		f, pulled := a.pullCache(ctx, c, held, retries)
		failed = append(failed, f...)
		if len(pulled) > 0 {
			for img, n := range pulled { // counted at once for the caches after it
				cp.Pulled = append(cp.Pulled, img)
				cp.Sizes[sizeKey(c.Metadata.Tenant, img)] = n
				taken[sizeKey(c.Metadata.Tenant, img)] = true
			}
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
	return a.hostReport(ctx, failed)
}

// hostReport is what the host holds, sorted and bounded, with one failure
// a cache.
func (a *Agent) hostReport(ctx context.Context, failed []apiv1.ImagePullFailure) (apiv1.HostImages, error) {
	images, err := a.cfg.Runtime.ListImages(ctx, nil)
	if err != nil {
		return apiv1.HostImages{}, fmt.Errorf("list images: %w", err)
	}
	rep := apiv1.HostImages{Images: []apiv1.HostImage{}}
	for _, img := range images {
		refs := append(slices.Clone(img.RepoTags), img.RepoDigests...)
		if len(refs) > 0 {
			to := a.owners.privateTo(img.Id)
			rep.Images = append(rep.Images, apiv1.HostImage{Refs: refs[:min(len(refs), 32)], SizeBytes: int64(img.Size), PrivateTo: to[:min(len(to), 256)]}) // (fewer: safe, fewer tenants count it)
		}
	}
	sort.Slice(rep.Images, func(i, j int) bool { return rep.Images[i].Refs[0] < rep.Images[j].Refs[0] })
	rep.Images = rep.Images[:min(len(rep.Images), apiv1.MaxHostImages)]
	seen := map[string]bool{}
	for _, f := range failed {
		if !seen[f.Cache] && len(rep.Failed) < apiv1.MaxHostImageFailures {
			seen[f.Cache] = true
			rep.Failed = append(rep.Failed, f)
		}
	}
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
	for key := range taken {
		total += sizes[key]
	}
	for _, img := range c.Spec.Images {
		if key := sizeKey(c.Metadata.Tenant, img); !taken[key] {
			total += sizes[key]
		}
	}
	if total > a.cfg.ImageCacheBytes {
		return true
	}
	for _, img := range c.Spec.Images {
		taken[sizeKey(c.Metadata.Tenant, img)] = true
	}
	return false
}

// heldImages are the images the runtime holds, by name (as containerd
// writes them).
func (a *Agent) heldImages(ctx context.Context) (map[string]heldImage, error) {
	images, err := a.cfg.Runtime.ListImages(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	out := map[string]heldImage{}
	for _, img := range images {
		for _, ref := range append(slices.Clone(img.RepoTags), img.RepoDigests...) {
			if n, err := imageref.Normal(ref); err == nil {
				out[n] = heldImage{id: img.Id, size: img.Size}
			}
		}
	}
	return out, nil
}
