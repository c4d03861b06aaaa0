package vnode

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/client"
	"github.com/eci-dev/eci/internal/errdefs"
	"github.com/eci-dev/eci/internal/log"
	"github.com/eci-dev/eci/internal/profile"
	vkerrdefs "github.com/virtual-kubelet/virtual-kubelet/errdefs"
)

// Provider is the virtual-kubelet provider: every pod bound to the node is a
// container group of the instance service, idempotent by pod UID; pod
// status follows the group's, pushed through the notifier as the service's
// watch reports changes.
type Provider struct {
	cfg Config
	// profile is eci-profile's configuration (its defaultSize), when the
	// node serves the webhook; set before the pod controller runs.
	profile func() *profile.Profile

	mu     sync.Mutex
	pods   map[string]*corev1.Pod           // by namespace/name: the pods this node runs
	groups map[string]*apiv1.ContainerGroup // by pod UID
	// waiting are pods whose configMap or secret is missing, by key.
	waiting map[string]*corev1.Pod
	// annotating are pods whose instance annotations are being written: the
	// watch's next events need not write them again.
	annotating map[string]bool
	// imaging are pods whose images are being sent to their group;
	// refused the images their group refused, by pod UID (images.go).
	imaging map[string]bool
	refused map[string]string
	// resizes are the pods' in-place resizes, by pod UID (resize.go).
	resizes map[string]*resizeState
	// refusedEphemeral are ephemeral containers refused, said once, by
	// pod UID/name (ephemeral.go).
	refusedEphemeral map[string]bool
	notify           func(*corev1.Pod)
	pushed           pushedStatuses // the last status pushed of each pod (pushedstatus.go)
	synced           chan struct{}
	started          time.Time       // the node's start, as /stats/summary's
	cpu              nodeCPU         // the node's cumulative CPU
	metrics          *kubeletMetrics // the node's /metrics (kubeletmetrics.go)
	// runCtx is Run's: work a request starts and must finish lives on it.
	runCtx context.Context
}

func newProvider(cfg Config) *Provider {
	p := &Provider{cfg: cfg, pods: map[string]*corev1.Pod{}, groups: map[string]*apiv1.ContainerGroup{}, waiting: map[string]*corev1.Pod{},
		annotating: map[string]bool{}, imaging: map[string]bool{}, refused: map[string]string{}, resizes: map[string]*resizeState{}, refusedEphemeral: map[string]bool{}, synced: make(chan struct{}), started: time.Now()}
	p.metrics = newKubeletMetrics(p, cfg.NodeName)
	return p
}

func podKey(namespace, name string) string { return namespace + "/" + name }

// setStatus sets the status of pod, one of p.pods (read under p.mu).
func (p *Provider) setStatus(pod *corev1.Pod, st corev1.PodStatus) {
	p.mu.Lock()
	pod.Status = st
	p.mu.Unlock()
}

