package vnode

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/errdefs"
	"github.com/eci-dev/eci/internal/imageref"
	"github.com/eci-dev/eci/internal/log"
)

// The cluster's ImageCache objects (crds/imagecache.yaml, the chart's
// crds/) are kept in the instance service as caches of the node's tenant:
// every imageCacheSyncEvery the node makes a cache for each object (again
// when its spec changes: a new one, then the old one goes), writes the
// cache's status on the object (kubectl get imagecache), and removes the
// caches of objects deleted. A cache is labelled with its object's uid and
// generation. One node per cluster should sync them (Config.ImageCaches).

//go:embed crds/imagecache.yaml
var imageCacheCRD []byte

const (
	imageCachesPath     = "/apis/eci.alibabacloud.com/v1/imagecaches"
	imageCacheSyncEvery = 5 * time.Second
	labelIMCUID         = labelPrefix + "imagecache-uid"
	labelIMCGeneration  = labelPrefix + "imagecache-generation"
)

// imageCacheObject is an ImageCache object of the cluster.
type imageCacheObject struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              imageCacheObjectSpec   `json:"spec"`
	Status            imageCacheObjectStatus `json:"status,omitempty"`
}

type imageCacheObjectSpec struct {
	Images           []string `json:"images"`
	ImagePullSecrets []string `json:"imagePullSecrets,omitempty"`
	ImageCacheSize   int      `json:"imageCacheSize,omitempty"`
	RetentionDays    int      `json:"retentionDays,omitempty"`
	HostsPerZone     int      `json:"hostsPerZone,omitempty"`
}

type imageCacheObjectStatus struct {
	Phase              string       `json:"phase,omitempty"`
	Progress           string       `json:"progress,omitempty"`
	ImageCacheID       string       `json:"imageCacheId,omitempty"`
	HostsReady         string       `json:"hostsReady,omitempty"`
	Size               string       `json:"size,omitempty"`
	Message            string       `json:"message,omitempty"`
	ObservedGeneration int64        `json:"observedGeneration,omitempty"`
	StartTime          *metav1.Time `json:"startTime,omitempty"`
	LastUpdatedTime    *metav1.Time `json:"lastUpdatedTime,omitempty"`
	ExpireDateTime     *metav1.Time `json:"expireDateTime,omitempty"`
}

// InstallImageCacheCRD creates the ImageCache custom resource definition
// unless it exists (eci up and the test bed; a cluster installs the
// chart's).
func InstallImageCacheCRD(ctx context.Context, kube kubernetes.Interface) error {
	body, err := yaml.YAMLToJSON(imageCacheCRD)
	if err != nil {
		return err
	}
	err = kube.CoreV1().RESTClient().Post().AbsPath("/apis/apiextensions.k8s.io/v1/customresourcedefinitions").
		Body(body).SetHeader("Content-Type", "application/json").Do(ctx).Error()
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create the ImageCache resource definition: %w", err)
	}
	return nil
}

