package control

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/auth"
	"github.com/eci-dev/eci/internal/errdefs"
	"github.com/eci-dev/eci/internal/store"
)

// Data caches (api/v1 datacache.go, docs/fast-start.md): a tenant's data
// set fetched once per host. The server keeps the caches, gives each host
// those it fetches ahead and keeps each cache's status from the hosts'
// reports (datacachehosts.go), and fills in a group's data cache volumes
// from the tenant's caches (resolveDataCaches).

// maxDataCachesPerTenant bounds what a tenant makes every host fetch.
const maxDataCachesPerTenant = 20

func newDataCacheID() string {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return "edc-" + hex.EncodeToString(b)
}

// CreateDataCache stores a data cache of the caller's tenant (an admin
// names one, or makes it the default tenant's); the hosts fetch it.
func (s *Service) CreateDataCache(ctx context.Context, p auth.Principal, c *apiv1.DataCache) (*apiv1.DataCache, error) {
	if err := p.Require("create data caches", apiv1.TokenAdmin, apiv1.TokenTenant); err != nil {
		return nil, err
	}
	tenant, err := s.opts.DefaultTenant, error(nil)
	if !p.IsAdmin() || c.Metadata.Tenant != "" {
		if tenant, err = s.writerTenant(ctx, p, c.Metadata.Tenant); err != nil {
			return nil, err
		}
	}
	if err := apiv1.ValidateDataCache(c); err != nil {
		return nil, fmt.Errorf("%w: %w", errdefs.ErrInvalidArgument, err)
	}
	spec := c.Spec
	if spec.Bucket == "" {
		spec.Bucket = apiv1.DefaultDataCacheBucket
	}
	if spec.Size == 0 {
		spec.Size = apiv1.DefaultDataCacheSize
	}
	if spec.DataSource.Options["format"] == "" {
		spec.DataSource.Options = cloneWith(spec.DataSource.Options, "format", apiv1.DataFormat(spec.DataSource))
	}
	mine, err := s.tenantDataCaches(ctx, tenant)
	if err != nil {
		return nil, err
	}
	if len(mine) >= maxDataCachesPerTenant {
		return nil, fmt.Errorf("tenant %s has %d data caches, the most it may: %w", tenant, len(mine), errdefs.ErrPermissionDenied)
	}
	if slices.ContainsFunc(mine, func(o *apiv1.DataCache) bool { return o.Spec.Bucket == spec.Bucket && o.Spec.Path == spec.Path }) {
		return nil, fmt.Errorf("%w: %w", errdefs.ErrAlreadyExists, apiv1.FieldErrors{{Field: "spec.path",
			Message: fmt.Sprintf("bucket %s already has a data cache at %s; allowed: a path of the bucket no cache has", spec.Bucket, spec.Path)}})
	}
	now := s.now()
	obj := &apiv1.DataCache{
		Metadata: apiv1.ObjectMeta{ID: newDataCacheID(), Name: c.Metadata.Name, Tenant: tenant, Labels: c.Metadata.Labels, CreatedAt: now},
		Spec:     spec,
		Status:   apiv1.DataCacheStatus{Phase: apiv1.DataCacheCreating, LastUpdatedTime: now},
	}
	if d := spec.RetentionDays; d > 0 {
		at := now.AddDate(0, 0, d)
		obj.Status.ExpireDateTime = &at
	}
	if err := s.dcs.Create(ctx, obj, nil); err != nil {
		return nil, err
	}
	s.recordEvent(ctx, "DataCache", obj.Metadata.ID, tenant, apiv1.EventNormal, "Creating",
		fmt.Sprintf("data cache %s (%s:%s): the hosts fetch it", obj.Metadata.ID, spec.Bucket, spec.Path), "server")
	return obj, nil
}

// cloneWith is m with k set to v (m itself unchanged).
func cloneWith(m map[string]string, k, v string) map[string]string {
	out := make(map[string]string, len(m)+1)
	for mk, mv := range m {
		out[mk] = mv
	}
	out[k] = v
	return out
}

// tenantDataCaches are the data caches of tenant.
func (s *Service) tenantDataCaches(ctx context.Context, tenant string) ([]*apiv1.DataCache, error) {
	all, _, _, err := s.dcs.List(ctx, store.ListOptions{})
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(all, func(c *apiv1.DataCache) bool { return c.Metadata.Tenant != tenant }), nil
}

