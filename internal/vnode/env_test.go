package vnode

import (
	"context"
	"errors"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1listers "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	apiv1 "github.com/eci-dev/eci/api/v1"
)

// mapFiles serves configMaps and secrets from maps ("namespace/name").
type mapFiles struct{ configMaps, secrets map[string]map[string][]byte }

func (f mapFiles) configMap(ns, name string) (map[string][]byte, error) {
	return f.configMaps[ns+"/"+name], nil
}
func (f mapFiles) secret(ns, name string) (map[string][]byte, error) {
	return f.secrets[ns+"/"+name], nil
}

func serviceLister(t *testing.T, svcs ...*corev1.Service) corev1listers.ServiceLister {
	idx := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	for _, s := range svcs {
		if err := idx.Add(s); err != nil {
			t.Fatal(err)
		}
	}
	return corev1listers.NewServiceLister(idx)
}

func svc(ns, name, ip string, ports ...corev1.ServicePort) *corev1.Service {
	return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: corev1.ServiceSpec{ClusterIP: ip, Ports: ports}}
}

// The kubelet's environment: Services' variables, envFrom with its prefix,
// env in order; resolved values escaped for the host's expansion; fields
// known only after placement left to the host.
func TestContainerEnv(t *testing.T) {
	files := mapFiles{
		configMaps: map[string]map[string][]byte{"shop/cfg": {"MODE": []byte("fast"), "a b": []byte("skipped")}},
		secrets:    map[string]map[string][]byte{"shop/db": {"password": []byte("pa$(X)ss")}},
	}
	services := serviceLister(t,
		svc("default", "kubernetes", "198.18.96.1", corev1.ServicePort{Name: "https", Port: 443, Protocol: corev1.ProtocolTCP}),
		svc("shop", "web-api", "198.18.96.20", corev1.ServicePort{Name: "http", Port: 80}),
		svc("shop", "headless", corev1.ClusterIPNone, corev1.ServicePort{Port: 80}),
		svc("other", "elsewhere", "198.18.96.30", corev1.ServicePort{Port: 80}))
	p := &Provider{cfg: Config{ClusterID: "c1", Files: files, Services: services, InternalIP: "198.18.64.1"}}
	yes := true
	po := pod(func(p *corev1.Pod) {
		c := &p.Spec.Containers[0]
		c.Resources.Limits = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m")}
		c.EnvFrom = []corev1.EnvFromSource{
			{Prefix: "CFG_", ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}},
			{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "absent"}, Optional: &yes}},
		}
		c.Env = []corev1.EnvVar{
			{Name: "PASSWORD", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "db"}, Key: "password"}}},
			{Name: "OPTIONAL", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "db"}, Key: "nope", Optional: &yes}}},
			{Name: "POD_IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
			{Name: "HOST_IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.hostIP"}}},
			{Name: "UID", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.uid"}}},
			{Name: "CPU_M", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.cpu", Divisor: resource.MustParse("1m")}}},
			{Name: "CPU", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.cpu"}}},
			{Name: "MEM_MI", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.memory", Divisor: resource.MustParse("1Mi")}}},
			{Name: "URL", Value: "http://$(POD_IP)/"},
		}
	})
	po.Annotations[AnnUseSpecs] = "1-2Gi"
	g, err := p.toGroup(context.Background(), po)
	if err != nil {
		t.Fatal(err)
	}
	c := g.Spec.Containers[0]
	if !c.ExpandEnv {
		t.Fatal("ExpandEnv not set")
	}
	got := map[string]apiv1.EnvVar{}
	var order []string
	for _, e := range c.Env {
		got[e.Name] = e
		order = append(order, e.Name)
	}
	for name, want := range map[string]string{
		"KUBERNETES_SERVICE_HOST": "198.18.96.1", "KUBERNETES_SERVICE_PORT": "443", "KUBERNETES_SERVICE_PORT_HTTPS": "443",
		"KUBERNETES_PORT": "tcp://198.18.96.1:443", "KUBERNETES_PORT_443_TCP_ADDR": "198.18.96.1",
		"WEB_API_SERVICE_HOST": "198.18.96.20", "WEB_API_SERVICE_PORT_HTTP": "80", "WEB_API_PORT_80_TCP_PROTO": "tcp",
		"CFG_MODE": "fast", "PASSWORD": "pa$$(X)ss", "HOST_IP": "198.18.64.1", "UID": "uid-1",
		"CPU_M": "500", "CPU": "1", "MEM_MI": "2048", "URL": "http://$(POD_IP)/",
	} {
		if got[name].Value != want {
			t.Errorf("%s = %q, want %q", name, got[name].Value, want)
		}
	}
	for _, absent := range []string{"OPTIONAL", "CFG_a b", "HEADLESS_SERVICE_HOST", "ELSEWHERE_SERVICE_HOST"} {
		if _, ok := got[absent]; ok {
			t.Errorf("%s is set", absent)
		}
	}
	if f := got["POD_IP"].FieldRef; f == nil || f.FieldPath != "status.podIP" || got["POD_IP"].Value != "" {
		t.Errorf("POD_IP %+v: want the host to resolve it", got["POD_IP"])
	}
	if order[0] != "KUBERNETES_SERVICE_HOST" || order[len(order)-1] != "URL" {
		t.Errorf("order %v: Services first, env last", order)
	}

	// enableServiceLinks: false leaves only the kubernetes Service's.
	no := false
	po.Spec.EnableServiceLinks = &no
	g, _ = p.toGroup(context.Background(), po)
	for _, e := range g.Spec.Containers[0].Env {
		if e.Name == "WEB_API_SERVICE_HOST" {
			t.Error("a Service's variables without service links")
		}
	}

	// An init container reads its own resources (the kubelet looks in
	// both lists).
	initPod := pod(func(p *corev1.Pod) {
		p.Spec.InitContainers = []corev1.Container{{Name: "init", Image: "busybox", Resources: corev1.ResourceRequirements{Limits: res("250m", "")},
			Env: []corev1.EnvVar{{Name: "CPU_M", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.cpu", Divisor: resource.MustParse("1m")}}}}}}
	})
	g, err = p.toGroup(context.Background(), initPod)
	if err != nil {
		t.Fatal(err)
	}
	if env := g.Spec.InitContainers[0].Env; env[len(env)-1].Value != "250" {
		t.Errorf("init container's limits.cpu: %+v", env)
	}

	// A missing secret waits (CreateContainerConfigError); an unknown field
	// is refused.
	missing := pod(func(p *corev1.Pod) {
		p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "X", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "gone"}, Key: "k"}}}}
	})
	var m *errMissing
	if _, err := p.toGroup(context.Background(), missing); !errors.As(err, &m) {
		t.Errorf("missing secret: %v", err)
	}
	bad := pod(func(p *corev1.Pod) {
		p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "X", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.schedulerName"}}}}
	})
	var r *refusal
	if _, err := p.toGroup(context.Background(), bad); !errors.As(err, &r) || r.Reason != "InvalidDownwardAPI" {
		t.Errorf("unknown field: %v", err)
	}
}
