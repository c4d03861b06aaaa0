package agent

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/imageref"
	"github.com/eci-dev/eci/internal/log"
)

// A cache's pulls (imagecache.go): one image at a time, each within
// cachePullTimeout; one that fails is tried again after a back-off that
// doubles from cacheRetryFirst to cacheRetryMost, so that a cache naming
// an image nobody serves costs its registry little.
const (
	cachePullTimeout = 10 * time.Minute
	cacheRetryFirst  = 30 * time.Second
	cacheRetryMost   = 10 * time.Minute
)

// cacheRetries are the failed (cache, image) pulls and when each is tried
// again (the image cache loop's own).
type cacheRetries map[string]*cacheRetry

type cacheRetry struct {
	next  time.Time
	delay time.Duration
	msg   string
	// size is the image's size when it was pulled and removed for being
	// over its cache's size: the next try is refused without pulling.
	size uint64
}

// failed records a failure of key, and returns its message.
func (r cacheRetries) failed(key, msg string) string {
	cur := r[key]
	if cur == nil {
		cur = &cacheRetry{delay: cacheRetryFirst / 2}
		r[key] = cur
	}
	cur.delay = min(2*cur.delay, cacheRetryMost)
	cur.next, cur.msg = time.Now().Add(cur.delay), msg
	return msg
}

// waiting is the message of key while it waits to be tried again.
func (r cacheRetries) waiting(key string) (string, bool) {
	if cur := r[key]; cur != nil && time.Now().Before(cur.next) {
		return cur.msg, true
	}
	return "", false
}

// pullCache pulls c's images the host lacks (or holds as another tenant's
// private image: the cache's credential pulls it again, and the registry
// decides), within the cache's size and the filesystem's free share; it
// returns what failed, and the images it brought to the host with their
// sizes (not one another name of which was here before).
func (a *Agent) pullCache(ctx context.Context, c *apiv1.ImageCache, held map[string]heldImage, retries cacheRetries) (failed []apiv1.ImagePullFailure, pulled map[string]uint64) {
	tenant := c.Metadata.Tenant
	ids := map[string]bool{} // the images here before, by id
	for _, h := range held {
		ids[h.id] = true
	}
	var size uint64
	for _, img := range c.Spec.Images {
		if h, ok := held[img]; ok && a.owners.mayUse(h.id, img, tenant) {
			size += h.size
		}
	}
	limit := uint64(c.Spec.ImageCacheSize) << 30
	pulled = map[string]uint64{}
	for _, img := range c.Spec.Images {
		if h, ok := held[img]; ok && a.owners.mayUse(h.id, img, tenant) {
			continue
		}
		key := c.Metadata.ID + "\x00" + img
		fail := func(msg string) {
			failed = append(failed, apiv1.ImagePullFailure{Cache: c.Metadata.ID, Image: img, Message: msg})
		}
		if msg, ok := retries.waiting(key); ok {
			fail(msg)
			continue
		}
		over := func(n uint64) string {
			return fmt.Sprintf("the cache's images would take %d MiB, over its imageCacheSize of %d GiB", n>>20, c.Spec.ImageCacheSize)
		}
		var known uint64 // its size, learned from an earlier pull
		if r := retries[key]; r != nil {
			known = r.size
		}
		if size > limit || size+known > limit {
			fail(retries.failed(key, over(size+known)))
			continue
		}
		if why := a.imageFsFull(ctx); why != "" {
			fail(retries.failed(key, why))
			continue
		}
		id, err := a.pullForCache(ctx, c, img)
		if err != nil {
			fail(retries.failed(key, pullFailure(err, img)))
			continue
		}
		n := a.imageSize(ctx, id)
		if ids[id] { // here before under some name: not the cache's to remove, nor to count again
			delete(retries, key)
			continue
		}
		if size+n > limit { // (a size is known only once pulled)
			a.pruneImage(ctx, img, id, map[string]bool{img: true}, nil)
			fail(retries.failed(key, over(size+n)))
			retries[key].size = n
			continue
		}
		delete(retries, key)
		size += n
		pulled[img] = n
		log.G(ctx).Info("image cache: pulled", "cache", c.Metadata.ID, "image", img)
	}
	return failed, pulled
}

