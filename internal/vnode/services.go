package vnode

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	corev1listers "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/errdefs"
	"github.com/eci-dev/eci/internal/log"
)

// The cluster's Services on the instance service (issue #15, step 2 of
// docs/networking.md): the vnode keeps its cluster's table of virtual IPs
// equal to what the Services and EndpointSlices say, with kube-proxy's
// semantics, and the agents program the table. One VirtualService per IPv4
// ClusterIP; a work queue keyed by the Service's namespace/name, as
// kube-proxy's and the controllers' are; a write only when what the Service
// gives differs from what was last written.

// serviceTable is the instance service's side: the virtual IPs of a table
// (*client.Client).
type serviceTable interface {
	PutVirtualService(ctx context.Context, v *apiv1.VirtualService) (*apiv1.VirtualService, error)
	DeleteVirtualService(ctx context.Context, table, ip string) error
	ListVirtualServices(ctx context.Context, table string) ([]apiv1.VirtualService, error)
}

// servicesWorkers handle the Services' queue.
const servicesWorkers = 4

// servicesController keeps the table equal to the cluster's Services.
type servicesController struct {
	table, node string
	eci         serviceTable
	services    corev1listers.ServiceLister
	slices      discoverylisters.EndpointSliceLister
	recorder    record.EventRecorder // may be nil
	queue       workqueue.TypedRateLimitingInterface[string]
	// locks serialize the writes of one virtual IP (by a hash of it): a
	// Service deleted and another given its IP never race.
	locks [32]sync.Mutex

	mu sync.Mutex
	// written is what the table holds, as far as the controller knows, by
	// virtual IP; byService the IPs each Service wrote.
	written   map[string]lastWrite
	byService map[string]map[string]bool
	// noted is what was last said of a Service that is served in part.
	noted map[string]string
}

// lastWrite is a virtual IP as last written.
type lastWrite struct {
	service string // namespace/name ("" when the table's copy names none)
	spec    apiv1.VirtualServiceSpec
	// unknown: a write failed, the table may hold anything.
	unknown bool
}

// newServicesController hooks a controller to the Service and EndpointSlice
// informers of objects (before they start). Its queue runs from here: the
// caller shuts it down (run does, when it runs).
func newServicesController(cfg Config, objects informers.SharedInformerFactory, eci serviceTable) *servicesController {
	c := &servicesController{
		table: tableName(cfg.ClusterID), node: cfg.NodeName, eci: eci, recorder: cfg.Recorder,
		services: objects.Core().V1().Services().Lister(), slices: objects.Discovery().V1().EndpointSlices().Lister(),
		queue:   workqueue.NewTypedRateLimitingQueue(workqueue.NewTypedItemExponentialFailureRateLimiter[string](50*time.Millisecond, 5*time.Minute)),
		written: map[string]lastWrite{}, byService: map[string]map[string]bool{}, noted: map[string]string{},
	}
	_, _ = objects.Core().V1().Services().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: c.serviceChanged, UpdateFunc: func(_, obj any) { c.serviceChanged(obj) }, DeleteFunc: c.serviceChanged,
	})
	_, _ = objects.Discovery().V1().EndpointSlices().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: c.sliceChanged, UpdateFunc: func(old, obj any) { c.sliceChanged(old); c.sliceChanged(obj) }, DeleteFunc: c.sliceChanged,
	})
	return c
}

func (c *servicesController) serviceChanged(obj any) {
	if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
		c.queue.Add(key)
	}
}

func (c *servicesController) sliceChanged(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	if sl, ok := obj.(*discoveryv1.EndpointSlice); ok && sl.Labels[discoveryv1.LabelServiceName] != "" {
		c.queue.Add(sl.Namespace + "/" + sl.Labels[discoveryv1.LabelServiceName])
	}
}

