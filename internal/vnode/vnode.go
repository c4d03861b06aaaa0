package vnode

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/virtual-kubelet/virtual-kubelet/node"
	"github.com/virtual-kubelet/virtual-kubelet/node/nodeutil"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	corev1listers "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/record"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/client"
	"github.com/eci-dev/eci/internal/log"
	"github.com/eci-dev/eci/internal/profile"
	"github.com/eci-dev/eci/internal/version"
)

// VNode is a virtual node joined to one cluster.
type VNode struct {
	cfg      Config
	provider *Provider
	// pods are this node's pods; objects the configMaps, secrets and
	// services its pods read.
	pods    informers.SharedInformerFactory
	objects informers.SharedInformerFactory
	pc      *node.PodController
	nc      *node.NodeController
	kubelet *http.Server
	tls     *tls.Config
	serving *servingCert    // the kubelet API's certificate (servingcert.go)
	profile *profile.Source // eci-profile's configuration
	// services fills the cluster's table of virtual IPs (nil: NoServices).
	services *servicesController
	// podEvents gives pods their instances' events (set by Run's
	// startEvents).
	podEvents *podEvents
	ready     chan struct{}
	done      chan struct{}
	mu        sync.Mutex
	err       error
}

// New checks cfg and builds the node. It starts nothing: the event
// broadcaster, the pod controller and the informers are Run's, and end with
// it.
func New(cfg Config) (*VNode, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	tlsCfg, serving, err := kubeletTLS(cfg)
	if err != nil {
		return nil, err
	}
	// configMaps and secrets come from the vnode's own informers: the same
	// ones whose events refresh the files, so a handler always reads what
	// its event announced.
	objects := informers.NewSharedInformerFactoryWithOptions(cfg.Kube, 10*time.Minute, informers.WithTransform(stripManagedFields))
	cfg.Files = listerFiles{configMaps: objects.Core().V1().ConfigMaps().Lister(), secrets: objects.Core().V1().Secrets().Lister()}
	pods := informers.NewSharedInformerFactoryWithOptions(cfg.Kube, time.Minute, nodeutil.PodInformerFilter(cfg.NodeName), informers.WithTransform(stripManagedFields))
	cfg.Pods = pods.Core().V1().Pods().Lister()
	cfg.Services = objects.Core().V1().Services().Lister()
	cfg.RuntimeClasses = objects.Node().V1().RuntimeClasses().Lister()
	v := &VNode{cfg: cfg, ready: make(chan struct{}), done: make(chan struct{}), objects: objects, pods: pods, tls: tlsCfg, serving: serving}
	v.provider = newProvider(cfg)
	spec := v.nodeSpec()
	// The status keeper has its own copy: virtual-kubelet reads spec
	// under its own lock, and the keeper changes its copy under its own.
	own := spec.DeepCopy()
	if v.nc, err = node.NewNodeController(&nodeStatus{eci: cfg.ECI, max: cfg.Capacity, node: own, reclaimable: v.provider.reclaimableSpot}, &spec, cfg.Kube.CoreV1().Nodes(),
		node.WithNodeEnableLeaseV1(nodeutil.NodeLeaseV1Client(cfg.Kube), node.DefaultLeaseDuration)); err != nil {
		return nil, fmt.Errorf("vnode: node controller: %w", err)
	}
	authz, err := newKubeletAuth(cfg)
	if err != nil {
		return nil, err
	}
	v.kubelet = &http.Server{Handler: authz.wrap(kubeletAPI(v.provider, cfg.Pods)), TLSConfig: tlsCfg, ReadHeaderTimeout: 30 * time.Second}
	return v, nil
}

// Ready is closed once the node runs and the groups were listed.
func (v *VNode) Ready() <-chan struct{} { return v.ready }

// Done is closed when Run has returned.
func (v *VNode) Done() <-chan struct{} { return v.done }

