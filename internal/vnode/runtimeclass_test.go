package vnode

import (
	"errors"
	"testing"

	corev1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	nodev1listers "k8s.io/client-go/listers/node/v1"
	"k8s.io/client-go/tools/cache"
)

// A pod's runtimeClassName becomes its RuntimeClass's handler; a class
// that does not exist makes the pod wait for it; none asks for nothing.
func TestRuntimeHandler(t *testing.T) {
	idx := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})
	if err := idx.Add(&nodev1.RuntimeClass{ObjectMeta: metav1.ObjectMeta{Name: "sandboxed"}, Handler: "kata"}); err != nil {
		t.Fatal(err)
	}
	p := newProvider(Config{RuntimeClasses: nodev1listers.NewRuntimeClassLister(idx)})
	pod := func(class *string) *corev1.Pod { return &corev1.Pod{Spec: corev1.PodSpec{RuntimeClassName: class}} }
	name := func(s string) *string { return &s }
	if h, err := p.runtimeHandler(pod(name("sandboxed"))); h != "kata" || err != nil {
		t.Errorf("sandboxed: %q, %v; want kata", h, err)
	}
	if h, err := p.runtimeHandler(pod(nil)); h != "" || err != nil {
		t.Errorf("none: %q, %v", h, err)
	}
	var missing *errMissing
	if _, err := p.runtimeHandler(pod(name("gone"))); !errors.As(err, &missing) || missing.Error() != `RuntimeClass "gone" not found` {
		t.Errorf("a missing class: %v, want the pod to wait for it", err)
	}
	if !references(pod(name("gone")), "runtimeclass", "gone") {
		t.Error("a pod waiting for RuntimeClass gone is not retried when it appears")
	}
}
