package vnode

import (
	"errors"
	"os"
	"path/filepath"
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

// The chart installs the same ImageCache and DataCache definitions the
// node installs.
func TestImageCacheCRDInTheChart(t *testing.T) {
	for file, crd := range map[string][]byte{"imagecache.yaml": imageCacheCRD, "datacache.yaml": dataCacheCRD} {
		chart, err := os.ReadFile(filepath.Join("..", "..", "deploy", "helm", "eci-vnode", "crds", file))
		if err != nil {
			t.Fatal(err)
		}
		if string(chart) != string(crd) {
			t.Fatalf("deploy/helm/eci-vnode/crds/%s differs from internal/vnode/crds/%s: copy it", file, file)
		}
	}
}

// An object's cache status, as kubectl shows it.
func TestImageCacheObjectStatus(t *testing.T) {
	c := &apiv1.ImageCache{Metadata: apiv1.ObjectMeta{ID: "imc-0123456789abcdef"}, Status: apiv1.ImageCacheStatus{
		Phase: apiv1.ImageCacheUpdating, Progress: "50%", Hosts: 2, HostsReady: 1, SizeBytes: 3 << 20}}
	st := objectStatus(c, 4)
	if st.Phase != "Updating" || st.HostsReady != "1/2" || st.Size != "3.0Mi" || st.ImageCacheID != c.Metadata.ID || st.ObservedGeneration != 4 {
		t.Fatalf("%+v", st)
	}
	if got := cacheName(strings.Repeat("a.b", 30)); len(got) > 63 || strings.Contains(got, ".") {
		t.Fatalf("name %q", got)
	}
}