// Err is Run's error, once Done.
func (v *VNode) Err() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.err
}

// Run joins the cluster and serves until ctx ends; everything it started is
// stopped when it returns, but the groups keep running: the next vnode
// adopts them. It logs with ctx's logger (internal/log), and so do
// virtual-kubelet and klog while it runs (logbridge.go).
func (v *VNode) Run(ctx context.Context) (err error) {
	defer func() { v.finish(err) }()
	ctx = log.With(ctx, "node", v.cfg.NodeName)
	defer bridgeLogs(log.G(ctx))()
	ctx = withLibraryLoggers(ctx)
	events := v.startEvents()
	defer events.Shutdown() // last: the controllers below record events until they stop
	var wg sync.WaitGroup
	defer wg.Wait() // after cancel: deferred calls run last-in first-out
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := v.controllers(ctx); err != nil {
		return err
	}
	defer v.stopServices()
	v.provider.runCtx = ctx
	v.handleObjects(ctx)
	stopInformers, err := v.startInformers(ctx)
	defer stopInformers()
	if err != nil {
		return err
	}
	if err := v.startServingCert(ctx, &wg); err != nil {
		return err
	}
	ln, err := tls.Listen("tcp", v.cfg.ListenAddr, v.tls)
	if err != nil {
		return fmt.Errorf("vnode: kubelet API: %w", err)
	}
	// Its handlers log with the node's logger; net/http's own errors go to it too.
	v.kubelet.BaseContext = func(net.Listener) context.Context { return context.WithoutCancel(ctx) }
	v.kubelet.ErrorLog = httpErrorLog(log.G(ctx))
	go func() { _ = v.kubelet.Serve(ln) }()
	defer func() { _ = v.kubelet.Close() }()
	if v.profile != nil {
		started := make(chan error, 1)
		wg.Add(1)
		go func() { defer wg.Done(); v.runProfile(ctx, started) }()
		if err := <-started; err != nil {
			return err
		}
	}
	v.background(ctx, &wg)

	go func() { _ = v.pc.Run(ctx, podWorkers) }()
	defer func() { cancel(); <-v.pc.Done() }()
	select {
	case <-ctx.Done():
		return nil
	case <-v.pc.Ready():
	case <-v.pc.Done():
		return fmt.Errorf("vnode: pod controller: %w", v.pc.Err())
	}
	go func() { _ = v.nc.Run(ctx) }()
	defer func() { cancel(); <-v.nc.Done() }()
	select {
	case <-ctx.Done():
		return nil
	case <-v.nc.Ready():
	case <-v.nc.Done():
		return fmt.Errorf("vnode: node controller: %w", v.nc.Err())
	}
	select {
	case <-ctx.Done():
		return nil
	case <-v.provider.synced:
	}
	close(v.ready)
	log.G(ctx).Info("virtual node ready", "listen", v.cfg.ListenAddr)
	wg.Add(1)
	go func() { defer wg.Done(); v.collectOrphans(ctx) }()
	select {
	case <-ctx.Done():
		return nil
	case <-v.pc.Done():
		return fmt.Errorf("vnode: pod controller: %w", v.pc.Err())
	case <-v.nc.Done():
		return fmt.Errorf("vnode: node controller: %w", v.nc.Err())
	}
}

// startServingCert asks the cluster for the kubelet API's certificate and
// approves the node's own requests while ctx lasts, with
// RotateServerCertificates (servingcert.go).
func (v *VNode) startServingCert(ctx context.Context, wg *sync.WaitGroup) error {
	if !v.cfg.RotateServerCertificates {
		return nil
	}
	if err := v.serving.startRotation(ctx, v.cfg); err != nil {
		return err
	}
	wg.Add(1)
	go func() { defer wg.Done(); v.approveOwnCSRs(ctx) }()
	return nil
}

