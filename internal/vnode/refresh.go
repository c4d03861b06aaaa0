package vnode

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/client"
	"github.com/eci-dev/eci/internal/errdefs"
	"github.com/eci-dev/eci/internal/log"
)

// Files payloads follow the cluster: a configMap or secret that changes
// reaches the files of every pod that mounts it (the agent rewrites them in
// place), one that appears starts the pods that waited for it, and
// service-account tokens are renewed long before they expire.

// tokenRefresh is how often the payloads (and so the tokens, valid an hour
// by default) are rebuilt.
const tokenRefresh = 20 * time.Minute

// handleObjects hooks the configMap and secret informers to the pods.
func (v *VNode) handleObjects(ctx context.Context) {
	p := v.provider
	handle := func(kind string) cache.ResourceEventHandler {
		on := func(obj any) {
			if m, ok := obj.(interface {
				GetNamespace() string
				GetName() string
			}); ok {
				p.onObject(ctx, kind, m.GetNamespace(), m.GetName())
			}
		}
		return cache.ResourceEventHandlerFuncs{AddFunc: on, UpdateFunc: func(_, obj any) { on(obj) }}
	}
	_, _ = v.objects.Core().V1().ConfigMaps().Informer().AddEventHandler(handle("configmap"))
	_, _ = v.objects.Core().V1().Secrets().Informer().AddEventHandler(handle("secret"))
	_, _ = v.objects.Node().V1().RuntimeClasses().Informer().AddEventHandler(handle("runtimeclass"))
}

// refreshTokens rebuilds every running pod's payloads (so its tokens) every
// tokenRefresh.
func (v *VNode) refreshTokens(ctx context.Context) {
	every(ctx, tokenRefresh, func() {
		for _, pod := range v.provider.running(nil) {
			v.provider.refreshFiles(ctx, pod)
		}
	})
}

// onObject retries the pods that waited for a configMap or secret and
// refreshes the files of those that mount it.
func (p *Provider) onObject(ctx context.Context, kind, namespace, name string) {
	p.mu.Lock()
	var retry []*corev1.Pod
	for key, pod := range p.waiting {
		if (pod.Namespace == namespace || namespace == "") && references(pod, kind, name) {
			retry = append(retry, pod)
			delete(p.waiting, key)
		}
	}
	p.mu.Unlock()
	for _, pod := range retry {
		if err := p.CreatePod(ctx, pod); err != nil {
			log.G(ctx).Info("pod still waits", "pod", podKey(pod.Namespace, pod.Name), "err", err)
		}
	}
	for _, pod := range p.running(func(pod *corev1.Pod) bool { return pod.Namespace == namespace && references(pod, kind, name) }) {
		p.refreshFiles(ctx, pod)
	}
}

// running are (copies of) the pods that have a group and that keep says
// to keep (nil: all); keep sees the node's own copy, under its lock (a
// cluster's configMap events must not copy every pod of the node).
func (p *Provider) running(keep func(*corev1.Pod) bool) []*corev1.Pod {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []*corev1.Pod
	for _, pod := range p.pods {
		if p.groups[string(pod.UID)] != nil && (keep == nil || keep(pod)) {
			out = append(out, pod.DeepCopy())
		}
	}
	return out
}

// refreshFiles sends the pod's current files payloads to its group when
// they changed.
func (p *Provider) refreshFiles(ctx context.Context, pod *corev1.Pod) {
	p.mu.Lock()
	g := p.groups[string(pod.UID)]
	p.mu.Unlock()
	if g == nil || g.Status.State.Terminal() {
		return
	}
	vols, err := p.volumes(ctx, pod)
	if err != nil {
		log.G(ctx).Warn("files of a pod", "pod", podKey(pod.Namespace, pod.Name), "err", err)
		return
	}
	cur := map[string]*apiv1.FilesVolume{}
	for _, v := range g.Spec.Volumes {
		cur[v.Name] = v.Files
	}
	changed := map[string]apiv1.FilesVolume{}
	for _, v := range vols {
		if v.Files != nil && !sameFiles(cur[v.Name], v.Files) {
			changed[v.Name] = *v.Files
		}
	}
	if len(changed) == 0 {
		return
	}
	began := time.Now()
	out, err := p.cfg.ECI.UpdateGroup(ctx, g.Metadata.ID, apiv1.GroupUpdate{Files: changed})
	p.metrics.operation("update_container_group", began)
	if err != nil {
		log.G(ctx).Warn("update the files of a pod", "pod", podKey(pod.Namespace, pod.Name), "err", err)
		return
	}
	p.remember(ctx, out)
}

