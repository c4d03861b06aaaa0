package vnode

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestParseTaintAndCapacity(t *testing.T) {
	if tn, err := ParseTaint(""); err != nil || *tn != *Taint() {
		t.Fatalf("ParseTaint(\"\") = %v, %v; want the default taint", tn, err)
	}
	tn, err := ParseTaint("dedicated=eci:NoExecute")
	if err != nil || tn.Key != "dedicated" || tn.Value != "eci" || tn.Effect != corev1.TaintEffectNoExecute {
		t.Fatalf("ParseTaint = %+v, %v", tn, err)
	}
	for in, says := range map[string]string{"novalue": "KEY=VALUE:EFFECT", "k=v": "KEY=VALUE:EFFECT", "=v:NoSchedule": "KEY=VALUE:EFFECT", "k=v:Sometimes": "allowed: NoSchedule"} {
		if _, err := ParseTaint(in); err == nil || !strings.Contains(err.Error(), says) {
			t.Errorf("ParseTaint(%q) = %v; want an error saying %q", in, err, says)
		}
	}
	c, err := ParseCapacity("1000", "4Ti", "1000")
	if err != nil || c.Cpu().Value() != 1000 || c.Memory().Value() != 4<<40 || c.Pods().Value() != 1000 {
		t.Fatalf("ParseCapacity = %v, %v", c, err)
	}
	if _, err := ParseCapacity("lots", "4Ti", "1000"); err == nil || !strings.Contains(err.Error(), `capacity cpu "lots"`) {
		t.Fatalf("ParseCapacity of a bad cpu = %v", err)
	}
}
