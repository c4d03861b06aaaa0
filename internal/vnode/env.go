package vnode

import (
	"fmt"
	"math"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/sizes"
)

// A container's environment is built as the kubelet builds it
// (pkg/kubelet/kubelet_pods.go makeEnvironmentVariables), in this order:
// the Services' variables (servicelinks.go), envFrom (each key with its
// prefix), then env, each value seeing the variables before it. The node,
// not virtual-kubelet, resolves it (SkipDownwardAPIResolution), so that
//
//   - fields known only once the instance is placed (status.podIP,
//     status.podIPs) are resolved by the host when the container starts
//     (apiv1.EnvFieldRef), where virtual-kubelet left the pod Pending;
//   - $(NAME) in env values, command, args and subPathExpr is expanded
//     there too, with those fields (apiv1.Container.ExpandEnv): the values
//     the node resolved (Services, configMaps, secrets, fields, resources)
//     are sent with $ escaped as $$, so that they are taken as they are, as
//     the kubelet takes them.

// containerEnv is c's environment for its group spec s (its size answers
// resourceFieldRef without limits).
func (p *Provider) containerEnv(pod *corev1.Pod, c corev1.Container, s *apiv1.ContainerGroupSpec) ([]apiv1.EnvVar, error) {
	env := p.serviceEnv(pod)
	for _, from := range c.EnvFrom {
		vars, err := p.envFrom(pod, from)
		if err != nil {
			return nil, err
		}
		env = append(env, vars...)
	}
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			env = append(env, apiv1.EnvVar{Name: e.Name, Value: e.Value})
			continue
		}
		v, ok, err := p.envValue(pod, c, e, s)
		switch {
		case err != nil:
			return nil, err
		case v.FieldRef != nil:
			env = append(env, v)
		case ok:
			env = append(env, apiv1.EnvVar{Name: e.Name, Value: escape(v.Value)})
		}
	}
	return env, nil
}

// escape makes a resolved value pass the host's expansion unchanged.
func escape(v string) string { return strings.ReplaceAll(v, "$", "$$") }

