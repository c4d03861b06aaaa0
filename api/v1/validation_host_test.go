package v1

import (
	"strings"
	"testing"
)

func TestValidateHostTunnelIP(t *testing.T) {
	res := Resources{MilliCPU: 1000, MemoryMiB: 1024, Pods: 10}
	host := func(tunnel string) *Host {
		return &Host{Metadata: ObjectMeta{Name: "h1"}, Spec: HostSpec{Zone: "z", Capacity: res, Allocatable: res, TunnelIP: tunnel}}
	}
	for _, ok := range []string{"", "198.18.192.10"} {
		if err := ValidateHost(host(ok)); err != nil {
			t.Errorf("tunnelIP %q: %v", ok, err)
		}
	}
	for _, bad := range []string{"x", "127.0.0.1", "169.254.1.1", "224.0.0.1", "255.255.255.255", "0.0.0.0", "fd00::1", "198.18.192.10/24"} {
		err := ValidateHost(host(bad))
		if err == nil || !strings.Contains(err.Error(), "spec.tunnelIP") || !strings.Contains(err.Error(), "allowed") {
			t.Errorf("tunnelIP %q: %v", bad, err)
		}
	}
}

// A host's runtime handlers are names as a RuntimeClass's handler is.
func TestValidateHostRuntimeHandlers(t *testing.T) {
	res := Resources{MilliCPU: 1000, MemoryMiB: 1024, Pods: 10}
	h := &Host{Metadata: ObjectMeta{Name: "h1"}, Spec: HostSpec{Zone: "z", Capacity: res, Allocatable: res, RuntimeHandlers: []string{"runc", "kata"}}}
	if err := ValidateHost(h); err != nil {
		t.Fatal(err)
	}
	h.Spec.RuntimeHandlers = append(h.Spec.RuntimeHandlers, "Not/A Handler")
	if err := ValidateHost(h); err == nil || !strings.Contains(err.Error(), "spec.runtimeHandlers[2]") {
		t.Errorf("a bad handler: %v", err)
	}
}
