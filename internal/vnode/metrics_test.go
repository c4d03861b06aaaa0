package vnode

import (
	"testing"

	apiv1 "github.com/eci-dev/eci/api/v1"
)

func TestNodeCPUNeverGoesDown(t *testing.T) {
	var n nodeCPU
	sample := func(id string, ns uint64) podSample {
		return podSample{id: id, stats: &apiv1.GroupStats{CPU: apiv1.CPUStats{UsageCoreNanoSeconds: ns}}}
	}
	steps := []struct {
		running []string
		sampled []podSample
		want    uint64
	}{
		{[]string{"a", "b"}, []podSample{sample("a", 10), sample("b", 20)}, 30},
		{[]string{"a", "b"}, []podSample{sample("a", 15)}, 35}, // b's stats failed: its last reading counts
		{[]string{"a"}, []podSample{sample("a", 16)}, 36},      // b ended: its time stays
		{nil, nil, 36},
		{[]string{"c"}, []podSample{sample("c", 4)}, 40},
	}
	for i, s := range steps {
		if got := n.total(s.running, s.sampled); got != s.want {
			t.Fatalf("step %d: %d, want %d", i, got, s.want)
		}
	}
}
