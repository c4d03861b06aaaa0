package profile

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
)

// Overflow lets normalNodePrefer pods onto the virtual nodes: a pod the
// webhook marked (AnnOverflowAfter) that the scheduler has found
// unschedulable for that many seconds gets the virtual node's toleration,
// and the scheduler, which retries it on that change, places it where there
// is room. Pods created later have no toleration: once real nodes have room
// again, they go there.
type Overflow struct {
	Kube     kubernetes.Interface
	Pending  cache.SharedIndexInformer // pods not bound to a node
	Node     Node
	Recorder record.EventRecorder
	Logger   *slog.Logger
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// Run handles pods until ctx ends.
func (o *Overflow) Run(ctx context.Context) {
	if o.Node.Taint == nil {
		return // nothing keeps pods off the virtual node
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	q := workqueue.NewTypedDelayingQueue[string]()
	defer q.ShutDown()
	enqueue := func(obj any) {
		if key, err := cache.MetaNamespaceKeyFunc(obj); err == nil {
			q.Add(key)
		}
	}
	_, _ = o.Pending.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: enqueue, UpdateFunc: func(_, obj any) { enqueue(obj) }})
	go func() { <-ctx.Done(); q.ShutDown() }()
	for {
		key, stop := q.Get()
		if stop {
			return
		}
		if wait := o.check(ctx, key); wait > 0 {
			q.AddAfter(key, wait)
		}
		q.Done(key)
	}
}

// check lets pod key overflow if it is due; else it says how long to wait
// (0: nothing to wait for: an update of the pod will bring it back).
func (o *Overflow) check(ctx context.Context, key string) time.Duration {
	obj, ok, err := o.Pending.GetStore().GetByKey(key)
	if err != nil || !ok {
		return 0
	}
	pod := obj.(*corev1.Pod)
	after, err := strconv.Atoi(pod.Annotations[AnnOverflowAfter])
	if err != nil || pod.Spec.NodeName != "" || pod.DeletionTimestamp != nil || tolerates(pod, o.Node) {
		return 0
	}
	var since time.Time
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
			since = c.LastTransitionTime.Time
		}
	}
	if since.IsZero() {
		return 0
	}
	if due := since.Add(time.Duration(after) * time.Second); o.Now().Before(due) {
		return due.Sub(o.Now())
	}
	op := Op{Op: "add", Path: "/spec/tolerations/-", Value: o.Node.Toleration()}
	if pod.Spec.Tolerations == nil {
		op = Op{Op: "add", Path: "/spec/tolerations", Value: []corev1.Toleration{o.Node.Toleration()}}
	}
	// The test op makes the patch fail if the pod changed meanwhile; the
	// informer brings the newer pod back.
	patch, _ := json.Marshal([]Op{{Op: "test", Path: "/metadata/resourceVersion", Value: pod.ResourceVersion}, op})
	if _, err := o.Kube.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.JSONPatchType, patch, metav1.PatchOptions{}); err != nil {
		if apierrors.IsInvalid(err) || apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
			// The pod changed (the test op) or went: its next version comes
			// through the informer.
			o.Logger.Debug("eci-profile overflow: pod changed meanwhile", "pod", key, "err", err)
			return 0
		}
		o.Logger.Warn("eci-profile overflow: patch the pod's tolerations", "pod", key, "err", err)
		return 10 * time.Second
	}
	msg := fmt.Sprintf("no real node had room for %ds (policy normalNodePrefer): the pod may now run on a virtual node", after)
	o.Logger.Info("eci-profile overflow", "pod", key)
	o.Recorder.Event(pod, corev1.EventTypeNormal, "OverflowToVirtualNode", msg)
	return 0
}