// run resyncs the table (its virtual IPs that no Service gives are deleted;
// the others are what was last written), then keeps it with workers until
// ctx ends. The informers have synced.
func (c *servicesController) run(ctx context.Context, workers int) {
	defer c.queue.ShutDown()
	ctx = log.With(ctx, "table", c.table)
	if c.table == "" {
		log.G(ctx).Warn("no table of virtual IPs: the cluster id is empty")
		return
	}
	for delay := 100 * time.Millisecond; ; delay = min(2*delay, time.Minute) {
		err := c.resync(ctx)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return
		}
		log.G(ctx).Warn("resync the table of virtual IPs", "err", err, "retry in", delay)
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
	}
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c.next(ctx) {
			}
		}()
	}
	<-ctx.Done()
	c.queue.ShutDown()
	wg.Wait()
}

// resync deletes the table's virtual IPs that no Service gives and takes the
// others as last written; every Service is queued.
func (c *servicesController) resync(ctx context.Context) error {
	listed, err := c.eci.ListVirtualServices(ctx, c.table)
	if err != nil {
		return fmt.Errorf("list the table %s: %w", c.table, err)
	}
	services, err := c.services.List(labels.Everything())
	if err != nil {
		return fmt.Errorf("list the Services: %w", err)
	}
	given := map[string]string{} // IP -> the Service's key
	for _, svc := range services {
		key := svc.Namespace + "/" + svc.Name
		vss, _ := c.want(ctx, svc)
		for _, vs := range vss {
			given[vs.Spec.IP] = key
		}
		c.queue.Add(key)
	}
	var errs []error
	for _, vs := range listed {
		ip := vs.Spec.IP
		if vs.Spec.Table != c.table {
			continue
		}
		if _, ok := given[ip]; ok {
			owner := ""
			if ns, name := vs.Metadata.Labels[LabelServiceNamespace], vs.Metadata.Labels[LabelServiceName]; ns != "" && name != "" {
				owner = ns + "/" + name
			}
			// Labelled with another Service (or none): written again.
			w := lastWrite{service: given[ip], spec: canonical(vs.Spec), unknown: owner != given[ip]}
			c.mu.Lock()
			c.set(ip, w)
			c.mu.Unlock()
			continue
		}
		if err := c.eci.DeleteVirtualService(ctx, c.table, ip); err != nil && !errdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("delete the stale virtual IP %s: %w", ip, err))
			continue
		}
		log.G(ctx).Info("stale virtual IP deleted: no Service gives it", "ip", ip)
	}
	return errors.Join(errs...)
}

// next handles one Service of the queue; false once the queue is shut down.
func (c *servicesController) next(ctx context.Context) bool {
	key, shutdown := c.queue.Get()
	if shutdown {
		return false
	}
	defer c.queue.Done(key)
	if err := c.sync(ctx, key); err != nil {
		if ctx.Err() == nil {
			log.G(ctx).Warn("write a Service's virtual IP", "service", key, "err", err, "retries", c.queue.NumRequeues(key))
		}
		c.queue.AddRateLimited(key)
		return true
	}
	c.queue.Forget(key)
	return true
}

