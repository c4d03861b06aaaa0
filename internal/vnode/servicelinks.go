package vnode

import (
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"

	apiv1 "github.com/eci-dev/eci/api/v1"
)

// serviceEnv is the Services' variables the kubelet gives every container
// (pkg/kubelet/kubelet_pods.go getServiceEnvVarMap, pkg/kubelet/envvars):
// those of the pod's namespace's Services with a ClusterIP while
// enableServiceLinks (default true), and always the kubernetes Service's
// of the default namespace, which in-cluster clients read
// (KUBERNETES_SERVICE_HOST). Escaped: the host expands nothing in them.
func (p *Provider) serviceEnv(pod *corev1.Pod) []apiv1.EnvVar {
	if p.cfg.Services == nil {
		return nil
	}
	links := pod.Spec.EnableServiceLinks == nil || *pod.Spec.EnableServiceLinks
	byName := map[string]*corev1.Service{}
	if links {
		// A lister's error is only ever "not found"; an empty list then.
		own, _ := p.cfg.Services.Services(pod.Namespace).List(labels.Everything())
		for _, svc := range own {
			if hasClusterIP(svc) {
				byName[svc.Name] = svc
			}
		}
	}
	if _, ok := byName["kubernetes"]; !ok { // the namespace's own wins, as on a kubelet
		if svc, err := p.cfg.Services.Services("default").Get("kubernetes"); err == nil && hasClusterIP(svc) {
			byName["kubernetes"] = svc
		}
	}
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	sort.Strings(names)
	var out []apiv1.EnvVar
	for _, n := range names {
		out = append(out, serviceVars(byName[n])...)
	}
	for i := range out {
		out[i].Value = escape(out[i].Value)
	}
	return out
}

func hasClusterIP(svc *corev1.Service) bool {
	return svc.Spec.ClusterIP != "" && svc.Spec.ClusterIP != corev1.ClusterIPNone
}

// serviceVars are one Service's variables (envvars.FromServices): its
// host and ports, and the Docker links' forms.
func serviceVars(svc *corev1.Service) []apiv1.EnvVar {
	if len(svc.Spec.Ports) == 0 {
		return nil
	}
	name := strings.ToUpper(strings.ReplaceAll(svc.Name, "-", "_"))
	ip := svc.Spec.ClusterIP
	first := svc.Spec.Ports[0]
	out := []apiv1.EnvVar{
		{Name: name + "_SERVICE_HOST", Value: ip},
		{Name: name + "_SERVICE_PORT", Value: strconv.Itoa(int(first.Port))},
	}
	for _, sp := range svc.Spec.Ports {
		if sp.Name != "" {
			out = append(out, apiv1.EnvVar{Name: name + "_SERVICE_PORT_" + strings.ToUpper(strings.ReplaceAll(sp.Name, "-", "_")), Value: strconv.Itoa(int(sp.Port))})
		}
	}
	for i, sp := range svc.Spec.Ports {
		proto := string(sp.Protocol)
		if proto == "" {
			proto = string(corev1.ProtocolTCP)
		}
		url := fmt.Sprintf("%s://%s", strings.ToLower(proto), net.JoinHostPort(ip, strconv.Itoa(int(sp.Port))))
		if i == 0 { // Docker's links single out the first port
			out = append(out, apiv1.EnvVar{Name: name + "_PORT", Value: url})
		}
		prefix := fmt.Sprintf("%s_PORT_%d_%s", name, sp.Port, strings.ToUpper(proto))
		out = append(out,
			apiv1.EnvVar{Name: prefix, Value: url},
			apiv1.EnvVar{Name: prefix + "_PROTO", Value: strings.ToLower(proto)},
			apiv1.EnvVar{Name: prefix + "_PORT", Value: strconv.Itoa(int(sp.Port))},
			apiv1.EnvVar{Name: prefix + "_ADDR", Value: ip})
	}
	return out
}
