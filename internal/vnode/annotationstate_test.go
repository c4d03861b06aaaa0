package vnode

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// specAnnotations are the k8s.aliyun.com/ annotations docs/spec.md names
// in section 6 (eci-spot-* spelled out from section 5).
func specAnnotations(t *testing.T) []string {
	t.Helper()
	raw, err := os.ReadFile("../../docs/spec.md")
	if err != nil {
		t.Fatal(err)
	}
	spec := string(raw)
	start := strings.Index(spec, "## 6. Pod annotations")
	end := strings.Index(spec[start:], "\n## 7.")
	var out []string
	for _, m := range regexp.MustCompile("`([a-z][a-z0-9.*/-]*)`").FindAllStringSubmatch(spec[start:start+end], -1) {
		name := m[1]
		switch {
		case strings.Contains(name, "/"): // kubernetes.io/…, read as they are
		case name == "eci-spot-*":
			out = append(out, "eci-spot-strategy", "eci-spot-price-limit", "eci-spot-duration")
		case strings.Contains(name, "-"):
			out = append(out, name)
		}
	}
	if len(out) < 30 {
		t.Fatalf("read %d annotations from docs/spec.md section 6: %v", len(out), out)
	}
	return out
}

// None of the spec's annotations is silently ignored: each is read,
// written back, or warned about; docs/annotations.md lists each.
func TestEveryAnnotationHasAState(t *testing.T) {
	doc, err := os.ReadFile("../../docs/annotations.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, short := range specAnnotations(t) {
		k := annPrefix + short
		known := slices.Contains(readAnnotations, k) || slices.Contains(writtenAnnotations, k) || unsupportedAnnotations[short] != ""
		if !known {
			t.Errorf("%s: neither read, written back nor warned about", k)
		}
		if !strings.Contains(string(doc), "`"+short+"`") {
			t.Errorf("%s is not in docs/annotations.md", k)
		}
	}
	po := pod(func(p *corev1.Pod) {
		p.Annotations = map[string]string{annPrefix + "eci-compute-category": "economy", annPrefix + "eci-use-spec": "2-4Gi",
			AnnUseSpecs: "2-4Gi", AnnInstanceID: "x", "example.com/other": "y"}
	})
	w := annotationWarnings(po)
	if len(w) != 2 || !strings.Contains(w[0], "eci-compute-category is not supported") || !strings.Contains(w[0], "one compute category") ||
		!strings.Contains(w[1], "eci-use-spec is not one eci knows") {
		t.Fatalf("warnings %q", w)
	}
}
