package profile

import (
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// LabelECI on a pod or its namespace sends the pod to virtual nodes.
const LabelECI = "alibabacloud.com/eci"

// Annotations the webhook writes for the vnode's own use.
const (
	// AnnSelector names the selector that routed the pod (for operators).
	AnnSelector = "eci.dev/profile-selector"
	// AnnOverflowAfter marks a normalNodePrefer pod: seconds it waits for a
	// real node before it tolerates the virtual node.
	AnnOverflowAfter = "eci.dev/overflow-after-seconds"
)

// Pod annotations the profile's defaults fill (docs/spec.md section 6).
const (
	AnnVSwitch       = "k8s.aliyun.com/eci-vswitch"
	AnnSecurityGroup = "k8s.aliyun.com/eci-security-group"
)

// Node is what a pod needs to land on the virtual nodes: their taint (nil:
// none) and their label.
type Node struct {
	Taint         *corev1.Taint
	SelectorKey   string // type
	SelectorValue string // virtual-kubelet
}

// VirtualNode is what a pod needs for eci's virtual nodes: their taint and
// their label type=virtual-kubelet (docs/spec.md section 2).
func VirtualNode(taint *corev1.Taint) Node {
	return Node{Taint: taint, SelectorKey: "type", SelectorValue: "virtual-kubelet"}
}

// Decision is what the profile does to one new pod.
type Decision struct {
	// Route: the pod goes to virtual nodes under Policy; By says why (the
	// label, a selector's name, or the pod's own node selection).
	Route  bool
	Policy Policy
	By     string
	// Matched are the selectors whose effect applies, in order.
	Matched []string
	// Annotations and Labels to add (never values the pod already has).
	Annotations map[string]string
	Labels      map[string]string
	// Tolerate and SelectNode: add the virtual node's toleration and
	// nodeSelector.
	Tolerate, SelectNode bool
	// OverflowAfter: seconds a normalNodePrefer pod waits for a real node.
	OverflowAfter int
}

// Decide applies the profile to pod in a namespace with nsLabels.
func (p *Profile) Decide(pod *corev1.Pod, nsLabels map[string]string, node Node) Decision {
	d := Decision{Annotations: map[string]string{}, Labels: map[string]string{}}
	if pod.Spec.NodeName != "" || ownedBy(pod, "DaemonSet") {
		// Already bound, or a DaemonSet's pod (one per real node: never for
		// a virtual node, docs/spec.md section 3): nothing to decide.
		return d
	}
	switch {
	case pod.Labels[LabelECI] == "true":
		d.Route, d.Policy, d.By = true, VirtualNodeOnly, "label "+LabelECI+" on the pod"
	case nsLabels[LabelECI] == "true":
		d.Route, d.Policy, d.By = true, VirtualNodeOnly, "label "+LabelECI+" on the namespace"
	case bound(pod, node):
		d.Route, d.Policy, d.By = true, "", "the pod's own node selection"
	}
	var sels []*Selector
	if p != nil {
		for i := range p.Selectors {
			sels = append(sels, &p.Selectors[i])
		}
	}
	// Routing selectors first decide whether (and, for the first, how) the
	// pod goes to virtual nodes; then every matching selector, in order,
	// adds its effect, earlier ones winning.
	for _, s := range sels {
		if d.Route {
			break // the label or the pod's own selection decided
		}
		if s.routes() && s.matches(pod, nsLabels) {
			d.Route, d.Policy, d.By = true, s.policy(), s.Name
			if d.Policy == NormalNodePrefer {
				d.OverflowAfter = s.UnschedulableSeconds
				if d.OverflowAfter == 0 {
					d.OverflowAfter = DefaultUnschedulableSeconds
				}
			}
		}
	}
	if !d.Route {
		return d
	}
	add := func(into map[string]string, have map[string]string, k, v string) {
		if _, ok := have[k]; ok {
			return
		}
		if _, ok := into[k]; !ok {
			into[k] = v
		}
	}
	for _, s := range sels {
		if s.routes() && !s.matches(pod, nsLabels) {
			continue
		}
		d.Matched = append(d.Matched, s.Name)
		for k, v := range s.Effect.Annotations {
			add(d.Annotations, pod.Annotations, k, v)
		}
		for k, v := range s.Effect.Labels {
			add(d.Labels, pod.Labels, k, v)
		}
	}
	if p != nil {
		if len(p.VSwitchIDs) > 0 {
			add(d.Annotations, pod.Annotations, AnnVSwitch, strings.Join(p.VSwitchIDs, ","))
		}
		if p.SecurityGroupID != "" {
			add(d.Annotations, pod.Annotations, AnnSecurityGroup, p.SecurityGroupID)
		}
	}
	add(d.Annotations, pod.Annotations, AnnSelector, d.By)
	switch d.Policy {
	case VirtualNodeOnly:
		d.Tolerate, d.SelectNode = !tolerates(pod, node), !selects(pod, node)
	case Fair:
		d.Tolerate = !tolerates(pod, node)
	case NormalNodePrefer:
		add(d.Annotations, pod.Annotations, AnnOverflowAfter, strconv.Itoa(d.OverflowAfter))
	}
	return d
}

func ownedBy(pod *corev1.Pod, kind string) bool {
	for _, ref := range pod.OwnerReferences {
		if ref.Kind == kind {
			return true
		}
	}
	return false
}

func (s *Selector) matches(pod *corev1.Pod, nsLabels map[string]string) bool {
	return labelsMatch(s.NamespaceSelector, nsLabels) && labelsMatch(s.ObjectSelector, pod.Labels)
}

// labelsMatch: an absent selector matches everything.
func labelsMatch(ls *metav1.LabelSelector, set map[string]string) bool {
	if ls == nil {
		return true
	}
	sel, err := metav1.LabelSelectorAsSelector(ls)
	if err != nil {
		return false // Parse refused it already
	}
	return sel.Matches(labels.Set(set))
}

// bound: the pod already asks for virtual nodes itself.
func bound(pod *corev1.Pod, node Node) bool {
	return pod.Spec.NodeSelector[node.SelectorKey] == node.SelectorValue && node.SelectorKey != ""
}

func tolerates(pod *corev1.Pod, node Node) bool {
	if node.Taint == nil {
		return true
	}
	for _, t := range pod.Spec.Tolerations {
		keyOK := t.Key == node.Taint.Key || (t.Key == "" && t.Operator == corev1.TolerationOpExists)
		effectOK := t.Effect == "" || t.Effect == node.Taint.Effect
		valueOK := t.Operator == corev1.TolerationOpExists || t.Value == node.Taint.Value
		if keyOK && effectOK && valueOK {
			return true
		}
	}
	return false
}

func selects(pod *corev1.Pod, node Node) bool {
	_, has := pod.Spec.NodeSelector[node.SelectorKey]
	return has // a value of the pod's own is never overwritten
}

// Toleration is the virtual node's, as the webhook adds it.
func (n Node) Toleration() corev1.Toleration {
	return corev1.Toleration{Key: n.Taint.Key, Operator: corev1.TolerationOpExists, Effect: n.Taint.Effect}
}
