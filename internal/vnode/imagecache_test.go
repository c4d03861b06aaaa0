package vnode

import (
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	apiv1 "github.com/eci-dev/eci/api/v1"
)

// The image cache annotations become the group's spec; the matched cache
// is written back; none of them draws a "not supported" warning.
func TestImageCacheAnnotations(t *testing.T) {
	for _, c := range []struct {
		ann                    map[string]string
		id                     string
		disabled, perfectMatch bool
	}{
		{ann: nil},
		{ann: map[string]string{AnnAutoIMC: "false"}, disabled: true},
		{ann: map[string]string{AnnAutoIMC: "false", AnnIMCID: "imc-0123456789abcdef"}, id: "imc-0123456789abcdef"},
		{ann: map[string]string{AnnIMCPerfectMatch: "true"}, perfectMatch: true},
	} {
		var s apiv1.ContainerGroupSpec
		p := pod(func(p *corev1.Pod) { p.Annotations = c.ann })
		if err := annotations(p, &s); err != nil || s.ImageCacheID != c.id || s.DisableImageCacheMatch != c.disabled || s.ImageCachePerfectMatch != c.perfectMatch {
			t.Errorf("%v: %v, %+v", c.ann, err, s)
		}
		if w := annotationWarnings(p); len(w) != 0 {
			t.Errorf("%v: warnings %v", c.ann, w)
		}
	}
	var r *refusal
	if err := annotations(pod(func(p *corev1.Pod) { p.Annotations = map[string]string{AnnAutoIMC: "maybe"} }), &apiv1.ContainerGroupSpec{}); !errors.As(err, &r) || !strings.Contains(r.Message, AnnAutoIMC) {
		t.Errorf("eci-auto-imc=maybe: %v", err)
	}
	g := &apiv1.ContainerGroup{Metadata: apiv1.ObjectMeta{ID: "eci-1"}, Status: apiv1.ContainerGroupStatus{MatchedImageCache: "imc-0123456789abcdef"}}
	if got := writtenBack(g)[AnnMatchedImageCache]; got != "imc-0123456789abcdef" {
		t.Errorf("written back %q", got)
	}
}
