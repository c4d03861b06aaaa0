package control

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strconv"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/auth"
	"github.com/eci-dev/eci/internal/errdefs"
	"github.com/eci-dev/eci/internal/imageref"
	"github.com/eci-dev/eci/internal/store"
)

// Image caches (api/v1 imagecache.go, docs/fast-start.md): a tenant's
// images pulled ahead to the hosts. The server keeps the caches, gives
// each host the caches it keeps (imagecachehosts.go), and keeps each
// cache's status from the hosts' reports (imagecachestatus.go); the placer
// prefers a host holding a group's images and names the cache that held
// them (imagecachematch.go).

// maxImageCachesPerTenant bounds what a tenant makes every host pull.
const maxImageCachesPerTenant = 10

func newImageCacheID() string {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return "imc-" + hex.EncodeToString(b)
}

// CreateImageCache stores a cache of the caller's tenant (an admin names
// one, or makes it the default tenant's); the hosts pull its images.
func (s *Service) CreateImageCache(ctx context.Context, p auth.Principal, c *apiv1.ImageCache) (*apiv1.ImageCache, error) {
	if err := p.Require("create image caches", apiv1.TokenAdmin, apiv1.TokenTenant); err != nil {
		return nil, err
	}
	tenant, err := s.opts.DefaultTenant, error(nil) // an admin's groups and caches without a tenant are its
	if !p.IsAdmin() || c.Metadata.Tenant != "" {
		if tenant, err = s.writerTenant(ctx, p, c.Metadata.Tenant); err != nil {
			return nil, err
		}
	}
	if err := apiv1.ValidateImageCache(c); err != nil {
		return nil, fmt.Errorf("%w: %w", errdefs.ErrInvalidArgument, err)
	}
	spec := c.Spec
	spec.Images = make([]string, len(c.Spec.Images))
	for i, img := range c.Spec.Images {
		if spec.Images[i], err = imageref.Normal(img); err != nil {
			return nil, fmt.Errorf("%w: %w", errdefs.ErrInvalidArgument, apiv1.FieldErrors{{Field: fmt.Sprintf("spec.images[%d]", i),
				Message: fmt.Sprintf("%q is not an image reference; allowed: [registry/]repository[:tag][@digest]", img)}})
		}
		if slices.Contains(spec.Images[:i], spec.Images[i]) {
			return nil, fmt.Errorf("%w: %w", errdefs.ErrInvalidArgument, apiv1.FieldErrors{{Field: fmt.Sprintf("spec.images[%d]", i),
				Message: fmt.Sprintf("%q is %s, given before; allowed: each image once", img, spec.Images[i])}})
		}
	}
	if err := credentialsUsed(spec); err != nil {
		return nil, err
	}
	if spec.ImageCacheSize == 0 {
		spec.ImageCacheSize = apiv1.DefaultImageCacheSize
	}
	mine, err := s.tenantImageCaches(ctx, tenant)
	if err != nil {
		return nil, err
	}
	if len(mine) >= maxImageCachesPerTenant {
		return nil, fmt.Errorf("tenant %s has %d image caches, the most it may: %w", tenant, len(mine), errdefs.ErrPermissionDenied)
	}
	now := s.now()
	obj := &apiv1.ImageCache{
		Metadata: apiv1.ObjectMeta{ID: newImageCacheID(), Name: c.Metadata.Name, Tenant: tenant, Labels: c.Metadata.Labels, CreatedAt: now},
		Spec:     spec,
		Status:   apiv1.ImageCacheStatus{Phase: apiv1.ImageCacheCreating, Progress: "0%", LastUpdatedTime: now},
	}
	if d := spec.RetentionDays; d > 0 {
		at := now.AddDate(0, 0, d)
		obj.Status.ExpireDateTime = &at
	}
	if err := s.imcs.Create(ctx, obj, nil); err != nil {
		return nil, err
	}
	s.recordEvent(ctx, "ImageCache", obj.Metadata.ID, tenant, apiv1.EventNormal, "Creating", fmt.Sprintf("image cache %s of %d images: the hosts pull them", obj.Metadata.ID, len(spec.Images)), "server")
	return redactCache(obj), nil
}

