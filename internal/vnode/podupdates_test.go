package vnode

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/virtual-kubelet/virtual-kubelet/node"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/cache"
)

// updatePod is a pod of two containers as a Deployment makes them, on the
// node, Running.
func updatePod() *corev1.Pod {
	c := corev1.Container{Name: "main", Image: "reg.example/app:v1", Command: []string{"sh", "-c", "serve"},
		Resources:      corev1.ResourceRequirements{Requests: corev1.ResourceList{"cpu": resource.MustParse("250m"), "memory": resource.MustParse("512Mi")}},
		ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/", Port: intstr.FromInt32(8080)}}},
		VolumeMounts:   []corev1.VolumeMount{{Name: "kube-api-access", MountPath: "/var/run/secrets/kubernetes.io/serviceaccount", ReadOnly: true}}}
	for _, e := range []string{"A", "B", "C", "D", "E", "F", "G", "H"} {
		c.Env = append(c.Env, corev1.EnvVar{Name: e, Value: "value"})
	}
	side := c
	side.Name = "side"
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-1", Namespace: "default", UID: "uid-1", ResourceVersion: "10",
			Labels: map[string]string{"app": "web", "pod-template-hash": "5d9f"}, Annotations: map[string]string{AnnInstanceID: "eci-1"}},
		Spec: corev1.PodSpec{NodeName: "vnode", Containers: []corev1.Container{c, side},
			Tolerations: []corev1.Toleration{{Key: "virtual-kubelet.io/provider", Operator: corev1.TolerationOpExists}}},
		Status: corev1.PodStatus{Phase: corev1.PodPending},
	}
}

// countingHandler counts the updates a handler got.
type countingHandler struct {
	mu      sync.Mutex
	updates int
}

func (r *countingHandler) OnAdd(any, bool) {}
func (r *countingHandler) OnDelete(any)    {}
func (r *countingHandler) OnUpdate(any, any) {
	r.mu.Lock()
	r.updates++
	r.mu.Unlock()
}

func newFilter() *podUpdateFilter {
	return &podUpdateFilter{pushed: &pushedStatuses{}, events: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "x"}, []string{"result"})}
}

// The pod controller is not told of a resync or of the node's own status
// write coming back; it is told of everything else: a status someone else
// wrote, and any change of metadata or spec with it.
func TestPodUpdateFilter(t *testing.T) {
	f := newFilter()
	r := &countingHandler{}
	h := filteredHandler{h: r, f: f}
	old := updatePod()
	running := old.DeepCopy()
	running.ResourceVersion = "11"
	running.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "198.18.0.9", Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}
	pushed := running.DeepCopy()
	f.pushed.send(string(pushed.UID), &pushed.Status, true, func() {})
	edit := func(change func(*corev1.Pod)) *corev1.Pod {
		p := running.DeepCopy()
		change(p)
		return p
	}
	for _, c := range []struct {
		what      string
		old, cur  *corev1.Pod
		delivered bool
	}{
		{"a resync", old, old.DeepCopy(), false},
		{"the node's own status write", old, running, false},
		{"the node's own status write, with the qosClass the apiserver keeps", old, edit(func(p *corev1.Pod) { p.Status.QOSClass = corev1.PodQOSBurstable }), false},
		{"a status someone else wrote", old, edit(func(p *corev1.Pod) { p.Status.Conditions[0].Status = corev1.ConditionFalse }), true},
		{"the node's status with a label changed", old, edit(func(p *corev1.Pod) { p.Labels = map[string]string{"app": "other"} }), true},
		{"the node's status with an annotation changed", old, edit(func(p *corev1.Pod) { p.Annotations = map[string]string{AnnInstanceID: "eci-1", "team": "a"} }), true},
		{"the node's status with its own annotation removed by someone", old, edit(func(p *corev1.Pod) { p.Annotations = nil }), false},
		{"the node's annotation patch (the status as it was)", old, func() *corev1.Pod {
			p := old.DeepCopy()
			p.ResourceVersion = "12"
			p.Annotations = map[string]string{AnnInstanceID: "eci-1", AnnInstanceSpec: "0.25-0.5Gi"}
			return p
		}(), false},
		{"the node's annotation patch with someone's annotation", old, func() *corev1.Pod {
			p := old.DeepCopy()
			p.ResourceVersion = "12"
			p.Annotations = map[string]string{AnnInstanceID: "eci-1", AnnInstanceSpec: "0.25-0.5Gi", "team": "a"}
			return p
		}(), true},
		{"the node's status with an image changed", old, edit(func(p *corev1.Pod) { p.Spec.Containers[0].Image = "reg.example/app:v2" }), true},
		{"the node's status with an ephemeral container added", old, edit(func(p *corev1.Pod) {
			p.Spec.EphemeralContainers = []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debug", Image: "busybox"}}}
		}), true},
		{"the pod being deleted", old, edit(func(p *corev1.Pod) { now := metav1.Now(); p.DeletionTimestamp = &now }), true},
		{"a finalizer", old, edit(func(p *corev1.Pod) { p.Finalizers = []string{"x"} }), true},
		{"a new pod of the same name", old, edit(func(p *corev1.Pod) { p.UID = "uid-2" }), true},
	} {
		before := r.updates
		h.OnUpdate(c.old, c.cur)
		if got := r.updates > before; got != c.delivered {
			t.Errorf("%s: delivered %v, want %v", c.what, got, c.delivered)
		}
	}
	// A pod deleted (or its tombstone) is forgotten: the map holds only
	// the apiserver's pods.
	for _, gone := range []any{running, cache.DeletedFinalStateUnknown{Key: "default/web-1", Obj: running}} {
		f.pushed.send(string(pushed.UID), &pushed.Status, true, func() {})
		h.OnDelete(gone)
		if len(f.pushed.last) != 0 {
			t.Fatalf("after the delete of %T, %d statuses kept", gone, len(f.pushed.last))
		}
	}
	before := r.updates
	h.OnUpdate(old, running)
	if r.updates == before {
		t.Error("a status write of a pod the node forgot was not delivered")
	}
}

