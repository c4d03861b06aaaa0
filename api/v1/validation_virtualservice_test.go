package v1

import (
	"errors"
	"testing"
)

func TestValidateVirtualService(t *testing.T) {
	good := func() *VirtualService {
		return &VirtualService{Spec: VirtualServiceSpec{Table: "c1", IP: "198.18.100.10", SessionAffinity: AffinityClientIP, SessionAffinityTimeoutSeconds: 60,
			Ports: []VirtualPort{
				{Name: "http", Protocol: ProtocolTCP, Port: 80, Backends: []Backend{{IP: "198.18.1.2", Port: 8080}, {IP: "198.18.1.3", Port: 8080}}},
				{Name: "dns", Protocol: ProtocolUDP, Port: 53},
				{Name: "dns-tcp", Protocol: ProtocolTCP, Port: 53},
			}}}
	}
	if err := ValidateVirtualService(good()); err != nil {
		t.Fatalf("good: %v", err)
	}
	for _, tc := range []struct {
		field  string
		mutate func(*VirtualService)
	}{
		{"spec.table", func(v *VirtualService) { v.Spec.Table = "C_1" }},
		{"spec.table", func(v *VirtualService) { v.Spec.Table = "" }},
		{"spec.ip", func(v *VirtualService) { v.Spec.IP = "127.0.0.1" }},
		{"spec.ip", func(v *VirtualService) { v.Spec.IP = "fd00::1" }},
		{"spec.ip", func(v *VirtualService) { v.Spec.IP = "169.254.1.1" }},
		{"spec.ports", func(v *VirtualService) { v.Spec.Ports = nil }},
		{"spec.sessionAffinity", func(v *VirtualService) { v.Spec.SessionAffinity = "Cookie" }},
		{"spec.sessionAffinityTimeoutSeconds", func(v *VirtualService) { v.Spec.SessionAffinityTimeoutSeconds = MaxAffinityTimeout + 1 }},
		{"spec.ports[1].protocol", func(v *VirtualService) { v.Spec.Ports[1].Protocol = "SCTP" }},
		{"spec.ports[0].port", func(v *VirtualService) { v.Spec.Ports[0].Port = 0 }},
		{"spec.ports[2]", func(v *VirtualService) { v.Spec.Ports[2].Protocol = ProtocolUDP }},
		{"spec.ports[1].name", func(v *VirtualService) { v.Spec.Ports[1].Name = "http" }},
		{"spec.ports[0].backends[1]", func(v *VirtualService) { v.Spec.Ports[0].Backends[1] = v.Spec.Ports[0].Backends[0] }},
		{"spec.ports[0].backends[0].ip", func(v *VirtualService) { v.Spec.Ports[0].Backends[0].IP = "0.0.0.0" }},
		{"spec.ports[0].backends[0].ip", func(v *VirtualService) { v.Spec.Ports[0].Backends[0].IP = "169.254.169.254" }},
		{"spec.ports[0].backends[0].ip", func(v *VirtualService) { v.Spec.Ports[0].Backends[0].IP = "255.255.255.255" }},
		{"spec.ports[0].backends[0].ip", func(v *VirtualService) { v.Spec.Ports[0].Backends[0].IP = "0.1.2.3" }},
		{"spec.ports[0].backends[0].ip", func(v *VirtualService) { v.Spec.Ports[0].Backends[0].IP = "240.0.0.1" }},
		{"spec.ports[0].backends[0].ip", func(v *VirtualService) { v.Spec.Ports[0].Backends[0].IP = "224.0.0.251" }},
		{"spec.ip", func(v *VirtualService) { v.Spec.IP = "255.255.255.255" }},
		{"metadata.labels[\"\"]", func(v *VirtualService) { v.Metadata.Labels = map[string]string{"": "x"} }},
		{"spec.ports[0].backends[0].port", func(v *VirtualService) { v.Spec.Ports[0].Backends[0].Port = 70000 }},
		{"spec.ports", func(v *VirtualService) {
			v.Spec.Ports[1].Backends = make([]Backend, MaxBackends)
			for i := range v.Spec.Ports[1].Backends {
				v.Spec.Ports[1].Backends[i] = Backend{IP: "198.18.1.9", Port: int32(1 + i)}
			}
		}},
	} {
		v := good()
		tc.mutate(v)
		err := ValidateVirtualService(v)
		var fe FieldErrors
		if !errors.As(err, &fe) || len(fe) != 1 || fe[0].Field != tc.field {
			t.Errorf("%s: got %v", tc.field, err)
		}
	}
}
