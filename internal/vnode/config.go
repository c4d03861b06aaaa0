package vnode

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/client-go/kubernetes"
	corev1listers "k8s.io/client-go/listers/core/v1"
	nodev1listers "k8s.io/client-go/listers/node/v1"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/record"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/client"
	"github.com/eci-dev/eci/internal/sizes"
)

// Config of a virtual node.
type Config struct {
	// NodeName is the node's name in the cluster.
	NodeName string
	// ClusterID tells this cluster's groups from other clusters' on the same
	// instance service (a label on every group); default: NodeName. It names
	// the cluster's table of virtual IPs too (tableName: the id itself when
	// it is a DNS label, else a label derived from it), which every group
	// reaches.
	ClusterID string
	// Kube is the cluster; ECI the instance service, with a tenant token.
	Kube kubernetes.Interface
	ECI  *client.Client
	// Taint keeps ordinary pods off the node (docs/spec.md section 2:
	// virtual-kubelet.io/provider=eci:NoSchedule); nil: no taint.
	Taint *corev1.Taint
	// Labels are added to the node's (type=virtual-kubelet,
	// kubernetes.io/role=agent, k8s.aliyun.com/vnode=true).
	Labels map[string]string
	// Capacity of the node: cpu, memory, pods (defaults: 1000, 4Ti, 1000).
	Capacity corev1.ResourceList
	// InternalIP is the node's address, where the apiserver reaches the
	// kubelet API on ListenAddr (":10250").
	InternalIP string
	ListenAddr string
	// TLSCertFile and TLSKeyFile serve the kubelet API; empty: a self-signed
	// certificate. ClientCAFile verifies the apiserver's client certificate
	// (its --kubelet-client-certificate); required.
	TLSCertFile, TLSKeyFile, ClientCAFile string
	// RotateServerCertificates asks the cluster's kubelet-serving signer
	// for the serving certificate and renews it (servingcert.go), as the
	// kubelet's flag of that name; CertDir keeps it across restarts (empty:
	// in memory). Not with TLSCertFile.
	RotateServerCertificates bool
	CertDir                  string
	// DefaultSize is the size of a pod that asks for no CPU or memory
	// (defaultsize.go); zero: the spec's 2 vCPU / 4 GiB. eci-profile's
	// defaultSize wins over it.
	DefaultSize sizes.Size
	// ClusterDNS and ClusterDomain make ClusterFirst pods' resolv.conf.
	ClusterDNS    []string
	ClusterDomain string
	// OrphanInterval is how often groups whose pod is gone are looked for
	// (30 s).
	OrphanInterval time.Duration
	// CostInterval is how often the pods' running cost is written on them
	// (costs.go; a minute); negative: never.
	CostInterval time.Duration
	// Tags allocate the node's own charge (charge.go; at most 20), and
	// ChargeInterval is how often it tells the service it is Ready (30 s).
	Tags           map[string]string
	ChargeInterval time.Duration

	// ImageCaches keeps the cluster's ImageCache and DataCache objects in
	// the instance service as the tenant's caches (cacheobjects.go); one
	// node per cluster should.
	ImageCaches bool

	// NoServices leaves the cluster's table of virtual IPs alone; by default
	// the node fills it from the cluster's Services and EndpointSlices
	// (services.go), so that instances reach ClusterIPs.
	NoServices bool

	// Profile serves the eci-profile webhook (internal/profile); its zero
	// value serves none.
	Profile ProfileConfig

	// Files resolves configMaps and secrets (the informers' listers) and
	// Pods is the pod lister, set by New; Recorder records Events on pods,
	// set by Run (its broadcaster runs while Run does). The node logs with
	// the logger of Run's context (internal/log), as every daemon does.
	Files files
	// Services lists the cluster's Services (the containers' Service
	// variables, servicelinks.go), set by New.
	Services corev1listers.ServiceLister
	// RuntimeClasses resolves a pod's runtimeClassName to its handler,
	// set by New.
	RuntimeClasses nodev1listers.RuntimeClassLister
	Recorder       record.EventRecorder
	Pods           corev1listers.PodLister
}

// ProfileConfig: where and how the vnode serves the eci-profile webhook.
type ProfileConfig struct {
	// ListenAddr serves the webhook (HTTPS); empty: no webhook.
	ListenAddr string
	// URL is where the apiserver calls it; default
	// https://<InternalIP>:<port of ListenAddr>/eci-profile/mutate.
	URL string
	// Namespace is the vnode's own: the webhook's certificate is kept in a
	// Secret there, and its pods are never mutated. Default kube-system.
	Namespace string
	// ExcludeNamespaces are never mutated, besides kube-system and
	// Namespace.
	ExcludeNamespaces []string
	// CertFile, KeyFile and CAFile serve the webhook with given files
	// (CAFile goes to the caBundle); empty: a CA the vnode creates and keeps.
	CertFile, KeyFile, CAFile string
}