// credentialsUsed refuses a credential for a registry of none of the
// images (it would never be sent).
func credentialsUsed(spec apiv1.ImageCacheSpec) error {
	regs := map[string]bool{}
	for _, img := range spec.Images {
		if r, err := imageref.RegistryOf(img); err == nil {
			regs[r] = true
		}
	}
	for i, c := range spec.ImageRegistryCredentials {
		if !regs[imageref.Registry(c.Server)] {
			return fmt.Errorf("%w: %w", errdefs.ErrInvalidArgument, apiv1.FieldErrors{{Field: fmt.Sprintf("spec.imageRegistryCredentials[%d].server", i),
				Message: fmt.Sprintf("%q is the registry of none of the images; allowed: one of %v", c.Server, slices.Sorted(maps.Keys(regs)))}})
		}
	}
	return nil
}

// tenantImageCaches are the caches of tenant.
func (s *Service) tenantImageCaches(ctx context.Context, tenant string) ([]*apiv1.ImageCache, error) {
	all, _, _, err := s.imcs.List(ctx, store.ListOptions{})
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(all, func(c *apiv1.ImageCache) bool { return c.Metadata.Tenant != tenant }), nil
}

// redactCache is c without its registry passwords (for anyone but the
// hosts that pull with them).
func redactCache(c *apiv1.ImageCache) *apiv1.ImageCache {
	out := *c
	out.Spec.ImageRegistryCredentials = slices.Clone(c.Spec.ImageRegistryCredentials)
	for i := range out.Spec.ImageRegistryCredentials {
		out.Spec.ImageRegistryCredentials[i].Password = ""
	}
	return &out
}

// GetImageCache reads a cache: a tenant its own, the admin any.
func (s *Service) GetImageCache(ctx context.Context, p auth.Principal, id string) (*apiv1.ImageCache, error) {
	if err := p.Require("read image caches", apiv1.TokenAdmin, apiv1.TokenTenant); err != nil {
		return nil, err
	}
	c, err := s.imcs.Get(ctx, id)
	if err == nil && p.Kind == apiv1.TokenTenant && c.Metadata.Tenant != p.Tenant {
		err = fmt.Errorf("image cache %s: %w", id, errdefs.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	return redactCache(c), nil
}

// ListImageCaches lists the caches p may read.
func (s *Service) ListImageCaches(ctx context.Context, p auth.Principal) (*apiv1.List[apiv1.ImageCache], error) {
	if err := p.Require("list image caches", apiv1.TokenAdmin, apiv1.TokenTenant); err != nil {
		return nil, err
	}
	all, rev, _, err := s.imcs.List(ctx, store.ListOptions{})
	if err != nil {
		return nil, err
	}
	out := &apiv1.List[apiv1.ImageCache]{Items: []apiv1.ImageCache{}, ResourceVersion: strconv.FormatInt(rev, 10)}
	for _, c := range all {
		if p.Kind != apiv1.TokenTenant || c.Metadata.Tenant == p.Tenant {
			out.Items = append(out.Items, *redactCache(c))
		}
	}
	return out, nil
}

// DeleteImageCache removes a cache; the hosts remove its images that no
// other cache keeps and no container uses.
func (s *Service) DeleteImageCache(ctx context.Context, p auth.Principal, id string) error {
	c, err := s.GetImageCache(ctx, p, id)
	if err != nil {
		return err
	}
	c.Metadata.ResourceVersion = "" // whatever the monitor wrote of its status since
	if err := s.imcs.Delete(ctx, c); err != nil {
		return err
	}
	s.recordEvent(ctx, "ImageCache", id, c.Metadata.Tenant, apiv1.EventNormal, "Deleted", "image cache "+id+" deleted: the hosts remove its images no other cache keeps", "server")
	return nil
}
