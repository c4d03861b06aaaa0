package vnode

import (
	"maps"
	"reflect"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	corev1informers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/tools/cache"
)

// virtual-kubelet's pod controller compares the old and new pod of every
// update event its informer delivers with go-cmp (podShouldEnqueue:
// containers, tolerations, labels, annotations), about 0.4 ms of CPU for a
// pod of two containers, and most updates are the node's own status writes
// coming back, or the informer's resync of an unchanged pod every minute:
// at 10,000 pods that comparison was the node's largest CPU cost
// (docs/benchmarks.md). Without forking the library, the node gives it a
// pod informer whose update events leave out two kinds, which it would
// have found equal, or synced to the provider for nothing:
//   - a resync (the same resourceVersion: nothing changed);
//   - the node's own writes coming back (echo): only the status, the
//     annotations the node writes back (its instance's id and size...),
//     and resourceVersion and managedFields changed, and the status is
//     the one it had, or the one the node pushed last for that pod
//     (compared by a SHA-256 of its JSON, which is what the apiserver
//     stored, but for the qosClass the apiserver keeps). The node's
//     annotation patch would otherwise make the controller sync the pod
//     to the provider, comparing it whole with go-cmp's path filter
//     (podsEffectivelyEqual: milliseconds a pod).
// Every other update goes through, a status someone else wrote included
// (the controller then pushes the provider's status again).

// onlyNodeWrites tells whether old and new differ in nothing the pod
// controller reads but what the node writes: their status, the
// annotations the node writes back (writtenBackKeys), and
// resourceVersion and managedFields.
func onlyNodeWrites(old, new *corev1.Pod) bool {
	o, n := &old.ObjectMeta, &new.ObjectMeta
	if o.UID != n.UID || o.Generation != n.Generation || !maps.Equal(o.Labels, n.Labels) || !sameButOwn(o.Annotations, n.Annotations) ||
		!slices.Equal(o.Finalizers, n.Finalizers) || !o.DeletionTimestamp.Equal(n.DeletionTimestamp) ||
		!reflect.DeepEqual(o.DeletionGracePeriodSeconds, n.DeletionGracePeriodSeconds) || !reflect.DeepEqual(o.OwnerReferences, n.OwnerReferences) {
		return false
	}
	return reflect.DeepEqual(old.Spec, new.Spec)
}

// sameButOwn tells whether annotations a and b differ only in keys the
// node writes.
func sameButOwn(a, b map[string]string) bool {
	differs := func(x, y map[string]string) bool {
		for k, v := range x {
			if w, ok := y[k]; (!ok || w != v) && !slices.Contains(writtenBackKeys, k) {
				return true
			}
		}
		return false
	}
	return !differs(a, b) && !differs(b, a)
}

// podUpdateFilter drops the update events the pod controller needs not
// see; it counts what it drops and passes.
type podUpdateFilter struct {
	pushed *pushedStatuses
	events *prometheus.CounterVec // by result: resync, echo, passed
}

// keep tells whether the update old -> new goes to the pod controller.
func (f *podUpdateFilter) keep(oldObj, newObj any) bool {
	old, ok1 := oldObj.(*corev1.Pod)
	cur, ok2 := newObj.(*corev1.Pod)
	// The pod's last pushed status is in the cluster: a push waiting for
	// it may go (pushedstatus.go).
	written := ok1 && ok2 && old.ResourceVersion != cur.ResourceVersion && f.pushed.isLast(string(cur.UID), &cur.Status)
	if written {
		f.pushed.confirm(string(cur.UID))
	}
	switch {
	case !ok1 || !ok2:
	case old.ResourceVersion == cur.ResourceVersion && old.UID == cur.UID:
		f.events.WithLabelValues("resync").Inc()
		return false
	case !onlyNodeWrites(old, cur):
	case reflect.DeepEqual(old.Status, cur.Status):
		f.events.WithLabelValues("own-annotations").Inc()
		return false
	case written:
		f.events.WithLabelValues("echo").Inc()
		return false
	}
	f.events.WithLabelValues("passed").Inc()
	return true
}

// filteredPods is a pod informer whose handlers get f's updates only.
type filteredPods struct {
	corev1informers.PodInformer
	f *podUpdateFilter
}

func (p filteredPods) Informer() cache.SharedIndexInformer {
	return filteredInformer{SharedIndexInformer: p.PodInformer.Informer(), f: p.f}
}

type filteredInformer struct {
	cache.SharedIndexInformer
	f *podUpdateFilter
}

func (i filteredInformer) AddEventHandler(h cache.ResourceEventHandler) (cache.ResourceEventHandlerRegistration, error) {
	return i.SharedIndexInformer.AddEventHandler(filteredHandler{h: h, f: i.f})
}

func (i filteredInformer) AddEventHandlerWithResyncPeriod(h cache.ResourceEventHandler, period time.Duration) (cache.ResourceEventHandlerRegistration, error) {
	return i.SharedIndexInformer.AddEventHandlerWithResyncPeriod(filteredHandler{h: h, f: i.f}, period)
}

func (i filteredInformer) AddEventHandlerWithOptions(h cache.ResourceEventHandler, o cache.HandlerOptions) (cache.ResourceEventHandlerRegistration, error) {
	return i.SharedIndexInformer.AddEventHandlerWithOptions(filteredHandler{h: h, f: i.f}, o)
}

type filteredHandler struct {
	h cache.ResourceEventHandler
	f *podUpdateFilter
}

func (h filteredHandler) OnAdd(obj any, initial bool) { h.h.OnAdd(obj, initial) }

// OnDelete forgets the pod's pushed status, and passes the event as it is.
func (h filteredHandler) OnDelete(obj any) {
	pod, ok := obj.(*corev1.Pod)
	if d, tomb := obj.(cache.DeletedFinalStateUnknown); tomb {
		pod, ok = d.Obj.(*corev1.Pod)
	}
	if ok {
		h.f.pushed.forget(string(pod.UID))
	}
	h.h.OnDelete(obj)
}
func (h filteredHandler) OnUpdate(oldObj, newObj any) {
	if h.f.keep(oldObj, newObj) {
		h.h.OnUpdate(oldObj, newObj)
	}
}

// stripManagedFields drops an object's managedFields before the informers
// keep it: the node never reads them, and they are a large part of a pod
// (a pod's status update sends none, and the apiserver keeps its own).
func stripManagedFields(obj any) (any, error) {
	if a, err := meta.Accessor(obj); err == nil {
		a.SetManagedFields(nil)
	}
	return obj, nil
}
