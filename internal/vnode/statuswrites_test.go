package vnode

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	corev1listers "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	apiv1 "github.com/eci-dev/eci/api/v1"
)

// A status write takes the labels and annotations the pod has at the
// version it is written at, plus the instance's annotations, not those of
// the pushed pod: a label set after the push is kept. A write at another
// version goes as virtual-kubelet made it (the apiserver refuses it).
func TestStatusWriteKeepsCurrentMetadata(t *testing.T) {
	ctx := context.Background()
	now := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web", UID: "uid-1", ResourceVersion: "7",
		Labels: map[string]string{"quarantine": "true"}, Annotations: map[string]string{"note": "set by an admin"}}}
	kube := fake.NewClientset(now.DeepCopy())
	indexer := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})
	if err := indexer.Add(now.DeepCopy()); err != nil {
		t.Fatal(err)
	}
	p := newProvider(Config{Kube: kube, Pods: corev1listers.NewPodLister(indexer)})
	p.groups["uid-1"] = &apiv1.ContainerGroup{Metadata: apiv1.ObjectMeta{ID: "eci-1"}, Status: apiv1.ContainerGroupStatus{InstanceSpec: "1.0-2.0Gi"}}
	w := statusWriter{PodsGetter: kube.CoreV1(), p: p}

	pushed := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web", UID: "uid-1", ResourceVersion: "7",
		Labels: map[string]string{}, Annotations: map[string]string{}}, Status: corev1.PodStatus{Phase: corev1.PodRunning}}
	got, err := w.Pods("ns").UpdateStatus(ctx, pushed, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Labels["quarantine"] != "true" || got.Annotations["note"] != "set by an admin" {
		t.Errorf("the write dropped the pod's current metadata: labels %v annotations %v", got.Labels, got.Annotations)
	}
	if got.Annotations[AnnInstanceID] != "eci-1" || got.Annotations[AnnInstanceSpec] != "1.0-2.0Gi" {
		t.Errorf("the write lacks the instance's annotations: %v", got.Annotations)
	}
	if got.Status.Phase != corev1.PodRunning {
		t.Errorf("status %v, want Running", got.Status.Phase)
	}
	if len(pushed.Labels) != 0 {
		t.Errorf("the caller's pod was changed: %v", pushed.Labels)
	}

	// What a write sends on, changed as virtual-kubelet made it (change).
	sends := func(change func(*corev1.Pod)) *corev1.Pod {
		pod := pushed.DeepCopy()
		change(pod)
		var sent *corev1.Pod
		_, _ = statusPods{PodInterface: recordingPods{PodInterface: kube.CoreV1().Pods("ns"), sent: &sent}, p: p}.UpdateStatus(ctx, pod, metav1.UpdateOptions{})
		if sent == nil {
			t.Fatal("nothing written")
		}
		return sent
	}
	// At another version: as virtual-kubelet made it.
	if sent := sends(func(p *corev1.Pod) { p.ResourceVersion = "6" }); sent.ResourceVersion != "6" || sent.Labels["quarantine"] != "" {
		t.Errorf("a write at another version was changed: %+v", sent)
	}
	// virtual-kubelet's write at no version: made at the lister's, with
	// its metadata.
	if sent := sends(func(p *corev1.Pod) { p.ResourceVersion = "" }); sent.ResourceVersion != "7" || sent.Labels["quarantine"] != "true" {
		t.Errorf("a write at no version: %+v", sent)
	}
	// Another pod under the name (another UID): left as it was.
	if sent := sends(func(p *corev1.Pod) { p.UID = "uid-2" }); sent.UID != "uid-2" || sent.Labels["quarantine"] != "" || sent.Annotations[AnnInstanceID] != "" {
		t.Errorf("another pod's write was changed: %+v", sent)
	}
}

type recordingPods struct {
	corev1client.PodInterface
	sent **corev1.Pod
}

func (r recordingPods) UpdateStatus(ctx context.Context, pod *corev1.Pod, opts metav1.UpdateOptions) (*corev1.Pod, error) {
	*r.sent = pod
	return r.PodInterface.UpdateStatus(ctx, pod, opts)
}