// minimalProvider is a provider for the pod controller that runs nothing.
type minimalProvider struct{}

func (minimalProvider) CreatePod(context.Context, *corev1.Pod) error { return nil }
func (minimalProvider) UpdatePod(context.Context, *corev1.Pod) error { return nil }
func (minimalProvider) DeletePod(context.Context, *corev1.Pod) error { return nil }
func (minimalProvider) GetPod(context.Context, string, string) (*corev1.Pod, error) {
	return nil, nil
}
func (minimalProvider) GetPodStatus(context.Context, string, string) (*corev1.PodStatus, error) {
	return nil, nil
}
func (minimalProvider) GetPods(context.Context) ([]*corev1.Pod, error) { return nil, nil }
func (minimalProvider) NotifyPods(context.Context, func(*corev1.Pod))  {}

// capturedPods is a pod informer that keeps the handler the pod
// controller registers.
type capturedPods struct {
	filteredPods
	mu sync.Mutex
	h  cache.ResourceEventHandler
}

func (c *capturedPods) Informer() cache.SharedIndexInformer {
	return capturedInformer{c.filteredPods.Informer(), c}
}

type capturedInformer struct {
	cache.SharedIndexInformer
	c *capturedPods
}

func (i capturedInformer) AddEventHandler(h cache.ResourceEventHandler) (cache.ResourceEventHandlerRegistration, error) {
	i.c.mu.Lock()
	i.c.h = h
	i.c.mu.Unlock()
	return i.SharedIndexInformer.AddEventHandler(h)
}

// BenchmarkPodUpdateEvent: the CPU an update event costs in the pod
// controller of virtual-kubelet (its own handler, as it registers it on a
// real controller), for the node's own status write coming back and for a
// resync, and the same events through the node's filter.
func BenchmarkPodUpdateEvent(b *testing.B) {
	pod := updatePod()
	kube := fake.NewClientset(pod)
	factory := informers.NewSharedInformerFactory(kube, 0)
	f := newFilter()
	pods := &capturedPods{filteredPods: filteredPods{PodInformer: factory.Core().V1().Pods(), f: f}}
	pc, err := node.NewPodController(node.PodControllerConfig{PodClient: kube.CoreV1(), PodInformer: pods, EventRecorder: &testRecorder{}, Provider: minimalProvider{},
		SecretInformer: factory.Core().V1().Secrets(), ConfigMapInformer: factory.Core().V1().ConfigMaps(), ServiceInformer: factory.Core().V1().Services()})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	factory.Start(ctx.Done())
	go func() { _ = pc.Run(ctx, 1) }()
	select {
	case <-pc.Ready():
	case <-time.After(30 * time.Second):
		b.Fatal("the pod controller is not ready")
	}
	pods.mu.Lock()
	vk := pods.h // virtual-kubelet's own handler; the informer has it behind the filter
	pods.mu.Unlock()
	time.Sleep(100 * time.Millisecond) // (its AddFunc of the pod: known from then on)
	echo := pod.DeepCopy()
	echo.ResourceVersion = "11"
	echo.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "198.18.0.9", Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}
	f.pushed.send(string(echo.UID), &echo.Status, true, func() {})
	for _, c := range []struct {
		name     string
		h        cache.ResourceEventHandler
		old, cur *corev1.Pod
	}{
		{"echo/virtual-kubelet", vk, pod, echo},
		{"echo/filtered", filteredHandler{h: vk, f: f}, pod, echo},
		{"resync/virtual-kubelet", vk, echo, echo},
		{"resync/filtered", filteredHandler{h: vk, f: f}, echo, echo},
	} {
		b.Run(c.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				c.h.OnUpdate(c.old, c.cur)
			}
		})
	}
}
