package vnode

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/virtual-kubelet/virtual-kubelet/node"
	"github.com/virtual-kubelet/virtual-kubelet/node/api"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	corev1listers "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
)

// The virtual-kubelet controllers, wired here rather than by nodeutil.NewNode
// for one reason: nodeutil leaves the pod controller's queues on client-go's
// default rate limiter, a token bucket of 10 items/s (burst 100) shared by
// every pod. A burst of pods needs several status updates each, so a 100-pod
// burst queued its statuses for ~10 s behind that bucket (measured:
// docs/benchmarks.md). Here a key is delayed only when its own handling
// fails (exponential per key); the apiserver is protected by the client's
// own QPS limit (KubeClient).

// podWorkers handle each pod-controller queue (creates, deletes, statuses).
const podWorkers = 16

func queueRateLimiter() workqueue.TypedRateLimiter[any] {
	return workqueue.NewTypedItemExponentialFailureRateLimiter[any](5*time.Millisecond, 30*time.Second)
}

func podControllerConfig(cfg Config, p *Provider, pods, objects informers.SharedInformerFactory) node.PodControllerConfig {
	return node.PodControllerConfig{
		PodClient:                            statusWriter{PodsGetter: cfg.Kube.CoreV1(), p: p},
		EventRecorder:                        quiet(cfg.Recorder),
		Provider:                             p,
		PodInformer:                          filteredPods{PodInformer: pods.Core().V1().Pods(), f: &podUpdateFilter{pushed: &p.pushed, events: p.metrics.podUpdates}},
		SecretInformer:                       objects.Core().V1().Secrets(),
		ConfigMapInformer:                    objects.Core().V1().ConfigMaps(),
		ServiceInformer:                      objects.Core().V1().Services(),
		SyncPodsFromKubernetesRateLimiter:    queueRateLimiter(),
		DeletePodsFromKubernetesRateLimiter:  queueRateLimiter(),
		SyncPodStatusFromProviderRateLimiter: queueRateLimiter(),
		// The node builds the containers' environment itself (env.go).
		SkipDownwardAPIResolution: true,
	}
}

// quietRecorder drops virtual-kubelet's Normal events about its own calls
// of the provider (ProviderCreateSuccess, ProviderUpdateSuccess,
// ProviderDeleteSuccess): the kubelet records nothing of the kind, and
// each is a write to the apiserver (a 100-pod burst made 700 event writes,
// 100 of them these). Their failures, Warnings, pass.
type quietRecorder struct{ record.EventRecorder }

func quiet(r record.EventRecorder) record.EventRecorder {
	if r == nil {
		return nil
	}
	return quietRecorder{r}
}

func quietReason(typ, reason string) bool {
	return typ == corev1.EventTypeNormal && strings.HasPrefix(reason, "Provider")
}

func (r quietRecorder) Event(obj runtime.Object, typ, reason, msg string) {
	if !quietReason(typ, reason) {
		r.EventRecorder.Event(obj, typ, reason, msg)
	}
}

func (r quietRecorder) Eventf(obj runtime.Object, typ, reason, format string, args ...any) {
	if !quietReason(typ, reason) {
		r.EventRecorder.Eventf(obj, typ, reason, format, args...)
	}
}

func (r quietRecorder) AnnotatedEventf(obj runtime.Object, ann map[string]string, typ, reason, format string, args ...any) {
	if !quietReason(typ, reason) {
		r.EventRecorder.AnnotatedEventf(obj, ann, typ, reason, format, args...)
	}
}

// kubeletAPI is the kubelet's HTTP API over the provider (logs, exec,
// attach, port-forward, pods, stats, resource metrics, health, metrics).
func kubeletAPI(p *Provider, pods corev1listers.PodLister) http.Handler {
	mux := http.NewServeMux()
	// The kubelet's own: its health, and its metrics (Prometheus').
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		select {
		case <-p.synced:
			_, _ = w.Write([]byte("ok"))
		default:
			http.Error(w, "the instance service's groups are not listed yet", http.StatusInternalServerError)
		}
	})
	mux.Handle("/metrics", p.metrics.handler())
	mux.Handle("/", api.PodHandler(api.PodHandlerConfig{
		RunInContainer:    p.RunInContainer,
		AttachToContainer: p.AttachToContainer,
		GetContainerLogs:  p.GetContainerLogs,
		GetPods:           p.GetPods,
		GetPodsFromKubernetes: func(context.Context) ([]*corev1.Pod, error) {
			return pods.List(labels.Everything())
		},
		GetStatsSummary:    p.GetStatsSummary,
		GetMetricsResource: p.GetMetricsResource,
		PortForward:        p.PortForward,
	}, true))
	return mux
}
