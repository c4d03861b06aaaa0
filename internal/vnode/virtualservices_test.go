package vnode

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	apiv1 "github.com/eci-dev/eci/api/v1"
)

// service is shop/<name> at ClusterIP ip with the port http (80, target
// port "web").
func service(name, ip string, mutate func(*corev1.Service)) *corev1.Service {
	s := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, ClusterIP: ip, ClusterIPs: []string{ip},
			Selector: map[string]string{"app": name},
			Ports:    []corev1.ServicePort{{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80, TargetPort: intstr.FromString("web")}}}}
	if mutate != nil {
		mutate(s)
	}
	return s
}

// slicePorts: "name/PROTO/port", e.g. "http/TCP/8080" ("" name: "/TCP/80").
func slicePorts(ports ...string) []discoveryv1.EndpointPort {
	var out []discoveryv1.EndpointPort
	for _, p := range ports {
		var name, proto string
		var port int32
		parts := strings.Split(p, "/")
		name, proto = parts[0], parts[1]
		_, _ = fmt.Sscanf(parts[2], "%d", &port)
		out = append(out, discoveryv1.EndpointPort{Name: ptr(name), Protocol: ptr(corev1.Protocol(proto)), Port: ptr(port)})
	}
	return out
}

// endpointSlice of the Service svc in shop.
func endpointSlice(svc, name string, ports []discoveryv1.EndpointPort, eps ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: "shop", Name: name, Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: discoveryv1.AddressTypeIPv4, Ports: ports, Endpoints: eps,
	}
}

// ep is an endpoint in state: "ready" (conditions unset, as ready),
// "ready!" (ready true), "notready" (not ready, not serving),
// "terminating" (serving and terminating), "gone" (terminating, not
// serving); on a node when node is not "".
func ep(ip, state, node string) discoveryv1.Endpoint {
	e := discoveryv1.Endpoint{Addresses: []string{ip}}
	switch state {
	case "ready!":
		e.Conditions.Ready = ptr(true)
	case "notready":
		e.Conditions = discoveryv1.EndpointConditions{Ready: ptr(false), Serving: ptr(false), Terminating: ptr(false)}
	case "terminating":
		e.Conditions = discoveryv1.EndpointConditions{Ready: ptr(false), Serving: ptr(true), Terminating: ptr(true)}
	case "gone":
		e.Conditions = discoveryv1.EndpointConditions{Ready: ptr(false), Serving: ptr(false), Terminating: ptr(true)}
	}
	if node != "" {
		e.NodeName = ptr(node)
	}
	return e
}

// vport is a virtual port with backends "ip:port".
func vport(name string, proto apiv1.Protocol, port int32, backends ...string) apiv1.VirtualPort {
	p := apiv1.VirtualPort{Name: name, Protocol: proto, Port: port}
	for _, b := range backends {
		ip, bp, _ := strings.Cut(b, ":")
		var n int32
		_, _ = fmt.Sscanf(bp, "%d", &n)
		p.Backends = append(p.Backends, apiv1.Backend{IP: ip, Port: n})
	}
	return p
}

func vspec(ip string, ports ...apiv1.VirtualPort) apiv1.VirtualServiceSpec {
	return apiv1.VirtualServiceSpec{Table: "c1", IP: ip, Ports: ports, SessionAffinity: apiv1.AffinityNone}
}