// syncImageCaches keeps the cluster's ImageCache objects until ctx ends.
func (v *VNode) syncImageCaches(ctx context.Context) {
	ctx = log.With(ctx, "part", "image-caches")
	t := time.NewTicker(imageCacheSyncEvery)
	defer t.Stop()
	missing := false
	for {
		err := v.syncImageCachesOnce(ctx)
		switch {
		case apierrors.IsNotFound(err):
			if !missing {
				log.G(ctx).Info("no ImageCache resource in the cluster (the chart's crds/ install it); looked for again", "every", imageCacheSyncEvery)
			}
			missing = true
		case err != nil && ctx.Err() == nil:
			log.G(ctx).Warn("image caches", "err", err)
		default:
			missing = false
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (v *VNode) syncImageCachesOnce(ctx context.Context) error {
	raw, err := v.cfg.Kube.CoreV1().RESTClient().Get().AbsPath(imageCachesPath).DoRaw(ctx)
	if err != nil {
		return err
	}
	var list struct {
		Items []imageCacheObject `json:"items"`
	}
	if err := json.Unmarshal(raw, &list); err != nil {
		return fmt.Errorf("decode the ImageCache list: %w", err)
	}
	caches, err := v.cfg.ECI.ListImageCaches(ctx)
	if err != nil {
		return err
	}
	byUID := map[string][]apiv1.ImageCache{}
	for _, c := range caches {
		if uid := c.Metadata.Labels[labelIMCUID]; uid != "" && c.Metadata.Labels[LabelCluster] == v.cfg.ClusterID {
			byUID[uid] = append(byUID[uid], c)
		}
	}
	var errs []error
	for i := range list.Items {
		obj := &list.Items[i]
		errs = append(errs, v.syncImageCache(ctx, obj, byUID[string(obj.UID)]))
		delete(byUID, string(obj.UID))
	}
	for _, gone := range byUID { // their objects were deleted
		for _, c := range gone {
			if err := v.cfg.ECI.DeleteImageCache(ctx, c.Metadata.ID); err != nil && !errdefs.IsNotFound(err) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// syncImageCache makes obj's cache if its spec has none yet, removes the
// caches of its earlier specs, and writes the cache's status on obj.
func (v *VNode) syncImageCache(ctx context.Context, obj *imageCacheObject, have []apiv1.ImageCache) error {
	gen := strconv.FormatInt(obj.Generation, 10)
	var cur *apiv1.ImageCache
	var stale []apiv1.ImageCache
	for i := range have {
		if have[i].Metadata.Labels[labelIMCGeneration] == gen && cur == nil {
			cur = &have[i]
		} else {
			stale = append(stale, have[i])
		}
	}
	st := obj.Status
	tried := st.ObservedGeneration == obj.Generation // this spec was made (or refused) before
	switch {
	case cur != nil:
		st = objectStatus(cur, obj.Generation)
	case tried && st.ImageCacheID != "":
		st.Phase, st.Message = string(apiv1.ImageCacheFailed), fmt.Sprintf("image cache %s is gone from the instance service (its retention ended, or it was deleted)", st.ImageCacheID)
	case tried && st.Phase == string(apiv1.ImageCacheFailed):
		// refused: changed only with its spec
	default:
		ic, err := v.imageCacheFor(obj, gen)
		var made *apiv1.ImageCache
		if err == nil {
			made, err = v.cfg.ECI.CreateImageCache(ctx, ic)
		}
		switch {
		case errdefs.IsInvalid(err):
			st = imageCacheObjectStatus{Phase: string(apiv1.ImageCacheFailed), Message: err.Error(), ObservedGeneration: obj.Generation}
		case errdefs.IsPermissionDenied(err) || errors.Is(err, errMissingPullSecret): // (the tenant's limit, a secret not made yet: tried again at each pass, saying why)
			st = imageCacheObjectStatus{Phase: string(apiv1.ImageCacheCreating), Message: err.Error()}
		case err != nil:
			return fmt.Errorf("ImageCache %s: %w", obj.Name, err)
		default:
			st = objectStatus(made, obj.Generation)
		}
	}
	if cur != nil || st.ImageCacheID != "" {
		for _, c := range stale { // an earlier spec's, once this one's exists
			if err := v.cfg.ECI.DeleteImageCache(ctx, c.Metadata.ID); err != nil && !errdefs.IsNotFound(err) {
				return err
			}
		}
	}
	was, _ := json.Marshal(obj.Status) // (as the API has it: times in seconds)
	if now, _ := json.Marshal(st); string(now) == string(was) {
		return nil
	}
	obj.Status = st
	body, _ := json.Marshal(obj)
	err := v.cfg.Kube.CoreV1().RESTClient().Put().AbsPath(imageCachesPath, obj.Name, "status").
		Body(body).SetHeader("Content-Type", "application/json").Do(ctx).Error()
	if err != nil && !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) { // (the next pass reads it again)
		return fmt.Errorf("ImageCache %s status: %w", obj.Name, err)
	}
	return nil
}

// imageCacheFor is obj's spec as a cache of the node's tenant, its pull
// secrets turned into registry credentials.
func (v *VNode) imageCacheFor(obj *imageCacheObject, gen string) (*apiv1.ImageCache, error) {
	ic := &apiv1.ImageCache{
		Metadata: apiv1.ObjectMeta{Name: imageCacheName(obj.Name), Labels: map[string]string{
			LabelCluster: v.cfg.ClusterID, labelIMCUID: string(obj.UID), labelIMCGeneration: gen}},
		Spec: apiv1.ImageCacheSpec{Images: obj.Spec.Images, ImageCacheSize: obj.Spec.ImageCacheSize,
			RetentionDays: obj.Spec.RetentionDays, HostsPerZone: obj.Spec.HostsPerZone},
	}
	for i, ref := range obj.Spec.ImagePullSecrets {
		ns, name, ok := strings.Cut(ref, ":")
		if !ok || ns == "" || name == "" {
			return nil, fmt.Errorf("spec.imagePullSecrets[%d]: %q: %w", i, ref, errBadPullSecret)
		}
		data, err := v.cfg.Files.secret(ns, name)
		if err != nil {
			return nil, err
		}
		if data == nil {
			return nil, fmt.Errorf("spec.imagePullSecrets[%d]: secret %s does not exist (yet): %w", i, ref, errMissingPullSecret)
		}
		creds, err := dockerCredentials(data)
		if err != nil {
			return nil, fmt.Errorf("spec.imagePullSecrets[%d]: %s: %v: %w", i, ref, err, errBadPullSecret)
		}
		ic.Spec.ImageRegistryCredentials = append(ic.Spec.ImageRegistryCredentials, creds...)
	}
	ic.Spec.ImageRegistryCredentials = forRegistriesOf(obj.Spec.Images, ic.Spec.ImageRegistryCredentials)
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

// errMissingPullSecret: an object's pull secret does not exist; tried
// again at each pass.
var errMissingPullSecret = errors.New("missing pull secret")

// errBadPullSecret: an object's pull secret is misnamed or not a Docker
// config; allowed: "namespace:secret" of a kubernetes.io/dockerconfigjson
// Secret.
var errBadPullSecret = fmt.Errorf("allowed: \"namespace:secret\" naming a kubernetes.io/dockerconfigjson Secret: %w", errdefs.ErrInvalidArgument)

// imageCacheName is an object's name as a cache's (a DNS label).
func imageCacheName(name string) string {
	name = strings.ReplaceAll(name, ".", "-")
	if len(name) > 63 {
		name = strings.TrimRight(name[:63], "-")
	}
	return name
}

// objectStatus is cache c's status as its object shows it.
func objectStatus(c *apiv1.ImageCache, gen int64) imageCacheObjectStatus {
	st := imageCacheObjectStatus{
		Phase: string(c.Status.Phase), Progress: c.Status.Progress, ImageCacheID: c.Metadata.ID,
		HostsReady: fmt.Sprintf("%d/%d", c.Status.HostsReady, c.Status.Hosts), Message: c.Status.Message, ObservedGeneration: gen,
		StartTime: &metav1.Time{Time: c.Metadata.CreatedAt},
	}
	if c.Status.SizeBytes > 0 {
		st.Size = fmt.Sprintf("%.1fMi", float64(c.Status.SizeBytes)/(1<<20))
	}
	if !c.Status.LastUpdatedTime.IsZero() {
		st.LastUpdatedTime = &metav1.Time{Time: c.Status.LastUpdatedTime}
	}
	if c.Status.ExpireDateTime != nil {
		st.ExpireDateTime = &metav1.Time{Time: *c.Status.ExpireDateTime}
	}
	return st
}