// background starts what runs beside the controllers until ctx ends: the
// groups' watch, the pods' events, the tokens' refresh, the pods' running
// cost, the node's own charge and the Services' table.
func (v *VNode) background(ctx context.Context, wg *sync.WaitGroup) {
	wg.Add(5)
	go func() { defer wg.Done(); v.writeCosts(ctx) }()
	go func() { defer wg.Done(); v.reportReady(ctx) }()
	go func() { defer wg.Done(); v.watchGroups(ctx) }()
	go func() { defer wg.Done(); v.podEvents.run(ctx) }()
	go func() { defer wg.Done(); v.refreshTokens(ctx) }()
	if v.services != nil {
		wg.Add(1)
		go func() { defer wg.Done(); v.services.run(ctx, servicesWorkers) }()
	}
	if v.cfg.ImageCaches {
		wg.Add(2)
		go func() { defer wg.Done(); v.syncCacheObjects(ctx, v.imageCacheKind()) }()
		go func() { defer wg.Done(); v.syncCacheObjects(ctx, v.dataCacheKind()) }()
	}
}

// stopServices shuts the Services' queue down, whether run ran or not.
func (v *VNode) stopServices() {
	if v.services != nil {
		v.services.queue.ShutDown()
	}
}

// finish records Run's error and closes Done.
func (v *VNode) finish(err error) {
	v.mu.Lock()
	v.err = err
	v.mu.Unlock()
	close(v.done)
}

// controllers builds what records Events and logs with Run's logger: the
// pod controller, eci-profile's source and the Services' controller (before
// the informers start: they add handlers to them).
func (v *VNode) controllers(ctx context.Context) (err error) {
	if v.pc, err = node.NewPodController(podControllerConfig(v.cfg, v.provider, v.pods, v.objects)); err != nil {
		return fmt.Errorf("vnode: pod controller: %w", err)
	}
	if v.cfg.Profile.ListenAddr != "" {
		v.profile = &profile.Source{Recorder: v.cfg.Recorder, Logger: log.G(ctx)}
		v.provider.profile = v.profile.Current
		v.watchProfile()
	}
	if !v.cfg.NoServices {
		v.services = newServicesController(v.cfg, v.objects, v.cfg.ECI)
	}
	return nil
}

// startEvents starts the broadcaster of the node's Events and gives the
// provider and the controllers its recorder.
func (v *VNode) startEvents() record.EventBroadcaster {
	eb := record.NewBroadcaster()
	eb.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: v.cfg.Kube.CoreV1().Events("")})
	v.cfg.Recorder = eb.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "eci-vnode", Host: v.cfg.NodeName})
	v.provider.cfg.Recorder = v.cfg.Recorder
	// The instances' own events come from the node's kubelet, as a
	// kubelet's do.
	v.podEvents = newPodEvents(v.provider, eb.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "kubelet", Host: v.cfg.NodeName}))
	return eb
}

// startInformers starts the informer factories and waits for their caches;
// stop ends them (it cancels ctx first: Shutdown waits for informers that
// stop only when ctx ends).
func (v *VNode) startInformers(ctx context.Context) (stop func(), err error) {
	ctx, cancel := context.WithCancel(ctx)
	stop = func() { cancel(); v.objects.Shutdown(); v.pods.Shutdown() }
	v.objects.Start(ctx.Done())
	v.pods.Start(ctx.Done())
	for _, f := range []informers.SharedInformerFactory{v.objects, v.pods} {
		for typ, ok := range f.WaitForCacheSync(ctx.Done()) {
			if !ok {
				return stop, fmt.Errorf("vnode: the %v informer did not sync", typ)
			}
		}
	}
	return stop, nil
}