// sync makes the table hold what the Service key gives: its virtual IPs
// written when they changed, the ones it no longer gives deleted.
func (c *servicesController) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil // not a key of ours: nothing to retry
	}
	svc, err := c.services.Services(ns).Get(name)
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("read the Service: %w", err)
	}
	var want []apiv1.VirtualService
	var notes []string
	if svc != nil {
		want, notes = c.want(ctx, svc)
	}
	c.note(ctx, key, svc, notes)
	var errs []error
	keep := map[string]bool{}
	for i := range want {
		keep[want[i].Spec.IP] = true
		if err := c.put(ctx, key, &want[i]); err != nil {
			errs = append(errs, err)
		}
	}
	for _, ip := range c.ipsOf(key) {
		if !keep[ip] {
			if err := c.remove(ctx, key, ip); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// note logs what of the Service key is not served (and records it as an
// Event on it), once for as long as it stays the same.
func (c *servicesController) note(ctx context.Context, key string, svc *corev1.Service, notes []string) {
	all := strings.Join(notes, "; ")
	c.mu.Lock()
	same := c.noted[key] == all
	if all == "" {
		delete(c.noted, key)
	} else {
		c.noted[key] = all
	}
	c.mu.Unlock()
	if same || svc == nil {
		return
	}
	for _, n := range notes {
		log.G(ctx).Info("a Service is served in part", "service", key, "why", n)
		if c.recorder != nil {
			c.recorder.Event(svc, corev1.EventTypeWarning, "ServedInPart", n)
		}
	}
}

// want is what svc gives the table; what the API would refuse is logged and
// left out.
func (c *servicesController) want(ctx context.Context, svc *corev1.Service) ([]apiv1.VirtualService, []string) {
	sl, err := c.slices.EndpointSlices(svc.Namespace).List(labels.SelectorFromSet(labels.Set{discoveryv1.LabelServiceName: svc.Name}))
	if err != nil {
		sl = nil // a lister does not fail
	}
	slices.SortFunc(sl, func(a, b *discoveryv1.EndpointSlice) int { return strings.Compare(a.Name, b.Name) })
	vss, notes := virtualServices(c.table, c.node, svc, sl)
	out := vss[:0]
	for _, vs := range vss {
		if err := apiv1.ValidateVirtualService(&vs); err != nil {
			log.G(ctx).Warn("a Service's virtual IP is not written: the API refuses it", "service", svc.Namespace+"/"+svc.Name, "ip", vs.Spec.IP, "err", err)
			continue
		}
		out = append(out, vs)
	}
	return out, notes
}

// put writes vs for the Service key unless it is what was last written
// there.
func (c *servicesController) put(ctx context.Context, key string, vs *apiv1.VirtualService) error {
	ip := vs.Spec.IP
	l := c.lock(ip)
	l.Lock()
	defer l.Unlock()
	c.mu.Lock()
	last, ok := c.written[ip]
	c.mu.Unlock()
	if ok && !last.unknown && last.service == key && reflect.DeepEqual(last.spec, vs.Spec) {
		return nil
	}
	if _, err := c.eci.PutVirtualService(ctx, vs); err != nil {
		c.mu.Lock()
		c.set(ip, lastWrite{service: key, unknown: true})
		c.mu.Unlock()
		return fmt.Errorf("put the virtual IP %s: %w", ip, err)
	}
	c.mu.Lock()
	c.set(ip, lastWrite{service: key, spec: vs.Spec})
	c.mu.Unlock()
	log.G(ctx).Debug("virtual IP written", "service", key, "ip", ip)
	return nil
}

// remove deletes the virtual IP ip the Service key no longer gives, unless
// another Service has written it since.
func (c *servicesController) remove(ctx context.Context, key, ip string) error {
	l := c.lock(ip)
	l.Lock()
	defer l.Unlock()
	c.mu.Lock()
	last, ok := c.written[ip]
	c.mu.Unlock()
	if !ok || last.service != key {
		return nil
	}
	if err := c.eci.DeleteVirtualService(ctx, c.table, ip); err != nil && !errdefs.IsNotFound(err) {
		c.mu.Lock()
		c.set(ip, lastWrite{service: key, unknown: true})
		c.mu.Unlock()
		return fmt.Errorf("delete the virtual IP %s: %w", ip, err)
	}
	c.mu.Lock()
	c.unset(ip)
	c.mu.Unlock()
	log.G(ctx).Info("virtual IP deleted", "service", key, "ip", ip)
	return nil
}

func (c *servicesController) lock(ip string) *sync.Mutex {
	h := fnv.New32a()
	_, _ = h.Write([]byte(ip))
	return &c.locks[h.Sum32()%uint32(len(c.locks))]
}

// ipsOf are the virtual IPs the Service key wrote.
func (c *servicesController) ipsOf(key string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for ip := range c.byService[key] {
		out = append(out, ip)
	}
	return out
}

// set records w as ip's; c.mu is held.
func (c *servicesController) set(ip string, w lastWrite) {
	c.unset(ip)
	c.written[ip] = w
	if c.byService[w.service] == nil {
		c.byService[w.service] = map[string]bool{}
	}
	c.byService[w.service][ip] = true
}

// unset forgets ip; c.mu is held.
func (c *servicesController) unset(ip string) {
	if old, ok := c.written[ip]; ok {
		delete(c.byService[old.service], ip)
		if len(c.byService[old.service]) == 0 {
			delete(c.byService, old.service)
		}
		delete(c.written, ip)
	}
}
