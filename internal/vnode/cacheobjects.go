package vnode

import (
	"context"
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

	"github.com/eci-dev/eci/internal/errdefs"
	"github.com/eci-dev/eci/internal/log"
)

// The cluster's cache objects (ImageCache: imagecaches.go; DataCache:
// datacaches.go; their definitions in crds/, the chart's crds/) are kept in
// the instance service as caches of the node's tenant: every
// cacheSyncEvery the node makes a cache for each object (again when its
// spec changes: a new one, then the old one goes), writes the cache's
// status on the object (kubectl get imagecache, datacache), and removes
// the caches of objects deleted. A cache is labelled with its object's uid
// and generation. One node per cluster should sync them
// (Config.ImageCaches).

const (
	cacheSyncEvery       = 5 * time.Second
	labelCacheUID        = labelPrefix + "imagecache-uid"
	labelCacheGeneration = labelPrefix + "imagecache-generation"
)

// cacheObject is a cache object of the cluster: its spec as the kind
// reads it, its status the union of the kinds' (each sets its own).
type cacheObject struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              json.RawMessage   `json:"spec"`
	Status            cacheObjectStatus `json:"status,omitempty"`
}

type cacheObjectStatus struct {
	Phase              string       `json:"phase,omitempty"`
	Progress           string       `json:"progress,omitempty"`
	ImageCacheID       string       `json:"imageCacheId,omitempty"`
	DataCacheID        string       `json:"dataCacheId,omitempty"`
	HostsReady         string       `json:"hostsReady,omitempty"`
	Size               string       `json:"size,omitempty"`
	Message            string       `json:"message,omitempty"`
	ObservedGeneration int64        `json:"observedGeneration,omitempty"`
	StartTime          *metav1.Time `json:"startTime,omitempty"`
	LastUpdatedTime    *metav1.Time `json:"lastUpdatedTime,omitempty"`
	ExpireDateTime     *metav1.Time `json:"expireDateTime,omitempty"`
}

// id is the cache the status names.
func (s cacheObjectStatus) id() string { return s.ImageCacheID + s.DataCacheID }

// serviceCache is what the sync needs of a cache of the service.
type serviceCache struct {
	id     string
	labels map[string]string
	status cacheObjectStatus // as its object shows it
}

// cacheKind is one kind of cache object and its caches in the service.
type cacheKind struct {
	kind, noun, path string // "ImageCache", "image cache", the objects' API path
	failed, creating string // its phases
	list             func(ctx context.Context) ([]serviceCache, error)
	// create makes obj's cache with labels; an invalid spec is an error
	// of kind errdefs.ErrInvalidArgument, one tried again at each pass
	// errRetryCache.
	create func(ctx context.Context, obj *cacheObject, labels map[string]string) (serviceCache, error)
	remove func(ctx context.Context, id string) error
	// named is a status naming cache id with phase and message.
	named func(id, phase, msg string, gen int64) cacheObjectStatus
}

// errRetryCache: an object's cache can't be made yet (a secret not made,
// the tenant's limit); tried again at each pass, saying why.
var errRetryCache = errors.New("tried again at each pass")

// installCRD creates a kind's custom resource definition unless it exists
// (eci up and the test bed; a cluster installs the chart's).
func installCRD(ctx context.Context, kube kubernetes.Interface, kind string, crd []byte) error {
	body, err := yaml.YAMLToJSON(crd)
	if err != nil {
		return err
	}
	err = kube.CoreV1().RESTClient().Post().AbsPath("/apis/apiextensions.k8s.io/v1/customresourcedefinitions").
		Body(body).SetHeader("Content-Type", "application/json").Do(ctx).Error()
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create the %s resource definition: %w", kind, err)
	}
	return nil
}