func (a *Agent) imageSize(ctx context.Context, id string) uint64 {
	st, err := a.cfg.Runtime.ImageStatus(ctx, &runtimeapi.ImageSpec{Image: id}, false)
	if err != nil || st.GetImage() == nil {
		return 0
	}
	return st.GetImage().GetSize()
}

// pullFailure is what a cache's status says of a failed pull of img: its
// kind only. The runtime's own words would tell a tenant what answers at
// any address its cache names, from every host; the words are read with
// the image's own name, which the tenant chose, taken out.
func pullFailure(err error, img string) string {
	s, img := strings.ToLower(err.Error()), strings.ToLower(img)
	words := []string{img, repository(img)}
	if reg, _, ok := strings.Cut(repository(img), "/"); ok {
		words = append(words, strings.TrimPrefix(repository(img), reg+"/"), reg)
	}
	if n, nerr := imageref.Normal(img); nerr == nil {
		words = append(words, strings.TrimPrefix(repository(n), "docker.io/"))
	}
	for _, w := range words { // longest first: a name, then its parts
		s = strings.ReplaceAll(s, w, "")
	}
	has := func(words ...string) bool {
		return slices.ContainsFunc(words, func(w string) bool { return strings.Contains(s, w) })
	}
	switch {
	case has("own or link-local addresses", "configured by the host's operator"):
		return "refused: the registry is on the host's own addresses"
	case has("unauthorized", " 401 ", " 403 ", "forbidden", "no basic auth", "denied"):
		return "unauthorized: the registry refused the pull (no credential for it, or a wrong one)"
	case has("not found", " 404 ", "manifest unknown", "name unknown"):
		return "not found in the registry"
	case has("connection refused", "no such host", "timeout", "deadline exceeded", "unreachable", "dial tcp", "tls:", "http response to https"):
		return "the registry could not be reached"
	}
	return "the pull failed"
}

// pullForCache pulls img with the cache's credential for its registry,
// over the host's own transport (verified TLS), under the registry's lock
// as a group's pull (pullguard.go), recorded as the cache's tenant's
// before and after (imageowners.go).
func (a *Agent) pullForCache(ctx context.Context, c *apiv1.ImageCache, img string) (string, error) {
	reg, err := imageref.RegistryOf(img)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, cachePullTimeout)
	defer cancel()
	auth := credentialFor(c.Spec.ImageRegistryCredentials, img)
	var id string
	err = a.withTransport(reg, "", func() error {
		if err := a.checkLocalRegistry(ctx, reg); err != nil {
			return err
		}
		openID := ""
		if st, err := a.cfg.Runtime.ImageStatus(ctx, &runtimeapi.ImageSpec{Image: img}, false); err == nil && st.GetImage() != nil && a.owners.isOpen(st.GetImage().GetId(), img) {
			openID = st.GetImage().GetId()
		}
		done, err := a.owners.pulling(img, c.Metadata.Tenant, auth != nil)
		if err != nil {
			return err
		}
		defer done()
		if id, err = a.cfg.Runtime.PullImage(ctx, &runtimeapi.ImageSpec{Image: img}, auth, nil); err != nil {
			return fmt.Errorf("pull %s: %w", img, err)
		}
		if err := a.owners.pulled(id, img, c.Metadata.Tenant, auth != nil, id == openID); err != nil {
			return err
		}
		return a.pulls.mark(img, false)
	})
	return id, err
}

// imageFsFull says why no cache may pull now (the image filesystem has
// less than ImageCacheMinFreePercent free, or its free share can't be
// read), or nothing.
func (a *Agent) imageFsFull(ctx context.Context) string {
	if a.cfg.ImageCacheMinFreePercent == 0 {
		return ""
	}
	info, err := a.cfg.Runtime.ImageFsInfo(ctx)
	if err != nil {
		return "the host's image filesystem's free space can't be read"
	}
	for _, fs := range info.GetImageFilesystems() {
		var st unix.Statfs_t
		if mp := fs.GetFsId().GetMountpoint(); mp == "" || unix.Statfs(mp, &st) != nil || st.Blocks == 0 {
			return "the host's image filesystem's free space can't be read"
		}
		if free := st.Bavail * 100 / st.Blocks; free < uint64(a.cfg.ImageCacheMinFreePercent) {
			return fmt.Sprintf("the host's image filesystem has %d%% free, under the %d%% image caches leave", free, a.cfg.ImageCacheMinFreePercent)
		}
	}
	return ""
}

