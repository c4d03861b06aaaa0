package vnode

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
)

// statusWriter is the pod client virtual-kubelet's pod controller writes
// statuses with. virtual-kubelet writes a pushed pod whole (PUT of
// pods/status) at the resourceVersion its lister has when it writes, but
// with the metadata the pod had when it was pushed, and the status
// subresource keeps labels, annotations and finalizers from the body: a
// label someone set between the push and the write (or a retry after a
// conflict, which means someone wrote) would be undone. So each status
// write takes the metadata of the lister's pod at the resourceVersion it
// is written at, plus the instance annotations the node writes
// (takeMeta); a write at another version is refused by the apiserver as
// before. virtual-kubelet's one unconditional write (a pod the provider
// failed to create, at no version) is made at the lister's version: a
// conflict is retried with the pod's next sync.
type statusWriter struct {
	corev1client.PodsGetter
	p *Provider
}

func (w statusWriter) Pods(namespace string) corev1client.PodInterface {
	return statusPods{PodInterface: w.PodsGetter.Pods(namespace), p: w.p}
}

type statusPods struct {
	corev1client.PodInterface
	p *Provider
}

func (s statusPods) UpdateStatus(ctx context.Context, pod *corev1.Pod, opts metav1.UpdateOptions) (*corev1.Pod, error) {
	if s.p.cfg.Pods != nil {
		if cur, err := s.p.cfg.Pods.Pods(pod.Namespace).Get(pod.Name); err == nil && cur.UID == pod.UID &&
			(pod.ResourceVersion == "" || pod.ResourceVersion == cur.ResourceVersion) {
			out := pod.DeepCopy()
			s.p.takeMeta(out, cur) // (its resourceVersion too)
			pod = out
		}
	}
	return s.PodInterface.UpdateStatus(ctx, pod, opts)
}