func TestVirtualServices(t *testing.T) {
	web := slicePorts("http/TCP/8080")
	for _, tc := range []struct {
		name   string
		svc    *corev1.Service
		slices []*discoveryv1.EndpointSlice
		want   []apiv1.VirtualServiceSpec
		note   string // a note says this
	}{
		{name: "two ports: the named targetPort is the slice's port of that name, the other as the slice says",
			svc: service("web", "198.18.96.10", func(s *corev1.Service) {
				s.Spec.Ports = append(s.Spec.Ports, corev1.ServicePort{Name: "metrics", Port: 9090, TargetPort: intstr.FromInt32(9100)})
			}),
			slices: []*discoveryv1.EndpointSlice{endpointSlice("web", "web-a", slicePorts("metrics/TCP/9100", "http/TCP/8080"), ep("198.19.0.2", "ready", ""), ep("198.19.0.1", "ready!", ""))},
			want:   []apiv1.VirtualServiceSpec{vspec("198.18.96.10", vport("http", "TCP", 80, "198.19.0.1:8080", "198.19.0.2:8080"), vport("metrics", "TCP", 9090, "198.19.0.1:9100", "198.19.0.2:9100"))}},
		{name: "TCP and UDP on one port number",
			svc: service("dns", "198.18.96.53", func(s *corev1.Service) {
				s.Spec.Ports = []corev1.ServicePort{{Name: "dns", Protocol: corev1.ProtocolUDP, Port: 53}, {Name: "dns-tcp", Port: 53}}
			}),
			slices: []*discoveryv1.EndpointSlice{endpointSlice("dns", "dns-a", slicePorts("dns/UDP/5353", "dns-tcp/TCP/5353", "dns/TCP/9999"), ep("198.19.0.7", "ready", ""))},
			want:   []apiv1.VirtualServiceSpec{vspec("198.18.96.53", vport("dns-tcp", "TCP", 53, "198.19.0.7:5353"), vport("dns", "UDP", 53, "198.19.0.7:5353"))}},
		{name: "the ready endpoints only (unset counts as ready)",
			svc:    service("web", "198.18.96.10", nil),
			slices: []*discoveryv1.EndpointSlice{endpointSlice("web", "web-a", web, ep("198.19.0.1", "ready", ""), ep("198.19.0.2", "notready", ""), ep("198.19.0.3", "terminating", ""))},
			want:   []apiv1.VirtualServiceSpec{vspec("198.18.96.10", vport("http", "TCP", 80, "198.19.0.1:8080"))}},
		{name: "none ready: the serving and terminating ones",
			svc:    service("web", "198.18.96.10", nil),
			slices: []*discoveryv1.EndpointSlice{endpointSlice("web", "web-a", web, ep("198.19.0.1", "notready", ""), ep("198.19.0.2", "terminating", ""), ep("198.19.0.3", "gone", ""))},
			want:   []apiv1.VirtualServiceSpec{vspec("198.18.96.10", vport("http", "TCP", 80, "198.19.0.2:8080"))}},
		{name: "no endpoints: the ports without backends",
			svc:  service("web", "198.18.96.10", nil),
			want: []apiv1.VirtualServiceSpec{vspec("198.18.96.10", vport("http", "TCP", 80))}},
		{name: "a backend in two slices counts once; IPv6 slices are not read",
			svc: service("web", "198.18.96.10", nil),
			slices: []*discoveryv1.EndpointSlice{
				endpointSlice("web", "web-a", web, ep("198.19.0.1", "ready", "")),
				endpointSlice("web", "web-b", web, ep("198.19.0.1", "ready", ""), ep("198.19.0.2", "ready", "")),
				func() *discoveryv1.EndpointSlice {
					s := endpointSlice("web", "web-v6", web, ep("fd00::1", "ready", ""))
					s.AddressType = discoveryv1.AddressTypeIPv6
					return s
				}(),
			},
			want: []apiv1.VirtualServiceSpec{vspec("198.18.96.10", vport("http", "TCP", 80, "198.19.0.1:8080", "198.19.0.2:8080"))}},
		{name: "a slice port of another protocol is not this port's",
			svc:    service("web", "198.18.96.10", nil),
			slices: []*discoveryv1.EndpointSlice{endpointSlice("web", "web-a", slicePorts("http/UDP/8080"), ep("198.19.0.1", "ready", ""))},
			want:   []apiv1.VirtualServiceSpec{vspec("198.18.96.10", vport("http", "TCP", 80))}},
		{name: "headless: none", svc: service("web", "None", nil)},
		{name: "no ClusterIP: none", svc: service("web", "", func(s *corev1.Service) { s.Spec.ClusterIPs = nil })},
		{name: "ExternalName: none", svc: service("web", "", func(s *corev1.Service) {
			s.Spec.Type, s.Spec.ExternalName, s.Spec.ClusterIPs = corev1.ServiceTypeExternalName, "example.com", nil
		})},
		{name: "another proxy's: none", svc: service("web", "198.18.96.10", func(s *corev1.Service) {
			s.Labels = map[string]string{labelServiceProxyName: "other-proxy"}
		})},
		{name: "dual-stack: the IPv4 ClusterIP alone",
			svc:    service("web", "fd00::10", func(s *corev1.Service) { s.Spec.ClusterIPs = []string{"fd00::10", "198.18.96.10"} }),
			slices: []*discoveryv1.EndpointSlice{endpointSlice("web", "web-a", web, ep("198.19.0.1", "ready", ""))},
			want:   []apiv1.VirtualServiceSpec{vspec("198.18.96.10", vport("http", "TCP", 80, "198.19.0.1:8080"))}},
		{name: "IPv6 only: none", svc: service("web", "fd00::10", nil)},
		{name: "NodePort and LoadBalancer: their ClusterIP",
			svc:  service("web", "198.18.96.10", func(s *corev1.Service) { s.Spec.Type = corev1.ServiceTypeLoadBalancer }),
			want: []apiv1.VirtualServiceSpec{vspec("198.18.96.10", vport("http", "TCP", 80))}},
		{name: "no selector: the manual slices",
			svc:    service("ext", "198.18.96.20", func(s *corev1.Service) { s.Spec.Selector = nil; s.Spec.Ports[0].TargetPort = intstr.FromInt32(5432) }),
			slices: []*discoveryv1.EndpointSlice{endpointSlice("ext", "ext-1", slicePorts("http/TCP/5432"), ep("198.19.1.9", "ready", ""))},
			want:   []apiv1.VirtualServiceSpec{vspec("198.18.96.20", vport("http", "TCP", 80, "198.19.1.9:5432"))}},
		{name: "internalTrafficPolicy Local: the endpoints on this node",
			svc: service("web", "198.18.96.10", func(s *corev1.Service) {
				s.Spec.InternalTrafficPolicy = ptr(corev1.ServiceInternalTrafficPolicyLocal)
			}),
			slices: []*discoveryv1.EndpointSlice{endpointSlice("web", "web-a", web, ep("198.19.0.1", "ready", "vn-test"), ep("198.19.0.2", "ready", "node-2"), ep("198.19.0.3", "ready", ""))},
			want:   []apiv1.VirtualServiceSpec{vspec("198.18.96.10", vport("http", "TCP", 80, "198.19.0.1:8080"))}},
		{name: "internalTrafficPolicy Local, none on this node: no backends",
			svc: service("web", "198.18.96.10", func(s *corev1.Service) {
				s.Spec.InternalTrafficPolicy = ptr(corev1.ServiceInternalTrafficPolicyLocal)
			}),
			slices: []*discoveryv1.EndpointSlice{endpointSlice("web", "web-a", web, ep("198.19.0.2", "ready", "node-2"))},
			want:   []apiv1.VirtualServiceSpec{vspec("198.18.96.10", vport("http", "TCP", 80))}},
		{name: "internalTrafficPolicy Local: this node's terminating ones before other nodes' ready ones",
			svc: service("web", "198.18.96.10", func(s *corev1.Service) {
				s.Spec.InternalTrafficPolicy = ptr(corev1.ServiceInternalTrafficPolicyLocal)
			}),
			slices: []*discoveryv1.EndpointSlice{endpointSlice("web", "web-a", web, ep("198.19.0.1", "terminating", "vn-test"), ep("198.19.0.2", "ready", "node-2"))},
			want:   []apiv1.VirtualServiceSpec{vspec("198.18.96.10", vport("http", "TCP", 80, "198.19.0.1:8080"))}},
		{name: "session affinity ClientIP: Kubernetes' default timeout",
			svc: service("web", "198.18.96.10", func(s *corev1.Service) { s.Spec.SessionAffinity = corev1.ServiceAffinityClientIP }),
			want: []apiv1.VirtualServiceSpec{{Table: "c1", IP: "198.18.96.10", Ports: []apiv1.VirtualPort{vport("http", "TCP", 80)},
				SessionAffinity: apiv1.AffinityClientIP, SessionAffinityTimeoutSeconds: 10800}}},
		{name: "session affinity ClientIP with its timeout",
			svc: service("web", "198.18.96.10", func(s *corev1.Service) {
				s.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
				s.Spec.SessionAffinityConfig = &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: ptr[int32](600)}}
			}),
			want: []apiv1.VirtualServiceSpec{{Table: "c1", IP: "198.18.96.10", Ports: []apiv1.VirtualPort{vport("http", "TCP", 80)},
				SessionAffinity: apiv1.AffinityClientIP, SessionAffinityTimeoutSeconds: 600}}},
		{name: "SCTP left out, noted",
			svc: service("web", "198.18.96.10", func(s *corev1.Service) {
				s.Spec.Ports = append(s.Spec.Ports, corev1.ServicePort{Name: "sig", Protocol: corev1.ProtocolSCTP, Port: 2905})
			}),
			want: []apiv1.VirtualServiceSpec{vspec("198.18.96.10", vport("http", "TCP", 80))}, note: "only TCP and UDP"},
		{name: "SCTP alone: none, noted",
			svc:  service("web", "198.18.96.10", func(s *corev1.Service) { s.Spec.Ports[0].Protocol = corev1.ProtocolSCTP }),
			note: "no TCP or UDP port"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, notes := virtualServices("c1", "vn-test", tc.svc, tc.slices)
			var specs []apiv1.VirtualServiceSpec
			for _, vs := range got {
				specs = append(specs, vs.Spec)
				if err := apiv1.ValidateVirtualService(&vs); err != nil {
					t.Errorf("the API refuses %s: %v", vs.Spec.IP, err)
				}
				if l := vs.Metadata.Labels; l[LabelServiceNamespace] != "shop" || l[LabelServiceName] != tc.svc.Name {
					t.Errorf("labels %v; want the Service's namespace and name", l)
				}
			}
			if !reflect.DeepEqual(specs, tc.want) {
				t.Errorf("got %+v\nwant %+v", specs, tc.want)
			}
			if all := strings.Join(notes, "; "); (tc.note == "") != (all == "") || !strings.Contains(all, tc.note) {
				t.Errorf("notes %q; want one saying %q", all, tc.note)
			}
		})
	}
}