// CreatePod makes the pod's group (or finds it: the client token is the pod
// UID). A pod the node won't run is failed with the reason and an Event.
func (p *Provider) CreatePod(ctx context.Context, pod *corev1.Pod) error {
	pod = pod.DeepCopy()
	p.mu.Lock()
	p.pods[podKey(pod.Namespace, pod.Name)] = pod
	p.mu.Unlock()
	g, err := p.toGroup(ctx, pod)
	var r *refusal
	var missing *errMissing
	switch {
	case errors.As(err, &r):
		p.event(pod, corev1.EventTypeWarning, r.Reason, r.Message)
		p.setStatus(pod, refusedStatus(pod, r))
		p.push(pod)
		return nil
	case errors.As(err, &missing):
		p.event(pod, corev1.EventTypeWarning, "CreateContainerConfigError", fmt.Sprintf("Error: %s", missing.what+" not found"))
		p.mu.Lock()
		p.waiting[podKey(pod.Namespace, pod.Name)] = pod
		pod.Status = waitingStatus(pod, "CreateContainerConfigError", missing.Error())
		p.mu.Unlock()
		p.push(pod)
		return nil // created when the object appears (onObject)
	case err != nil:
		return err
	}
	began := time.Now()
	out, created, err := p.cfg.ECI.CreateGroup(ctx, g)
	p.metrics.operation("create_container_group", began)
	if errdefs.IsInvalid(err) || errdefs.IsTooLarge(err) {
		r := &refusal{Reason: "InvalidInstance", Message: err.Error()}
		p.event(pod, corev1.EventTypeWarning, r.Reason, r.Message)
		p.setStatus(pod, refusedStatus(pod, r))
		p.push(pod)
		return nil
	}
	if err != nil {
		return fmt.Errorf("create the instance of pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	if created {
		if size, from, ok := p.defaultSize(pod); ok {
			p.event(pod, corev1.EventTypeNormal, "DefaultSize", defaultSizeMessage(size, from))
		}
		for _, w := range annotationWarnings(pod) {
			p.event(pod, corev1.EventTypeWarning, "AnnotationNotSupported", w)
		}
	}
	log.G(ctx).Info("pod created as a container group", "pod", podKey(pod.Namespace, pod.Name), "group", out.Metadata.ID, "spec", out.Status.InstanceSpec)
	p.remember(ctx, out)
	// The status write of remember's push carries the instance's
	// annotations (push); a patch only where no status will be written.
	if !p.statusUnwritten(pod, writtenBack(out)) {
		return nil
	}
	return p.annotate(ctx, podKey(pod.Namespace, pod.Name), out)
}

// writtenBackKeys are the annotations the node writes on its pods.
var writtenBackKeys = []string{AnnInstanceID, AnnInstanceSpec, AnnAllocatedEIP, AnnAllocatedIPv6, AnnMatchedImageCache}

// writtenBack are g's annotations for its pod: its id, and once placed its
// size, EIP and IPv6 address.
func writtenBack(g *apiv1.ContainerGroup) map[string]string {
	ann := map[string]string{AnnInstanceID: g.Metadata.ID}
	if g.Status.InstanceSpec != "" {
		ann[AnnInstanceSpec] = g.Status.InstanceSpec
	}
	if g.Status.EIPAddress != "" {
		ann[AnnAllocatedEIP] = g.Status.EIPAddress
	}
	if g.Status.IPv6Address != "" {
		ann[AnnAllocatedIPv6] = g.Status.IPv6Address
	}
	if g.Status.MatchedImageCache != "" {
		ann[AnnMatchedImageCache] = g.Status.MatchedImageCache
	}
	return ann
}

// carries tells whether pod has every annotation of ann.
func carries(pod *corev1.Pod, ann map[string]string) bool {
	for k, v := range ann {
		if pod.Annotations[k] != v {
			return false
		}
	}
	return true
}

// annotate writes the group id, its size, its EIP and its IPv6 address (once placed) back on the pod
// (docs/spec.md section 6: eci-instance-id, eci-instance-spec, allocated-eipAddress,
// allocated-ipv6Address), and keeps the pod
// this provider reports in step: virtual-kubelet writes the status with the
// provider's copy, which must carry them.
func (p *Provider) annotate(ctx context.Context, key string, g *apiv1.ContainerGroup) error {
	p.mu.Lock()
	pod := p.pods[key]
	p.mu.Unlock()
	ann := writtenBack(g)
	if pod == nil || string(pod.UID) != g.Metadata.Labels[LabelPodUID] || carries(pod, ann) {
		return nil
	}
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": ann}})
	updated, err := p.cfg.Kube.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.MergePatchType, patch, metav1.PatchOptions{})
	if err != nil {
		return fmt.Errorf("annotate pod %s with its instance: %w", key, err)
	}
	p.mu.Lock()
	var out *corev1.Pod
	if cur := p.pods[key]; cur != nil && cur.UID == updated.UID {
		cur.Annotations, cur.ResourceVersion = updated.Annotations, updated.ResourceVersion
		out = p.withStatus(cur)
	}
	p.mu.Unlock()
	if out != nil {
		p.push(out) // the last status write carries the annotations
	}
	return nil
}

