package vnode

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"strings"

	"k8s.io/client-go/kubernetes"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/errdefs"
	"github.com/eci-dev/eci/internal/imageref"
)

// The cluster's ImageCache objects (crds/imagecache.yaml), kept as the
// tenant's image caches (cacheobjects.go): the pull secrets they name are
// read as the pods' are and sent as registry credentials.

//go:embed crds/imagecache.yaml
var imageCacheCRD []byte

const imageCachesPath = "/apis/eci.alibabacloud.com/v1/imagecaches"

type imageCacheObjectSpec struct {
	Images           []string `json:"images"`
	ImagePullSecrets []string `json:"imagePullSecrets,omitempty"`
	ImageCacheSize   int      `json:"imageCacheSize,omitempty"`
	RetentionDays    int      `json:"retentionDays,omitempty"`
	HostsPerZone     int      `json:"hostsPerZone,omitempty"`
}

// InstallImageCacheCRD creates the ImageCache custom resource definition
// unless it exists (eci up and the test bed; a cluster installs the
// chart's).
func InstallImageCacheCRD(ctx context.Context, kube kubernetes.Interface) error {
	return installCRD(ctx, kube, "ImageCache", imageCacheCRD)
}

// imageCacheKind is the ImageCache objects and the tenant's image caches.
func (v *VNode) imageCacheKind() *cacheKind {
	eci := v.cfg.ECI
	return &cacheKind{
		kind: "ImageCache", noun: "image cache", path: imageCachesPath,
		failed: string(apiv1.ImageCacheFailed), creating: string(apiv1.ImageCacheCreating),
		list: func(ctx context.Context) ([]serviceCache, error) {
			caches, err := eci.ListImageCaches(ctx)
			out := make([]serviceCache, len(caches))
			for i := range caches {
				out[i] = serviceCache{id: caches[i].Metadata.ID, labels: caches[i].Metadata.Labels, status: objectStatus(&caches[i], 0)}
			}
			return out, err
		},
		create: func(ctx context.Context, obj *cacheObject, labels map[string]string) (serviceCache, error) {
			var spec imageCacheObjectSpec
			if err := json.Unmarshal(obj.Spec, &spec); err != nil {
				return serviceCache{}, fmt.Errorf("spec: %v: %w", err, errdefs.ErrInvalidArgument)
			}
			ic, err := v.imageCacheFor(obj.Name, &spec, labels)
			if err != nil {
				return serviceCache{}, err
			}
			made, err := eci.CreateImageCache(ctx, ic)
			if err != nil {
				return serviceCache{}, err
			}
			return serviceCache{id: made.Metadata.ID, labels: made.Metadata.Labels, status: objectStatus(made, 0)}, nil
		},
		remove: eci.DeleteImageCache,
		named: func(id, phase, msg string, gen int64) cacheObjectStatus {
			return cacheObjectStatus{ImageCacheID: id, Phase: phase, Message: msg, ObservedGeneration: gen}
		},
	}
}

// imageCacheFor is object name's spec as a cache of the node's tenant,
// its pull secrets turned into registry credentials.
func (v *VNode) imageCacheFor(name string, spec *imageCacheObjectSpec, labels map[string]string) (*apiv1.ImageCache, error) {
	ic := &apiv1.ImageCache{
		Metadata: apiv1.ObjectMeta{Name: cacheName(name), Labels: labels},
		Spec: apiv1.ImageCacheSpec{Images: spec.Images, ImageCacheSize: spec.ImageCacheSize,
			RetentionDays: spec.RetentionDays, HostsPerZone: spec.HostsPerZone},
	}
	for i, ref := range spec.ImagePullSecrets {
		ns, name, ok := strings.Cut(ref, ":")
		if !ok || ns == "" || name == "" {
			return nil, fmt.Errorf("spec.imagePullSecrets[%d]: %q: %w", i, ref, errBadPullSecret)
		}
		data, err := v.cfg.Files.secret(ns, name)
		if err != nil {
			return nil, err
		}
		if data == nil {
			return nil, fmt.Errorf("spec.imagePullSecrets[%d]: secret %s does not exist (yet): %w", i, ref, errRetryCache)
		}
		creds, err := dockerCredentials(data)
		if err != nil {
			return nil, fmt.Errorf("spec.imagePullSecrets[%d]: %s: %v: %w", i, ref, err, errBadPullSecret)
		}
		ic.Spec.ImageRegistryCredentials = append(ic.Spec.ImageRegistryCredentials, creds...)
	}
	ic.Spec.ImageRegistryCredentials = forRegistriesOf(spec.Images, ic.Spec.ImageRegistryCredentials)
	return ic, nil
}

// forRegistriesOf are the credentials of creds for the registries of
// images, one each (a Docker config secret holds many; the service
// refuses one no image uses).
func forRegistriesOf(images []string, creds []apiv1.RegistryCredential) []apiv1.RegistryCredential {
	want := map[string]bool{}
	for _, img := range images {
		if r, err := imageref.RegistryOf(img); err == nil {
			want[r] = true
		}
	}
	var out []apiv1.RegistryCredential
	for _, c := range creds {
		if r := imageref.Registry(c.Server); want[r] {
			out, want[r] = append(out, c), false
		}
	}
	return out
}

// errBadPullSecret: an object's pull secret is misnamed or not a Docker
// config; allowed: "namespace:secret" of a kubernetes.io/dockerconfigjson
// Secret.
var errBadPullSecret = fmt.Errorf("allowed: \"namespace:secret\" naming a kubernetes.io/dockerconfigjson Secret: %w", errdefs.ErrInvalidArgument)

// objectStatus is cache c's status as its object shows it.
func objectStatus(c *apiv1.ImageCache, gen int64) cacheObjectStatus {
	return cacheObjectStatus{
		Phase: string(c.Status.Phase), Progress: c.Status.Progress, ImageCacheID: c.Metadata.ID,
		HostsReady: fmt.Sprintf("%d/%d", c.Status.HostsReady, c.Status.Hosts), Message: c.Status.Message, ObservedGeneration: gen,
		StartTime: timeShown(&c.Metadata.CreatedAt), Size: sizeShown(c.Status.SizeBytes),
		LastUpdatedTime: timeShown(&c.Status.LastUpdatedTime), ExpireDateTime: timeShown(c.Status.ExpireDateTime),
	}
}
