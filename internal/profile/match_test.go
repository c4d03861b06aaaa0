package profile

import (
	"encoding/json"
	"slices"
	"testing"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

var testNode = VirtualNode(&corev1.Taint{Key: "virtual-kubelet.io/provider", Value: "eci", Effect: corev1.TaintEffectNoSchedule})

func mustParse(t *testing.T, selectors string) *Profile {
	t.Helper()
	p, err := Parse(map[string]string{KeySelectors: selectors, KeyVSwitchIDs: "vsw-p", KeySecurityGroupID: "sg-p"})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// apply runs the decision's patch through a JSON patch implementation, as
// the apiserver does.
func apply(t *testing.T, pod *corev1.Pod, ops []Op) *corev1.Pod {
	t.Helper()
	doc, _ := json.Marshal(pod)
	raw, _ := json.Marshal(ops)
	patch, err := jsonpatch.DecodePatch(raw)
	if err != nil {
		t.Fatal(err)
	}
	out, err := patch.Apply(doc)
	if err != nil {
		t.Fatalf("patch %s on %s: %v", raw, doc, err)
	}
	var res corev1.Pod
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatal(err)
	}
	return &res
}

func TestDecide(t *testing.T) {
	p := mustParse(t, `[
	  {"name":"web","objectSelector":{"matchLabels":{"app":"web"}},"effect":{"annotations":{"a":"from-web","k8s.aliyun.com/eci-use-specs":"2-4Gi"},"labels":{"tier":"front"}}},
	  {"name":"data","namespaceSelector":{"matchExpressions":[{"key":"team","operator":"In","values":["data"]}]},"objectSelector":{"matchExpressions":[{"key":"batch","operator":"Exists"}]},"policy":"fair"},
	  {"name":"burst","objectSelector":{"matchExpressions":[{"key":"app","operator":"In","values":["api"]},{"key":"canary","operator":"DoesNotExist"}]},"policy":"normalNodePrefer","unschedulableSeconds":7},
	  {"name":"not-prod","namespaceSelector":{"matchExpressions":[{"key":"env","operator":"NotIn","values":["prod"]}]},"objectSelector":{"matchLabels":{"app":"tool"}}},
	  {"name":"everyone","effect":{"annotations":{"a":"from-everyone","b":"from-everyone"}}}
	]`)
	pod := func(labels, annotations map[string]string, spec corev1.PodSpec) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", Labels: labels, Annotations: annotations}, Spec: spec}
	}
	for _, tc := range []struct {
		name    string
		pod     *corev1.Pod
		ns      map[string]string
		by      string
		policy  Policy
		matched []string
		check   func(*corev1.Pod) string
	}{
		{name: "no match: nothing", pod: pod(map[string]string{"app": "other"}, nil, corev1.PodSpec{}), by: ""},
		{name: "objectSelector matchLabels; effects in order, earlier wins; profile defaults", pod: pod(map[string]string{"app": "web"}, nil, corev1.PodSpec{}),
			by: "web", policy: VirtualNodeOnly, matched: []string{"web", "everyone"}, check: func(p *corev1.Pod) string {
				switch {
				case p.Annotations["a"] != "from-web" || p.Annotations["b"] != "from-everyone" || p.Annotations["k8s.aliyun.com/eci-use-specs"] != "2-4Gi":
					return "annotations"
				case p.Labels["tier"] != "front" || p.Labels["app"] != "web":
					return "labels"
				case p.Annotations[AnnVSwitch] != "vsw-p" || p.Annotations[AnnSecurityGroup] != "sg-p" || p.Annotations[AnnSelector] != "web":
					return "defaults"
				case p.Spec.NodeSelector["type"] != "virtual-kubelet" || len(p.Spec.Tolerations) != 1 || p.Spec.Tolerations[0].Key != testNode.Taint.Key:
					return "node selection"
				}
				return ""
			}},
		{name: "a value already on the pod is never overwritten", pod: pod(map[string]string{"app": "web", "tier": "mine"}, map[string]string{"a": "mine", AnnVSwitch: "vsw-mine"},
			corev1.PodSpec{NodeSelector: map[string]string{"type": "mine"}, Tolerations: []corev1.Toleration{{Key: "other", Operator: corev1.TolerationOpExists}}}),
			by: "web", policy: VirtualNodeOnly, matched: []string{"web", "everyone"}, check: func(p *corev1.Pod) string {
				switch {
				case p.Annotations["a"] != "mine" || p.Labels["tier"] != "mine" || p.Annotations[AnnVSwitch] != "vsw-mine" || p.Spec.NodeSelector["type"] != "mine":
					return "overwrote"
				case len(p.Spec.Tolerations) != 2 || p.Spec.Tolerations[0].Key != "other":
					return "tolerations"
				}
				return ""
			}},
		{name: "both selectors must match (namespace In, object Exists): fair adds the toleration only", pod: pod(map[string]string{"batch": "x"}, nil, corev1.PodSpec{}), ns: map[string]string{"team": "data"},
			by: "data", policy: Fair, matched: []string{"data", "everyone"}, check: func(p *corev1.Pod) string {
				if len(p.Spec.Tolerations) != 1 || p.Spec.NodeSelector != nil {
					return "fair"
				}
				return ""
			}},
		{name: "only one of both selectors matches: no match", pod: pod(map[string]string{"batch": "x"}, nil, corev1.PodSpec{}), ns: map[string]string{"team": "web"}, by: ""},
		{name: "In and DoesNotExist; normalNodePrefer marks the pod only", pod: pod(map[string]string{"app": "api"}, nil, corev1.PodSpec{}),
			by: "burst", policy: NormalNodePrefer, matched: []string{"burst", "everyone"}, check: func(p *corev1.Pod) string {
				if p.Annotations[AnnOverflowAfter] != "7" || len(p.Spec.Tolerations) != 0 || p.Spec.NodeSelector != nil {
					return "normalNodePrefer"
				}
				return ""
			}},
		{name: "DoesNotExist refuses a pod with the label", pod: pod(map[string]string{"app": "api", "canary": "1"}, nil, corev1.PodSpec{}), by: ""},
		{name: "NotIn matches a namespace without the label", pod: pod(map[string]string{"app": "tool"}, nil, corev1.PodSpec{}), ns: map[string]string{}, by: "not-prod", policy: VirtualNodeOnly, matched: []string{"not-prod", "everyone"}},
		{name: "NotIn refuses a prod namespace", pod: pod(map[string]string{"app": "tool"}, nil, corev1.PodSpec{}), ns: map[string]string{"env": "prod"}, by: ""},
		{name: "the eci label on the pod routes it", pod: pod(map[string]string{LabelECI: "true"}, nil, corev1.PodSpec{}), by: "label " + LabelECI + " on the pod", policy: VirtualNodeOnly, matched: []string{"everyone"}},
		{name: "the eci label on the namespace routes it", pod: pod(nil, nil, corev1.PodSpec{}), ns: map[string]string{LabelECI: "true"}, by: "label " + LabelECI + " on the namespace", policy: VirtualNodeOnly, matched: []string{"everyone"},
			check: func(p *corev1.Pod) string {
				if p.Annotations["a"] != "from-everyone" || p.Spec.NodeSelector["type"] != "virtual-kubelet" {
					return "label routing"
				}
				return ""
			}},
		{name: "a pod that selects the virtual node itself gets the effects only", pod: pod(nil, nil, corev1.PodSpec{NodeSelector: map[string]string{"type": "virtual-kubelet"}}),
			by: "the pod's own node selection", matched: []string{"everyone"}, check: func(p *corev1.Pod) string {
				if p.Annotations["b"] != "from-everyone" || len(p.Spec.Tolerations) != 0 {
					return "own selection"
				}
				return ""
			}},
		{name: "a DaemonSet's pod is left alone, even in a labelled namespace", pod: &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "d", Labels: map[string]string{"app": "web"},
			OwnerReferences: []metav1.OwnerReference{{Kind: "DaemonSet", Name: "agent"}}}}, ns: map[string]string{LabelECI: "true"}, by: ""},
		{name: "a bound pod is left alone", pod: pod(map[string]string{LabelECI: "true"}, nil, corev1.PodSpec{NodeName: "n1"}), by: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := p.Decide(tc.pod, tc.ns, testNode)
			if d.By != tc.by || d.Route != (tc.by != "") || d.Policy != tc.policy || (tc.matched != nil && !slices.Equal(d.Matched, tc.matched)) {
				t.Fatalf("decision %+v, want by %q policy %q matched %v", d, tc.by, tc.policy, tc.matched)
			}
			ops := d.Patch(tc.pod, testNode)
			if !d.Route {
				if len(ops) != 0 {
					t.Fatalf("ops %v for a pod left alone", ops)
				}
				return
			}
			out := apply(t, tc.pod, ops)
			if tc.check != nil {
				if bad := tc.check(out); bad != "" {
					t.Fatalf("%s: %+v %+v", bad, out.ObjectMeta, out.Spec)
				}
			}
		})
	}
}

func TestNoProfile(t *testing.T) {
	var p *Profile
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{LabelECI: "true"}}}
	d := p.Decide(pod, nil, testNode)
	out := apply(t, pod, d.Patch(pod, testNode))
	if !d.Route || out.Spec.NodeSelector["type"] != "virtual-kubelet" || len(out.Spec.Tolerations) != 1 {
		t.Fatalf("without a profile the label still routes: %+v", out.Spec)
	}
}