// syncCacheObjects keeps the cluster's objects of kind k until ctx ends.
func (v *VNode) syncCacheObjects(ctx context.Context, k *cacheKind) {
	ctx = log.With(ctx, "part", strings.ToLower(k.kind)+"s")
	t := time.NewTicker(cacheSyncEvery)
	defer t.Stop()
	missing := false
	for {
		err := v.syncCacheObjectsOnce(ctx, k)
		switch {
		case apierrors.IsNotFound(err):
			if !missing {
				log.G(ctx).Info("no "+k.kind+" resource in the cluster (the chart's crds/ install it); looked for again", "every", cacheSyncEvery)
			}
			missing = true
		case err != nil && ctx.Err() == nil:
			log.G(ctx).Warn(k.kind+" objects", "err", err)
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

func (v *VNode) syncCacheObjectsOnce(ctx context.Context, k *cacheKind) error {
	raw, err := v.cfg.Kube.CoreV1().RESTClient().Get().AbsPath(k.path).DoRaw(ctx)
	if err != nil {
		return err
	}
	var list struct {
		Items []cacheObject `json:"items"`
	}
	if err := json.Unmarshal(raw, &list); err != nil {
		return fmt.Errorf("decode the %s list: %w", k.kind, err)
	}
	caches, err := k.list(ctx)
	if err != nil {
		return err
	}
	byUID := map[string][]serviceCache{}
	for _, c := range caches {
		if uid := c.labels[labelCacheUID]; uid != "" && c.labels[LabelCluster] == v.cfg.ClusterID {
			byUID[uid] = append(byUID[uid], c)
		}
	}
	var errs []error
	for i := range list.Items {
		obj := &list.Items[i]
		errs = append(errs, v.syncCacheObject(ctx, k, obj, byUID[string(obj.UID)]))
		delete(byUID, string(obj.UID))
	}
	for _, gone := range byUID { // their objects were deleted
		for _, c := range gone {
			if err := k.remove(ctx, c.id); err != nil && !errdefs.IsNotFound(err) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// syncCacheObject makes obj's cache if its spec has none yet, removes the
// caches of its earlier specs, and writes the cache's status on obj.
func (v *VNode) syncCacheObject(ctx context.Context, k *cacheKind, obj *cacheObject, have []serviceCache) error {
	gen := strconv.FormatInt(obj.Generation, 10)
	var cur *serviceCache
	var stale []serviceCache
	for i := range have {
		if have[i].labels[labelCacheGeneration] == gen && cur == nil {
			cur = &have[i]
		} else {
			stale = append(stale, have[i])
		}
	}
	st := obj.Status
	tried := st.ObservedGeneration == obj.Generation // this spec was made (or refused) before
	switch {
	case cur != nil:
		st = cur.status
		st.ObservedGeneration = obj.Generation
	case tried && st.id() != "":
		st.Phase, st.Message = k.failed, fmt.Sprintf("%s %s is gone from the instance service (its retention ended, or it was deleted)", k.noun, st.id())
	case tried && st.Phase == k.failed:
		// refused: changed only with its spec
	default:
		made, err := k.create(ctx, obj, map[string]string{LabelCluster: v.cfg.ClusterID, labelCacheUID: string(obj.UID), labelCacheGeneration: gen})
		switch {
		case errdefs.IsInvalid(err):
			st = k.named("", k.failed, err.Error(), obj.Generation)
		case errdefs.IsPermissionDenied(err) || errors.Is(err, errRetryCache):
			st = k.named("", k.creating, err.Error(), 0)
		case err != nil:
			return fmt.Errorf("%s %s: %w", k.kind, obj.Name, err)
		default:
			st = made.status
			st.ObservedGeneration = obj.Generation
		}
	}
	if cur != nil || st.id() != "" {
		for _, c := range stale { // an earlier spec's, once this one's exists
			if err := k.remove(ctx, c.id); err != nil && !errdefs.IsNotFound(err) {
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
	err := v.cfg.Kube.CoreV1().RESTClient().Put().AbsPath(k.path, obj.Name, "status").
		Body(body).SetHeader("Content-Type", "application/json").Do(ctx).Error()
	if err != nil && !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) { // (the next pass reads it again)
		return fmt.Errorf("%s %s status: %w", k.kind, obj.Name, err)
	}
	return nil
}

// cacheName is an object's name as a cache's (a DNS label).
func cacheName(name string) string {
	name = strings.ReplaceAll(name, ".", "-")
	if len(name) > 63 {
		name = strings.TrimRight(name[:63], "-")
	}
	return name
}

// sizeShown is a size as kubectl shows a cache's.
func sizeShown(n int64) string {
	if n <= 0 {
		return ""
	}
	return fmt.Sprintf("%.1fMi", float64(n)/(1<<20))
}

// timeShown is t for an object's status (nil when zero).
func timeShown(t *time.Time) *metav1.Time {
	if t == nil || t.IsZero() {
		return nil
	}
	return &metav1.Time{Time: *t}
}
