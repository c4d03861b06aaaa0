package vnode

import (
	"cmp"
	"context"
	_ "embed"
	"encoding/json"
	"fmt"

	"k8s.io/client-go/kubernetes"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/client"
	"github.com/eci-dev/eci/internal/errdefs"
)

// The cluster's DataCache objects (crds/datacache.yaml), kept as the
// tenant's data caches (cacheobjects.go).

//go:embed crds/datacache.yaml
var dataCacheCRD []byte

const dataCachesPath = "/apis/eci.aliyun.com/v1alpha1/datacaches"

// InstallDataCacheCRD creates the DataCache custom resource definition
// unless it exists (eci up and the test bed; a cluster installs the
// chart's).
func InstallDataCacheCRD(ctx context.Context, kube kubernetes.Interface) error {
	return installCRD(ctx, kube, "DataCache", dataCacheCRD)
}

// dataCacheKind is the DataCache objects and the tenant's data caches.
func (v *VNode) dataCacheKind() *cacheKind {
	eci := v.cfg.ECI
	return &cacheKind{
		kind: "DataCache", noun: "data cache", path: dataCachesPath,
		failed: string(apiv1.DataCacheFailed), creating: string(apiv1.DataCacheCreating),
		list: func(ctx context.Context) ([]serviceCache, error) {
			caches, err := eci.ListDataCaches(ctx)
			out := make([]serviceCache, len(caches))
			for i := range caches {
				out[i] = serviceCache{id: caches[i].Metadata.ID, labels: caches[i].Metadata.Labels, status: dataObjectStatus(&caches[i])}
			}
			return out, err
		},
		create: func(ctx context.Context, obj *cacheObject, labels map[string]string) (serviceCache, error) {
			var spec apiv1.DataCacheSpec
			if err := json.Unmarshal(obj.Spec, &spec); err != nil {
				return serviceCache{}, fmt.Errorf("spec: %v: %w", err, errdefs.ErrInvalidArgument)
			}
			made, err := eci.CreateDataCache(ctx, &apiv1.DataCache{Metadata: apiv1.ObjectMeta{Name: cacheName(obj.Name), Labels: labels}, Spec: spec})
			if errdefs.IsAlreadyExists(err) {
				err = samePathError(ctx, eci, obj, &spec, err)
			}
			if err != nil {
				return serviceCache{}, err
			}
			return serviceCache{id: made.Metadata.ID, labels: made.Metadata.Labels, status: dataObjectStatus(made)}, nil
		},
		remove: eci.DeleteDataCache,
		named: func(id, phase, msg string, gen int64) cacheObjectStatus {
			return cacheObjectStatus{DataCacheID: id, Phase: phase, Message: msg, ObservedGeneration: gen}
		},
	}
}

// dataObjectStatus is cache c's status as its object shows it.
func dataObjectStatus(c *apiv1.DataCache) cacheObjectStatus {
	return cacheObjectStatus{
		Phase: string(c.Status.Phase), DataCacheID: c.Metadata.ID,
		HostsReady: fmt.Sprintf("%d/%d", c.Status.HostsReady, c.Status.Hosts), Message: c.Status.Message,
		StartTime: timeShown(&c.Metadata.CreatedAt), Size: sizeShown(c.Status.SizeBytes),
		LastUpdatedTime: timeShown(&c.Status.LastUpdatedTime), ExpireDateTime: timeShown(c.Status.ExpireDateTime),
	}
}

// samePathError says why obj's cache can't be made at its path: it is
// this object's earlier spec's (a data cache's data never changes: its
// groups keep the copy they mount; refused until the spec changes again),
// or another object's (tried again at each pass: that one may go).
func samePathError(ctx context.Context, eci *client.Client, obj *cacheObject, spec *apiv1.DataCacheSpec, err error) error {
	caches, lerr := eci.ListDataCaches(ctx)
	if lerr != nil {
		return fmt.Errorf("%w: %w", errRetryCache, err)
	}
	bucket := cmp.Or(spec.Bucket, apiv1.DefaultDataCacheBucket)
	for _, c := range caches {
		if c.Spec.Bucket == bucket && c.Spec.Path == spec.Path && c.Metadata.Labels[labelCacheUID] == string(obj.UID) {
			return fmt.Errorf("%w (a DataCache's spec does not change once made: make a new object at another path): %w", err, errdefs.ErrInvalidArgument)
		}
	}
	return fmt.Errorf("%w: %w", errRetryCache, err)
}