// UpdatePod: of what a pod may change (its metadata, its containers'
// images and resources, activeDeadlineSeconds, tolerations), images and
// the deadline change the group (images.go), and so do resources
// (resize.go); labels and annotations stay the pod's. It never
// fails: virtual-kubelet would mark the pod as failed by the provider.
func (p *Provider) UpdatePod(ctx context.Context, pod *corev1.Pod) error {
	key := podKey(pod.Namespace, pod.Name)
	p.mu.Lock()
	if cur, ok := p.pods[key]; ok && cur.UID != pod.UID {
		// Made again under its name (a StatefulSet's pod) while the old
		// one's instance ends: virtual-kubelet, which knows pods by name,
		// calls it an update, and may never call DeletePod for the old
		// one (both events were queued under the name). The old pod has
		// left the apiserver: its instance goes; the new pod gets its own.
		old := p.groups[string(cur.UID)]
		if w := p.waiting[key]; w != nil && w.UID == cur.UID {
			delete(p.waiting, key)
		}
		p.mu.Unlock()
		if old != nil {
			if _, err := p.cfg.ECI.DeleteGroup(ctx, old.Metadata.ID, client.DeleteOptions{}); err != nil && !errdefs.IsNotFound(err) {
				return fmt.Errorf("delete the instance of pod %s (uid %s), made again: %w", key, cur.UID, err)
			}
		}
		return p.CreatePod(ctx, pod)
	}
	if cur, ok := p.pods[key]; ok {
		st := cur.Status
		cur = pod.DeepCopy()
		cur.Status = st
		p.pods[key] = cur
	}
	p.mu.Unlock()
	p.syncUpdates(ctx, key)
	return nil
}

// DeletePod deletes the pod's group with the pod's grace period; once the
// group is gone the pod gets its terminal status.
func (p *Provider) DeletePod(ctx context.Context, pod *corev1.Pod) error {
	p.mu.Lock()
	g := p.groups[string(pod.UID)]
	p.mu.Unlock()
	if g == nil {
		p.gone(ctx, pod)
		return nil
	}
	opts := client.DeleteOptions{GracePeriodSeconds: pod.DeletionGracePeriodSeconds}
	began := time.Now()
	_, err := p.cfg.ECI.DeleteGroup(ctx, g.Metadata.ID, opts)
	p.metrics.operation("delete_container_group", began)
	if err != nil {
		if errdefs.IsNotFound(err) {
			p.gone(ctx, pod)
			return nil
		}
		return fmt.Errorf("delete the instance of pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	return nil
}

// gone gives a pod whose group no longer exists its terminal status; a pod
// being deleted is then removed from the apiserver, as the kubelet removes
// it once its containers stopped (grace 0, on the pod's UID).
// (virtual-kubelet force-deletes a terminated pod only when its spec or
// metadata change again, which they need not do: without this such a pod
// stayed Terminating.)
func (p *Provider) gone(ctx context.Context, pod *corev1.Pod) {
	p.mu.Lock()
	key := podKey(pod.Namespace, pod.Name)
	cur := p.pods[key]
	// A new pod of the same name means this one has left the apiserver:
	// its name, and what the node holds by name, are the new one's.
	renamed := cur != nil && cur.UID != pod.UID
	if !renamed {
		delete(p.pods, key)
		delete(p.waiting, key)
	}
	delete(p.groups, string(pod.UID))
	delete(p.refused, string(pod.UID))
	delete(p.resizes, string(pod.UID))
	for key := range p.refusedEphemeral {
		if strings.HasPrefix(key, string(pod.UID)+"/") {
			delete(p.refusedEphemeral, key)
		}
	}
	p.metrics.forget(string(pod.UID))
	p.mu.Unlock()
	if renamed {
		p.pushed.forget(string(pod.UID))
		return
	}
	if cur == nil {
		cur = pod.DeepCopy()
	}
	cur.Status = deletedStatus(cur)
	p.push(cur)
	p.pushed.forget(string(pod.UID)) // (its last write's echo is compared whole: rare)
	deleting := pod.DeletionTimestamp != nil
	if p.cfg.Pods != nil {
		if live, err := p.cfg.Pods.Pods(pod.Namespace).Get(pod.Name); err == nil && live.UID == pod.UID {
			deleting = live.DeletionTimestamp != nil
		}
	}
	if !deleting || p.cfg.Kube == nil {
		return
	}
	// The caller's context may end with its request: the node's lives on.
	runCtx := p.background(ctx)
	go func() {
		ctx, cancel := context.WithTimeout(runCtx, 30*time.Second)
		defer cancel()
		zero := int64(0)
		uid := pod.UID
		err := p.cfg.Kube.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero, Preconditions: &metav1.Preconditions{UID: &uid}})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			log.G(runCtx).Warn("remove a deleted pod whose instance is gone (virtual-kubelet removes it at its next sync)", "pod", key, "err", err)
		}
	}()
}