// GetDataCache reads a data cache: a tenant its own, the admin any.
func (s *Service) GetDataCache(ctx context.Context, p auth.Principal, id string) (*apiv1.DataCache, error) {
	if err := p.Require("read data caches", apiv1.TokenAdmin, apiv1.TokenTenant); err != nil {
		return nil, err
	}
	c, err := s.dcs.Get(ctx, id)
	if err == nil && p.Kind == apiv1.TokenTenant && c.Metadata.Tenant != p.Tenant {
		err = fmt.Errorf("data cache %s: %w", id, errdefs.ErrNotFound)
	}
	return c, err
}

// ListDataCaches lists the data caches p may read.
func (s *Service) ListDataCaches(ctx context.Context, p auth.Principal) (*apiv1.List[apiv1.DataCache], error) {
	if err := p.Require("list data caches", apiv1.TokenAdmin, apiv1.TokenTenant); err != nil {
		return nil, err
	}
	all, rev, _, err := s.dcs.List(ctx, store.ListOptions{})
	if err != nil {
		return nil, err
	}
	out := &apiv1.List[apiv1.DataCache]{Items: []apiv1.DataCache{}, ResourceVersion: strconv.FormatInt(rev, 10)}
	for _, c := range all {
		if p.Kind != apiv1.TokenTenant || c.Metadata.Tenant == p.Tenant {
			out.Items = append(out.Items, *c)
		}
	}
	return out, nil
}

// DeleteDataCache removes a data cache; the hosts remove their copies once
// no group of theirs mounts them. Groups made before keep theirs.
func (s *Service) DeleteDataCache(ctx context.Context, p auth.Principal, id string) error {
	c, err := s.GetDataCache(ctx, p, id)
	if err != nil {
		return err
	}
	c.Metadata.ResourceVersion = "" // whatever the monitor wrote of its status since
	if err := s.dcs.Delete(ctx, c); err != nil {
		return err
	}
	s.recordEvent(ctx, "DataCache", id, c.Metadata.Tenant, apiv1.EventNormal, "Deleted", "data cache "+id+" deleted: the hosts remove their copies once no group mounts them", "server")
	return nil
}

// resolveDataCaches fills in spec's data cache volumes from tenant's
// caches (by bucket and path; what a group sent of the rest is replaced),
// and refuses one that names no cache of the tenant.
func (s *Service) resolveDataCaches(ctx context.Context, tenant string, spec *apiv1.ContainerGroupSpec) error {
	var mine []*apiv1.DataCache
	for i := range spec.Volumes {
		v := spec.Volumes[i].DataCache
		if v == nil {
			continue
		}
		if mine == nil {
			var err error
			if mine, err = s.tenantDataCaches(ctx, tenant); err != nil {
				return err
			}
		}
		bucket := v.Bucket
		if bucket == "" {
			bucket = apiv1.DefaultDataCacheBucket
		}
		at := slices.IndexFunc(mine, func(c *apiv1.DataCache) bool { return c.Spec.Bucket == bucket && c.Spec.Path == v.Path })
		if at < 0 {
			return fmt.Errorf("%w: %w", errdefs.ErrInvalidArgument, apiv1.FieldErrors{{Field: fmt.Sprintf("spec.volumes[%d].dataCache", i),
				Message: fmt.Sprintf("tenant %s has no data cache at %s in bucket %s; allowed: the bucket and path of one of its data caches", tenant, v.Path, bucket)}})
		}
		c := mine[at]
		src := c.Spec.DataSource
		spec.Volumes[i].DataCache = &apiv1.DataCacheVolume{Bucket: bucket, Path: v.Path, ID: c.Metadata.ID, Source: &src, Size: c.Spec.Size}
	}
	return nil
}

// groupDataCaches are the ids of the data caches spec mounts.
func groupDataCaches(spec *apiv1.ContainerGroupSpec) []string {
	var out []string
	for _, v := range spec.Volumes {
		if v.DataCache != nil && v.DataCache.ID != "" {
			out = append(out, v.DataCache.ID)
		}
	}
	return out
}