// A Service over the API's limits is cut, the same way every time, to what
// the API takes.
func TestVirtualServicesWithinLimits(t *testing.T) {
	backends := func(n int, port int32) []discoveryv1.Endpoint {
		var out []discoveryv1.Endpoint
		for i := range n {
			out = append(out, ep(fmt.Sprintf("10.%d.%d.%d", port%200, i/250, i%250+1), "ready", ""))
		}
		return out
	}
	for _, tc := range []struct {
		name      string
		ports     []corev1.ServicePort
		slices    []*discoveryv1.EndpointSlice
		wantPorts []int // backends per kept port, in order
		note      string
	}{
		{name: "150 ports: the first 100 by protocol and port",
			ports: func() (out []corev1.ServicePort) {
				for i := range 150 {
					out = append(out, corev1.ServicePort{Name: fmt.Sprintf("p%d", i), Port: int32(1000 + i)})
				}
				return out
			}(),
			wantPorts: make([]int, 100), note: "150 ports cut to the 100"},
		{name: "two ports of 3000 backends: 2500 each",
			ports:     []corev1.ServicePort{{Name: "a", Port: 1}, {Name: "b", Port: 2}},
			slices:    []*discoveryv1.EndpointSlice{endpointSlice("big", "a", slicePorts("a/TCP/1"), backends(3000, 1)...), endpointSlice("big", "b", slicePorts("b/TCP/2"), backends(3000, 2)...)},
			wantPorts: []int{2500, 2500}, note: "6000 backends cut to the 5000"},
		{name: "10 and 6000: the small port keeps its 10",
			ports:     []corev1.ServicePort{{Name: "a", Port: 1}, {Name: "b", Port: 2}},
			slices:    []*discoveryv1.EndpointSlice{endpointSlice("big", "a", slicePorts("a/TCP/1"), backends(10, 1)...), endpointSlice("big", "b", slicePorts("b/TCP/2"), backends(6000, 2)...)},
			wantPorts: []int{10, 4990}, note: "6010 backends"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svc := service("big", "198.18.96.99", func(s *corev1.Service) { s.Spec.Ports = tc.ports })
			got, notes := virtualServices("c1", "vn-test", svc, tc.slices)
			if len(got) != 1 {
				t.Fatalf("%d virtual services; want 1", len(got))
			}
			if err := apiv1.ValidateVirtualService(&got[0]); err != nil {
				t.Fatalf("the API refuses what was cut: %v", err)
			}
			var per []int
			for _, p := range got[0].Spec.Ports {
				per = append(per, len(p.Backends))
			}
			if !reflect.DeepEqual(per, tc.wantPorts) {
				t.Errorf("backends per port %v; want %v", per, tc.wantPorts)
			}
			if got[0].Spec.Ports[0].Port != tc.ports[0].Port {
				t.Errorf("first port %d; want %d", got[0].Spec.Ports[0].Port, tc.ports[0].Port)
			}
			if all := strings.Join(notes, "; "); !strings.Contains(all, tc.note) {
				t.Errorf("notes %q; want one saying %q", all, tc.note)
			}
			again, _ := virtualServices("c1", "vn-test", svc, tc.slices)
			if !reflect.DeepEqual(again, got) {
				t.Error("cut another way the second time")
			}
		})
	}
}