// background is the context of work a request starts that must outlive
// it: the node's (Run's), or ctx before Run.
func (p *Provider) background(ctx context.Context) context.Context {
	if p.runCtx != nil {
		return p.runCtx
	}
	return ctx
}

// GetPod returns a pod this node runs, with its current status.
func (p *Provider) GetPod(_ context.Context, namespace, name string) (*corev1.Pod, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pod, ok := p.pods[podKey(namespace, name)]
	if !ok {
		return nil, vkerrdefs.NotFoundf("pod %s/%s is not on this virtual node", namespace, name)
	}
	return p.withStatus(pod), nil
}

// GetPodStatus returns a pod's current status.
func (p *Provider) GetPodStatus(ctx context.Context, namespace, name string) (*corev1.PodStatus, error) {
	pod, err := p.GetPod(ctx, namespace, name)
	if err != nil {
		return nil, err
	}
	return &pod.Status, nil
}

// GetPods lists the pods this node runs.
func (p *Provider) GetPods(context.Context) ([]*corev1.Pod, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]*corev1.Pod, 0, len(p.pods))
	for _, pod := range p.pods {
		out = append(out, p.withStatus(pod))
	}
	return out, nil
}

// withStatus is a copy of pod with its group's status (mu held).
func (p *Provider) withStatus(pod *corev1.Pod) *corev1.Pod {
	out := pod.DeepCopy()
	if g := p.groups[string(pod.UID)]; g != nil {
		out.Status = p.podStatus(pod, g)
	}
	return out
}

// NotifyPods registers the callback that pushes pod status to Kubernetes.
func (p *Provider) NotifyPods(_ context.Context, cb func(*corev1.Pod)) {
	p.mu.Lock()
	p.notify = cb
	p.mu.Unlock()
}

// push hands a pod's status to virtual-kubelet, with the cluster's current
// metadata (the pod lister's) plus the instance's annotations: virtual-
// kubelet writes the pod whole to pods/status, which keeps its labels and
// annotations, so that write carries the annotations and no patch of its
// own is needed (a patch per pod was a third of a burst's pod writes, and
// raced the status writes into conflicts). statusWriter gives the write
// the metadata the pod has when it is made.
//
// A push may wait for the previous one to be seen back (pushedstatus.go);
// it goes only while the cluster has the pod. A terminal status never
// waits (the pod is forgotten right after it).
func (p *Provider) push(pod *corev1.Pod) {
	pod = pod.DeepCopy() // (callers keep theirs: pods of p.pods)
	p.mu.Lock()
	cb := p.notify
	p.mu.Unlock()
	live := p.withClusterMeta(pod)
	switch {
	case cb == nil:
	case !live: // (a pod gone from the apiserver: no write comes back)
		cb(pod)
	case pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed:
		p.pushed.send(string(pod.UID), &pod.Status, true, func() { cb(pod) })
	default:
		p.pushed.send(string(pod.UID), &pod.Status, false, func() {
			if p.withClusterMeta(pod) {
				cb(pod)
			}
		})
	}
}

// withClusterMeta gives pod the cluster's current metadata (the pod
// lister's) plus the instance annotations this node writes; live is false
// when the cluster no longer has the pod.
func (p *Provider) withClusterMeta(pod *corev1.Pod) (live bool) {
	if p.cfg.Pods == nil { // (tests without a lister)
		return true
	}
	cur, err := p.cfg.Pods.Pods(pod.Namespace).Get(pod.Name)
	if err != nil || cur.UID != pod.UID {
		return false
	}
	p.takeMeta(pod, cur)
	return true
}