// ParseCapacity reads the node's capacity flags (quantities such as 1000,
// 4Ti).
func ParseCapacity(cpu, memory, pods string) (corev1.ResourceList, error) {
	out := corev1.ResourceList{}
	for name, v := range map[corev1.ResourceName]string{corev1.ResourceCPU: cpu, corev1.ResourceMemory: memory, corev1.ResourcePods: pods} {
		q, err := resource.ParseQuantity(v)
		if err != nil {
			return nil, fmt.Errorf("capacity %s %q: %w", name, v, err)
		}
		out[name] = q
	}
	return out, nil
}

// ParseTaint reads --taint, KEY=VALUE:EFFECT; empty is the default taint.
func ParseTaint(s string) (*corev1.Taint, error) {
	if s == "" {
		return Taint(), nil
	}
	key, rest, ok := strings.Cut(s, "=")
	value, effect, ok2 := strings.Cut(rest, ":")
	if !ok || !ok2 || key == "" {
		return nil, fmt.Errorf("--taint %q: want KEY=VALUE:EFFECT", s)
	}
	switch e := corev1.TaintEffect(effect); e {
	case corev1.TaintEffectNoSchedule, corev1.TaintEffectPreferNoSchedule, corev1.TaintEffectNoExecute:
		return &corev1.Taint{Key: key, Value: value, Effect: e}, nil
	}
	return nil, fmt.Errorf("--taint %q: effect %q; allowed: NoSchedule, PreferNoSchedule, NoExecute", s, effect)
}

// Taint is the virtual node's default taint (docs/spec.md section 2).
func Taint() *corev1.Taint {
	return &corev1.Taint{Key: "virtual-kubelet.io/provider", Value: "eci", Effect: corev1.TaintEffectNoSchedule}
}

func (c *Config) validate() error {
	switch {
	case c.NodeName == "":
		return errors.New("vnode: a node name is required (--node-name)")
	case c.Kube == nil:
		return errors.New("vnode: a Kubernetes client is required (--kubeconfig)")
	case c.ECI == nil:
		return errors.New("vnode: a client of the instance service is required (--server, --token)")
	case net.ParseIP(c.InternalIP) == nil:
		return errors.New("vnode: --internal-ip must be the IP the apiserver reaches this node's kubelet API at")
	case c.RotateServerCertificates && c.TLSCertFile != "":
		return errors.New("vnode: --rotate-server-certificates and --tls-cert-file both name the serving certificate: choose one")
	case (c.TLSCertFile == "") != (c.TLSKeyFile == ""):
		return errors.New("vnode: --tls-cert-file and --tls-key-file go together")
	case c.ClientCAFile == "":
		return errors.New("vnode: --client-ca-file is required: the CA of the apiserver's kubelet client certificate (the kubelet API takes no anonymous callers)")
	}
	if c.ClusterID == "" {
		c.ClusterID = c.NodeName
	}
	if c.ListenAddr == "" {
		c.ListenAddr = ":10250"
	}
	if err := apiv1.ValidateVirtualNodeHeartbeat(c.NodeName, &apiv1.VirtualNodeHeartbeat{Tags: c.Tags}); err != nil {
		return fmt.Errorf("vnode: --node-name and --tag: %w", err)
	}
	if c.CostInterval == 0 {
		c.CostInterval = time.Minute
	}
	if c.OrphanInterval <= 0 {
		c.OrphanInterval = 30 * time.Second
	}
	if c.ClusterDomain == "" {
		c.ClusterDomain = "cluster.local"
	}
	if c.Capacity == nil {
		c.Capacity = corev1.ResourceList{
			corev1.ResourceCPU:    resource.MustParse("1000"),
			corev1.ResourceMemory: resource.MustParse("4Ti"),
			corev1.ResourcePods:   resource.MustParse("1000"),
		}
	}
	if c.Profile.ListenAddr != "" {
		if _, _, err := net.SplitHostPort(c.Profile.ListenAddr); err != nil {
			return fmt.Errorf("vnode: --profile-listen %q: want HOST:PORT", c.Profile.ListenAddr)
		}
		if (c.Profile.CertFile == "") != (c.Profile.KeyFile == "") || (c.Profile.CertFile != "" && c.Profile.CAFile == "") {
			return errors.New("vnode: --profile-tls-cert-file, --profile-tls-key-file and --profile-ca-file go together")
		}
		if c.Profile.Namespace == "" {
			c.Profile.Namespace = "kube-system"
		}
	}
	return nil
}

// KubeClient is a client of the cluster in kubeconfig (in-cluster config
// when empty and running in a pod).
func KubeClient(kubeconfig string) (kubernetes.Interface, error) {
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("--kubeconfig: %w", err)
	}
	// A node reports the status of every pod it runs: client-go's default of
	// 5 requests/s would hold a burst of pods back (the kubelet's is 50/100).
	rc.QPS, rc.Burst = 100, 200
	return kubernetes.NewForConfig(rc)
}