// envFrom is the variables of a configMap or secret, prefixed; keys that
// are not variable names are skipped with the kubelet's Event.
func (p *Provider) envFrom(pod *corev1.Pod, from corev1.EnvFromSource) ([]apiv1.EnvVar, error) {
	var data map[string][]byte
	var err error
	var what string
	var optional *bool
	switch {
	case from.ConfigMapRef != nil:
		what, optional = "configMap "+pod.Namespace+"/"+from.ConfigMapRef.Name, from.ConfigMapRef.Optional
		data, err = p.cfg.Files.configMap(pod.Namespace, from.ConfigMapRef.Name)
	case from.SecretRef != nil:
		what, optional = "secret "+pod.Namespace+"/"+from.SecretRef.Name, from.SecretRef.Optional
		data, err = p.cfg.Files.secret(pod.Namespace, from.SecretRef.Name)
	default:
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if data == nil {
		if optional != nil && *optional {
			return nil, nil
		}
		return nil, &errMissing{what: what}
	}
	var out []apiv1.EnvVar
	var invalid []string
	for _, k := range sortedKeys(data) {
		name := from.Prefix + k
		if !apiv1.ValidEnvName(name) {
			invalid = append(invalid, k)
			continue
		}
		out = append(out, apiv1.EnvVar{Name: name, Value: escape(string(data[k]))})
	}
	if len(invalid) > 0 {
		p.event(pod, corev1.EventTypeWarning, "InvalidEnvironmentVariableNames",
			fmt.Sprintf("Keys [%s] from the EnvFrom %s were skipped since they are considered invalid environment variable names.", strings.Join(invalid, ", "), what))
	}
	return out, nil
}

// envValue resolves one env entry's valueFrom; ok is false for an optional
// key that is missing (the variable is not set).
func (p *Provider) envValue(pod *corev1.Pod, c corev1.Container, e corev1.EnvVar, s *apiv1.ContainerGroupSpec) (apiv1.EnvVar, bool, error) {
	out := apiv1.EnvVar{Name: e.Name}
	vf := e.ValueFrom
	switch {
	case vf.ConfigMapKeyRef != nil:
		return p.keyValue(out, "configMap", p.cfg.Files.configMap, pod.Namespace, vf.ConfigMapKeyRef.Name, vf.ConfigMapKeyRef.Key, vf.ConfigMapKeyRef.Optional)
	case vf.SecretKeyRef != nil:
		return p.keyValue(out, "secret", p.cfg.Files.secret, pod.Namespace, vf.SecretKeyRef.Name, vf.SecretKeyRef.Key, vf.SecretKeyRef.Optional)
	case vf.FieldRef != nil:
		switch path := vf.FieldRef.FieldPath; path {
		case "status.podIP", "status.podIPs":
			out.FieldRef = &apiv1.EnvFieldRef{FieldPath: path}
		case "status.hostIP", "status.hostIPs":
			out.Value = p.cfg.InternalIP // the pod's status.hostIP (status.go)
		default:
			v, err := fieldValue(pod, path)
			if err != nil {
				return out, false, refuse("InvalidDownwardAPI", "container %q: env %s: downward API field %q is not supported; allowed: metadata.name, metadata.namespace, metadata.uid, metadata.labels['...'], metadata.annotations['...'], spec.nodeName, spec.serviceAccountName, status.hostIP(s), status.podIP(s)", c.Name, e.Name, path)
			}
			out.Value = v
		}
		return out, true, nil
	case vf.ResourceFieldRef != nil:
		v, err := resourceValue(pod, c.Name, vf.ResourceFieldRef, s)
		if err != nil {
			return out, false, refuse("InvalidDownwardAPI", "container %q: env %s: %v", c.Name, e.Name, err)
		}
		out.Value = v
		return out, true, nil
	}
	return out, false, nil
}

// keyValue is one key of a configMap or secret.
func (p *Provider) keyValue(out apiv1.EnvVar, kind string, get func(namespace, name string) (map[string][]byte, error), namespace, name, key string, optional *bool) (apiv1.EnvVar, bool, error) {
	data, err := get(namespace, name)
	if err != nil {
		return out, false, err
	}
	opt := optional != nil && *optional
	v, found := data[key]
	switch {
	case found:
		out.Value = string(v)
		return out, true, nil
	case opt:
		return out, false, nil
	case data == nil:
		return out, false, &errMissing{what: fmt.Sprintf("%s %s/%s", kind, namespace, name)}
	}
	return out, false, &errMissing{what: fmt.Sprintf("key %q of %s %s/%s", key, kind, namespace, name)}
}

// resourceValue is a resourceFieldRef's value as the kubelet gives it
// (ExtractContainerResourceValue): the quantity over the divisor, rounded
// up. A container without a limit gets its instance's size, where the
// kubelet gives the node's allocatable.
func resourceValue(pod *corev1.Pod, self string, ref *corev1.ResourceFieldSelector, s *apiv1.ContainerGroupSpec) (string, error) {
	name := ref.ContainerName
	if name == "" {
		name = self
	}
	all := slices.Concat(pod.Spec.InitContainers, pod.Spec.Containers)
	i := slices.IndexFunc(all, func(c corev1.Container) bool { return c.Name == name })
	if i < 0 {
		return "", fmt.Errorf("resourceFieldRef: no container %q", name)
	}
	c := all[i]
	size := instanceSize(s)
	divisor := ref.Divisor
	if divisor.IsZero() {
		divisor = resource.MustParse("1")
	}
	pick := func(l corev1.ResourceList, rn corev1.ResourceName, whole resource.Quantity) resource.Quantity {
		if q, ok := l[rn]; ok {
			return q
		}
		return whole
	}
	var q resource.Quantity
	switch ref.Resource {
	case "limits.cpu":
		q = pick(c.Resources.Limits, corev1.ResourceCPU, *resource.NewMilliQuantity(size.MilliCPU, resource.DecimalSI))
		return ceilDiv(q.MilliValue(), divisor.MilliValue()), nil
	case "requests.cpu":
		q = pick(c.Resources.Requests, corev1.ResourceCPU, resource.Quantity{})
		return ceilDiv(q.MilliValue(), divisor.MilliValue()), nil
	case "limits.memory":
		q = pick(c.Resources.Limits, corev1.ResourceMemory, *resource.NewQuantity(size.MemoryMiB<<20, resource.BinarySI))
		return ceilDiv(q.Value(), divisor.Value()), nil
	case "requests.memory":
		q = pick(c.Resources.Requests, corev1.ResourceMemory, resource.Quantity{})
		return ceilDiv(q.Value(), divisor.Value()), nil
	}
	return "", fmt.Errorf("resourceFieldRef: resource %q; allowed: limits.cpu, limits.memory, requests.cpu, requests.memory", ref.Resource)
}

func ceilDiv(v, d int64) string {
	if d <= 0 {
		d = 1
	}
	return fmt.Sprint(int64(math.Ceil(float64(v) / float64(d))))
}

// instanceSize is the size the service gives spec s (control's
// sizeCandidates, first candidate): the first eci-use-specs entry, else
// CPU and memory, else what the containers ask for, else the default;
// rounded up to a supported size.
func instanceSize(s *apiv1.ContainerGroupSpec) sizes.Size {
	want := sizes.Default
	switch {
	case len(s.Specs) > 0:
		if sz, err := sizes.Parse(s.Specs[0]); err == nil {
			want = sz
		}
	case s.CPU > 0 || s.Memory > 0:
		want = sizes.FromGiB(s.CPU, s.Memory)
	default:
		if cs := s.ContainersSize(); cs.MilliCPU > 0 || cs.MemoryMiB > 0 {
			want = cs
		}
	}
	if r, ok := sizes.Round(want); ok {
		return r
	}
	return want
}
