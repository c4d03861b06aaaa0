package profile

import (
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Op is one JSON patch (RFC 6902) operation.
type Op struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value,omitempty"`
}

// Patch turns d into JSON patch operations on pod. Nothing the pod has is
// replaced: maps and lists the pod lacks are added whole, otherwise entries
// are added one by one.
func (d Decision) Patch(pod *corev1.Pod, node Node) []Op {
	var ops []Op
	ops = addEntries(ops, "/metadata/annotations", pod.Annotations, d.Annotations)
	ops = addEntries(ops, "/metadata/labels", pod.Labels, d.Labels)
	if d.SelectNode {
		ops = addEntries(ops, "/spec/nodeSelector", pod.Spec.NodeSelector, map[string]string{node.SelectorKey: node.SelectorValue})
	}
	if d.Tolerate && node.Taint != nil {
		if pod.Spec.Tolerations == nil {
			ops = append(ops, Op{Op: "add", Path: "/spec/tolerations", Value: []corev1.Toleration{node.Toleration()}})
		} else {
			ops = append(ops, Op{Op: "add", Path: "/spec/tolerations/-", Value: node.Toleration()})
		}
	}
	return ops
}

func addEntries(ops []Op, path string, have, add map[string]string) []Op {
	if len(add) == 0 {
		return ops
	}
	if have == nil {
		return append(ops, Op{Op: "add", Path: path, Value: add})
	}
	keys := make([]string, 0, len(add))
	for k := range add {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		ops = append(ops, Op{Op: "add", Path: path + "/" + escape(k), Value: add[k]})
	}
	return ops
}

// escape is a JSON pointer token (RFC 6901).
func escape(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}
