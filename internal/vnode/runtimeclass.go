package vnode

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// runtimeHandler is the runtime handler of pod's RuntimeClass, as the
// kubelet looks it up: none without a runtimeClassName; a class that does
// not exist (deleted after the pod was admitted) makes the pod wait for
// it, as the kubelet retries its sandbox. The service places the group on
// a host offering the handler only (api.md, runtimeHandler).
func (p *Provider) runtimeHandler(pod *corev1.Pod) (string, error) {
	name := pod.Spec.RuntimeClassName
	if name == nil || *name == "" {
		return "", nil
	}
	if p.cfg.RuntimeClasses == nil {
		return "", &refusal{Reason: "RuntimeClassNotSupported", Message: fmt.Sprintf("runtimeClassName %q: this node reads no RuntimeClasses", *name)}
	}
	rc, err := p.cfg.RuntimeClasses.Get(*name)
	if apierrors.IsNotFound(err) {
		return "", &errMissing{what: fmt.Sprintf("RuntimeClass %q", *name)}
	}
	if err != nil {
		return "", fmt.Errorf("RuntimeClass %q: %w", *name, err)
	}
	return rc.Handler, nil
}