// watchGroups keeps the provider's groups equal to this cluster's groups on
// the instance service and pushes every change to the pod's status.
func (v *VNode) watchGroups(ctx context.Context) {
	p := v.provider
	var once sync.Once
	p.cfg.ECI.InformGroups(ctx, client.ListOptions{LabelSelector: LabelCluster + "=" + p.cfg.ClusterID}, client.GroupHandler{
		Synced: func() { once.Do(func() { close(p.synced) }) },
		Event: func(ev client.GroupEvent) {
			if !p.mine(ev.Object) {
				return // another virtual node's of this cluster
			}
			if ev.Type == apiv1.Deleted {
				p.groupGone(ctx, ev.Object)
				return
			}
			p.remember(ctx, ev.Object)
		},
		Error: func(err error) { log.G(ctx).Warn("watch the instance service's groups", "err", err) },
	})
}

// mine tells whether this node made g: its node label, or none (groups made
// before the label was).
func (p *Provider) mine(g *apiv1.ContainerGroup) bool {
	n, ok := g.Metadata.Labels[LabelNode]
	return !ok || n == p.cfg.NodeName
}

// groupGone: a deleted group's pod gets its terminal status.
func (p *Provider) groupGone(ctx context.Context, g *apiv1.ContainerGroup) {
	key := podKey(g.Metadata.Labels[LabelPodNamespace], g.Metadata.Labels[LabelPodName])
	p.mu.Lock()
	pod := p.pods[key]
	p.mu.Unlock()
	if pod != nil && string(pod.UID) == g.Metadata.Labels[LabelPodUID] {
		p.gone(ctx, pod)
		return
	}
	p.mu.Lock()
	delete(p.groups, g.Metadata.Labels[LabelPodUID])
	delete(p.refused, g.Metadata.Labels[LabelPodUID])
	p.metrics.forget(g.Metadata.Labels[LabelPodUID])
	p.mu.Unlock()
}

// every runs f every d until ctx ends (the first run after d).
func every(ctx context.Context, d time.Duration, f func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f()
		}
	}
}

// nodeSpec is the node as docs/spec.md section 2 names it.
func (v *VNode) nodeSpec() corev1.Node {
	c := v.cfg
	labels := map[string]string{
		"type": "virtual-kubelet", "kubernetes.io/role": "agent", "k8s.aliyun.com/vnode": "true",
		"kubernetes.io/hostname": c.NodeName, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
	}
	for k, val := range c.Labels {
		labels[k] = val
	}
	n := corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: c.NodeName, Labels: labels},
		Status: corev1.NodeStatus{
			Capacity: c.Capacity, Allocatable: c.Capacity,
			Addresses:       []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: c.InternalIP}, {Type: corev1.NodeHostName, Address: c.NodeName}},
			DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: int32(port(c.ListenAddr))}},
			NodeInfo: corev1.NodeSystemInfo{
				KubeletVersion: "v1.35.4-eci-" + version.Get().Version, OperatingSystem: "linux", Architecture: "amd64",
				ContainerRuntimeVersion: "eci://" + version.Get().Version,
			},
			Conditions: readyConditions(true, "the instance service answers"),
		},
	}
	if c.Taint != nil {
		n.Spec.Taints = []corev1.Taint{*c.Taint}
	}
	return n
}

func port(addr string) int {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 10250
	}
	var n int
	_, _ = fmt.Sscanf(p, "%d", &n)
	return n
}

// listerFiles reads configMaps and secrets from the informers' caches.
type listerFiles struct {
	configMaps corev1listers.ConfigMapLister
	secrets    corev1listers.SecretLister
}

func (l listerFiles) configMap(namespace, name string) (map[string][]byte, error) {
	cm, err := l.configMaps.ConfigMaps(namespace).Get(name)
	if errors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := map[string][]byte{}
	for k, v := range cm.Data {
		out[k] = []byte(v)
	}
	for k, v := range cm.BinaryData {
		out[k] = v
	}
	return out, nil
}

func (l listerFiles) secret(namespace, name string) (map[string][]byte, error) {
	s, err := l.secrets.Secrets(namespace).Get(name)
	if errors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return s.Data, nil
}
