package up

import (
	"testing"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/sizes"
)

func TestDefaultSize(t *testing.T) {
	for _, tc := range []struct {
		flag  string
		alloc apiv1.Resources
		want  sizes.Size
	}{
		{"", apiv1.Resources{MilliCPU: 8000, MemoryMiB: 98304}, sizes.Size{MilliCPU: 250, MemoryMiB: 512}},
		{"", apiv1.Resources{MilliCPU: 32000, MemoryMiB: 65536}, sizes.Size{MilliCPU: 1000, MemoryMiB: 2048}},
		{"", apiv1.Resources{MilliCPU: 256000, MemoryMiB: 1 << 20}, sizes.Default},
		{"", apiv1.Resources{MilliCPU: 1000, MemoryMiB: 1024}, sizes.Size{MilliCPU: 250, MemoryMiB: 512}},
		{"1-2Gi", apiv1.Resources{MilliCPU: 8000, MemoryMiB: 98304}, sizes.Size{MilliCPU: 1000, MemoryMiB: 2048}},
	} {
		got, err := defaultSize(tc.flag, tc.alloc)
		if err != nil || got != tc.want || !sizes.IsSupported(got) {
			t.Errorf("defaultSize(%q, %+v) = %v, %v; want %v", tc.flag, tc.alloc, got, err, tc.want)
		}
	}
	if _, err := defaultSize("3-3Gi", apiv1.Resources{}); err == nil {
		t.Error("an unsupported --default-size was taken")
	}
}