// takeMeta gives pod the metadata of cur (the same pod as the cluster has
// it) plus the instance annotations this node writes.
func (p *Provider) takeMeta(pod, cur *corev1.Pod) {
	p.mu.Lock()
	var own map[string]string
	if g := p.groups[string(pod.UID)]; g != nil {
		own = writtenBack(g)
	}
	p.mu.Unlock()
	meta := cur.ObjectMeta.DeepCopy()
	for _, k := range writtenBackKeys {
		v := pod.Annotations[k]
		if w := own[k]; w != "" {
			v = w
		}
		if v != "" {
			if meta.Annotations == nil {
				meta.Annotations = map[string]string{}
			}
			meta.Annotations[k] = v
		}
	}
	pod.ObjectMeta = *meta
}

// remember records a group and pushes its pod's status; a size the pod
// does not carry yet is written on it in the background (on the node's
// context: ctx may be a request's).
func (p *Provider) remember(ctx context.Context, g *apiv1.ContainerGroup) {
	uid := g.Metadata.Labels[LabelPodUID]
	key := podKey(g.Metadata.Labels[LabelPodNamespace], g.Metadata.Labels[LabelPodName])
	p.mu.Lock()
	cur := p.groups[uid]
	if cur != nil && newer(cur.Metadata.ResourceVersion, g.Metadata.ResourceVersion) {
		p.mu.Unlock()
		return // an older version than what is known
	}
	p.groups[uid] = g
	pod := p.pods[key]
	var out *corev1.Pod
	var news []func()
	if pod != nil && string(pod.UID) == uid {
		out = p.withStatus(pod)
		news = p.resizeNews(pod, &out.Status)
		pod.Status = out.Status
		if cur != nil && cur.Status.RunningAt == nil && g.Status.RunningAt != nil {
			p.metrics.observeStart(uid, pod.CreationTimestamp.Time, *g.Status.RunningAt)
		}
	}
	p.mu.Unlock()
	for _, say := range news {
		say()
	}
	if out != nil {
		p.push(out)
		p.syncUpdates(ctx, key)
		if g.Status.InstanceSpec != "" && p.statusUnwritten(out, writtenBack(g)) && p.startAnnotating(key) {
			bg := p.background(ctx)
			go func() {
				defer p.doneAnnotating(key)
				ctx, cancel := context.WithTimeout(bg, 30*time.Second)
				defer cancel()
				if err := p.annotate(ctx, key, g); err != nil {
					log.G(bg).Warn("annotate a pod", "pod", key, "err", err)
				}
			}()
		}
	}
}

func (p *Provider) event(pod *corev1.Pod, typ, reason, msg string) {
	if p.cfg.Recorder != nil {
		p.cfg.Recorder.Event(pod, typ, reason, msg)
	}
}

// newer tells whether resource version a is after b.
func newer(a, b string) bool {
	x, err1 := strconv.ParseInt(a, 10, 64)
	y, err2 := strconv.ParseInt(b, 10, 64)
	return err1 == nil && err2 == nil && x > y
}

// statusUnwritten tells whether pod lacks annotations ann in the cluster
// and virtual-kubelet will write it no status to carry them: it writes none
// for a pod the cluster has as ended, or without a callback.
func (p *Provider) statusUnwritten(pod *corev1.Pod, ann map[string]string) bool {
	p.mu.Lock()
	cb := p.notify
	p.mu.Unlock()
	if p.cfg.Pods == nil {
		return !carries(pod, ann)
	}
	cur, err := p.cfg.Pods.Pods(pod.Namespace).Get(pod.Name)
	if err != nil || cur.UID != pod.UID || carries(cur, ann) {
		return false
	}
	return cb == nil || cur.Status.Phase == corev1.PodSucceeded || cur.Status.Phase == corev1.PodFailed
}

func (p *Provider) startAnnotating(key string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.annotating[key] {
		return false
	}
	p.annotating[key] = true
	return true
}

func (p *Provider) doneAnnotating(key string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.annotating, key)
}