// sameFiles tells whether the group's files (cur: the service returns their
// SHA256, not their content) are the payload next.
func sameFiles(cur, next *apiv1.FilesVolume) bool {
	if cur == nil || next == nil || len(cur.Files) != len(next.Files) {
		return cur == next
	}
	for i, f := range cur.Files {
		n := next.Files[i]
		if f.Path != n.Path || !sameMode(f.Mode, n.Mode) {
			return false
		}
		if f.SHA256 != "" {
			sum := sha256.Sum256(n.Content)
			if f.SHA256 != hex.EncodeToString(sum[:]) {
				return false
			}
		} else if !bytes.Equal(f.Content, n.Content) {
			return false
		}
	}
	return sameMode(cur.DefaultMode, next.DefaultMode)
}

func sameMode(a, b *int32) bool { return (a == nil && b == nil) || (a != nil && b != nil && *a == *b) }

// references tells whether pod mounts (or takes env from) the configMap or
// secret name.
func references(pod *corev1.Pod, kind, name string) bool {
	if kind == "runtimeclass" {
		return pod.Spec.RuntimeClassName != nil && *pod.Spec.RuntimeClassName == name
	}
	for _, v := range pod.Spec.Volumes {
		switch {
		case kind == "configmap" && v.ConfigMap != nil && v.ConfigMap.Name == name,
			kind == "secret" && v.Secret != nil && v.Secret.SecretName == name:
			return true
		case v.Projected != nil:
			for _, s := range v.Projected.Sources {
				if (kind == "configmap" && s.ConfigMap != nil && s.ConfigMap.Name == name) ||
					(kind == "secret" && s.Secret != nil && s.Secret.Name == name) {
					return true
				}
			}
		}
	}
	for _, ref := range pod.Spec.ImagePullSecrets {
		if kind == "secret" && ref.Name == name {
			return true
		}
	}
	return false
}

// collectOrphans deletes, every OrphanInterval, this node's groups whose pod
// no longer exists (deleted while no vnode ran, or a lost delete). A group
// is deleted only when the apiserver itself says its pod is gone: the
// node's pod cache may lag, and holds none of another node's pods.
func (v *VNode) collectOrphans(ctx context.Context) {
	p := v.provider
	t := time.NewTicker(p.cfg.OrphanInterval)
	defer t.Stop()
	for {
		p.mu.Lock()
		var candidates []*apiv1.ContainerGroup
		for uid, g := range p.groups {
			ns, name := g.Metadata.Labels[LabelPodNamespace], g.Metadata.Labels[LabelPodName]
			pod, err := p.cfg.Pods.Pods(ns).Get(name)
			if (err != nil && !isNotFound(err)) || g.Metadata.DeletionRequestedAt != nil {
				continue
			}
			if pod == nil || string(pod.UID) != uid {
				candidates = append(candidates, g)
			}
		}
		p.mu.Unlock()
		var orphans []*apiv1.ContainerGroup
		for _, g := range candidates {
			pod, err := p.cfg.Kube.CoreV1().Pods(g.Metadata.Labels[LabelPodNamespace]).Get(ctx, g.Metadata.Labels[LabelPodName], metav1.GetOptions{})
			switch {
			case err != nil && !isNotFound(err):
				log.G(ctx).Warn("read the pod of a group", "group", g.Metadata.ID, "err", err)
			case err == nil && string(pod.UID) == g.Metadata.Labels[LabelPodUID]:
				// The pod is there: the cache lags.
			default:
				orphans = append(orphans, g)
			}
		}
		for _, g := range orphans {
			log.G(ctx).Info("deleting a group whose pod is gone", "group", g.Metadata.ID, "pod", g.Metadata.Labels[LabelPodNamespace]+"/"+g.Metadata.Labels[LabelPodName])
			if _, err := p.cfg.ECI.DeleteGroup(ctx, g.Metadata.ID, client.DeleteOptions{}); err != nil && !errdefs.IsNotFound(err) {
				log.G(ctx).Warn("delete an orphan group", "group", g.Metadata.ID, "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func isNotFound(err error) bool { return apierrors.IsNotFound(err) }