// pruneCaches removes the images the agent pulled for caches that no
// cache kept on the host has wanted for ImageCachePruneGrace, unless a
// container is made of one or a kept cache names it another way. One it
// can't remove now is tried at the next pass.
func (a *Agent) pruneCaches(ctx context.Context, kept []apiv1.ImageCache, cp *cachePulls) error {
	wanted := map[string]bool{}
	for _, c := range kept {
		for _, img := range c.Spec.Images {
			wanted[img] = true
		}
	}
	if cp.Unwanted == nil {
		cp.Unwanted = map[string]time.Time{}
	}
	now, changed := time.Now(), false
	var stale []string
	for _, img := range cp.Pulled {
		since, ok := cp.Unwanted[img]
		switch {
		case wanted[img]:
			if ok {
				delete(cp.Unwanted, img)
				changed = true
			}
		case !ok:
			cp.Unwanted[img], changed = now, true
			if a.cfg.ImageCachePruneGrace <= 0 {
				stale = append(stale, img)
			}
		case now.Sub(since) >= a.cfg.ImageCachePruneGrace:
			stale = append(stale, img)
		}
	}
	pulled := map[string]bool{}
	for _, img := range cp.Pulled {
		pulled[img] = true
	}
	for _, img := range stale {
		if a.pruneImage(ctx, img, "", pulled, wanted) {
			cp.Pulled = slices.DeleteFunc(cp.Pulled, func(s string) bool { return s == img })
			delete(cp.Unwanted, img)
			changed = true
		}
	}
	for img := range cp.Unwanted {
		if !pulled[img] {
			delete(cp.Unwanted, img)
			changed = true
		}
	}
	if !changed {
		return nil
	}
	return a.saveCachePulls(*cp)
}

// pruneImage removes img (image id when known) unless a container is made
// of it, a wanted name is another name of it, or it has a name the caches
// did not pull (ours: the names they pulled, and the digests of those
// repositories): the runtime removes every name of an image. It skips an
// image whose registry is busy (a pull under way), and tells whether img
// is gone.
func (a *Agent) pruneImage(ctx context.Context, img, id string, ours, wanted map[string]bool) bool {
	reg, err := imageref.RegistryOf(img)
	if err != nil {
		return true
	}
	unlock, ok := a.pulls.tryLock(reg)
	if !ok {
		return false // tried at the next pass
	}
	defer unlock()
	st, err := a.cfg.Runtime.ImageStatus(ctx, &runtimeapi.ImageSpec{Image: cmp.Or(id, img)}, false)
	if err != nil {
		log.G(ctx).Warn("image cache: image status", "image", img, "err", err)
		return false
	}
	if id = st.GetImage().GetId(); id == "" {
		return true
	}
	repos := map[string]bool{}
	for r := range ours {
		repos[repository(r)] = true
	}
	for _, ref := range append(slices.Clone(st.GetImage().GetRepoTags()), st.GetImage().GetRepoDigests()...) {
		n, err := imageref.Normal(ref)
		digestOfOurs := strings.Contains(n, "@") && repos[repository(n)]
		if err != nil || wanted[n] || (!ours[n] && !digestOfOurs) {
			return false // kept by a cache, or someone else's name of it
		}
	}
	ctrs, err := a.cfg.Runtime.ListContainers(ctx, nil)
	if err != nil {
		log.G(ctx).Warn("image cache: list containers", "err", err)
		return false
	}
	for _, c := range ctrs {
		if c.GetImageRef() == id || c.GetImage().GetImage() == id || c.GetImage().GetImage() == img {
			return false // a container is made of it: removed once none is
		}
	}
	return a.removeImage(ctx, img, id)
}

// removeImage removes image id (named img) and forgets its owners.
func (a *Agent) removeImage(ctx context.Context, img, id string) bool {
	if err := a.cfg.Runtime.RemoveImage(ctx, &runtimeapi.ImageSpec{Image: id}); err != nil {
		log.G(ctx).Warn("image cache: remove image", "image", img, "err", err)
		return false
	}
	if err := a.owners.forget(id); err != nil {
		log.G(ctx).Warn("image cache: forget the image's owners", "image", img, "err", err)
	}
	log.G(ctx).Info("image cache: removed", "image", img)
	return true
}