func TestTableName(t *testing.T) {
	for id, want := range map[string]string{
		"":          "",
		"eci-vnode": "eci-vnode",
		"c1":        "c1",
	} {
		if got := tableName(id); got != want {
			t.Errorf("tableName(%q) = %q; want %q", id, got, want)
		}
	}
	seen := map[string]string{}
	for _, id := range []string{"Prod.EU_1", "prod-eu-1.", "prod.eu.1", "--", strings.Repeat("a", 64), strings.Repeat("x.", 40), "a-b-c-", "UPPER"} {
		got := tableName(id)
		vs := apiv1.VirtualService{Spec: apiv1.VirtualServiceSpec{Table: got, IP: "198.19.0.1", Ports: []apiv1.VirtualPort{vport("", "TCP", 80)}}}
		if err := apiv1.ValidateVirtualService(&vs); err != nil {
			t.Errorf("tableName(%q) = %q, which the API refuses: %v", id, got, err)
		}
		if got != tableName(id) {
			t.Errorf("tableName(%q) is not the same twice", id)
		}
		if other, ok := seen[got]; ok {
			t.Errorf("tableName(%q) = tableName(%q) = %q", id, other, got)
		}
		seen[got] = id
	}
	if got := tableName("Prod.EU_1"); got != "prod-eu-1-515c585a" { // docs/networking.md
		t.Errorf("tableName(Prod.EU_1) = %q; want prod-eu-1-515c585a", got)
	}
}
