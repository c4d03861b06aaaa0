package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/server"
	"github.com/eci-dev/eci/internal/server/servertest"
	"github.com/eci-dev/eci/internal/testbed"
	"github.com/eci-dev/eci/internal/vnode"
)

// A hybrid cluster over a pool of two hosts: a real kubelet node (on the
// machine itself, the underlay's gateway) and the virtual node, whose
// instances run on the pool's second host. The default VPC's route table
// routes the node's pod CIDR through the node (eci routes add); the node
// routes the vSwitch through the first host (an operator's one static
// route), which reaches the second host's instance through its tunnel. The
// instance fetches the node's pod by its pod IP, and the node's pod the
// instance, each seeing the other's own address.
func TestHybridAcrossHosts(t *testing.T) {
	bed := testbed.New(t, testbed.Options{Kube: true, Containerd: true, Kubelet: true, Hosts: 2})
	eciBin := buildEci(t)
	gw := bed.Network.UnderlayGateway.String()
	srv := servertest.Start(t, func(c *server.Config) { c.Addr, c.TLSNames = gw+":0", []string{gw} })
	srv.VSwitch(t, "vsw-pool", "zone-a", bed.Network.VSwitchCIDR.String())
	startPoolAgents(t, srv, bed, eciBin)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c := &cluster{bed: bed, srv: srv, eci: srv.TenantClient(t, "cluster-a"), kube: fastClient(t, bed)}
	c.stopVNode = c.startVNodeAs(t, nodeName, "cluster-a", c.eci)

	if _, err := srv.Admin.AddRouteEntry(ctx, &apiv1.RouteEntry{Metadata: apiv1.ObjectMeta{Name: "kubelet-node"},
		Spec: apiv1.RouteEntrySpec{Destination: bed.Network.PodCIDR.String(), NextHop: gw}}); err != nil {
		t.Fatal(err)
	}
	h1 := bed.Hosts[0].TunnelIP.String()
	if out, err := exec.Command("ip", "route", "replace", bed.Network.VSwitchCIDR.String(), "via", h1).CombinedOutput(); err != nil {
		t.Fatalf("the node's route to the vSwitch: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "route", "del", bed.Network.VSwitchCIDR.String(), "via", h1).Run() })
	// The instances go to the second host: the first only routes.
	cordon := true
	if _, err := srv.Admin.UpdateHost(ctx, "h1", apiv1.HostUpdate{Unschedulable: &cordon}); err != nil {
		t.Fatal(err)
	}

	ns, busybox := "default", bed.Registry.Busybox
	// index.html names the server; cgi-bin/who the address a request
	// came from.
	web := func(name string) []string {
		return []string{"sh", "-c", "mkdir -p /srv/cgi-bin && echo " + name + " > /srv/index.html && " +
			`printf '#!/bin/sh\necho Content-Type: text/plain\necho\necho "from=$REMOTE_ADDR"\n' > /srv/cgi-bin/who && chmod +x /srv/cgi-bin/who && exec httpd -f -p 8080 -h /srv`}
	}
	realPod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "real-web"}, Spec: corev1.PodSpec{
		NodeSelector: map[string]string{"kubernetes.io/hostname": bed.Kubelet.NodeName},
		Containers:   []corev1.Container{{Name: "web", Image: busybox, Command: web("on-the-real-node")}}}}
	if _, err := c.kube.CoreV1().Pods(ns).Create(ctx, realPod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	c.createPod(t, ns, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "eci-web"}, Spec: corev1.PodSpec{
		Containers: []corev1.Container{{Name: "web", Image: busybox, Command: web("on-an-instance")}}}})
	realIP := c.waitPod(t, ns, "real-web", "Running", 90*time.Second, running).Status.PodIP
	eciIP := c.waitPod(t, ns, "eci-web", "Running", 90*time.Second, running).Status.PodIP
	if host := hostOfPod(t, c, ns, "eci-web"); host != "h2" {
		t.Fatalf("eci-web runs on %s, not h2", host)
	}

	// Each fetches the other by pod IP, and what it is seen from.
	fetch := func(ip string) string {
		return fmt.Sprintf(`for i in $(seq 1 30); do out=$(timeout 3 wget -q -O - http://%[1]s:8080/ 2>&1) && break; sleep 1; done
echo "out: $out"; echo "seen $(timeout 3 wget -q -O - http://%[1]s:8080/cgi-bin/who 2>&1)"; exec sleep 3600`, ip)
	}
	realClient := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "real-client"}, Spec: corev1.PodSpec{
		NodeSelector: map[string]string{"kubernetes.io/hostname": bed.Kubelet.NodeName},
		Containers:   []corev1.Container{{Name: "main", Image: busybox, Command: []string{"sh", "-c", fetch(eciIP)}}}}}
	if _, err := c.kube.CoreV1().Pods(ns).Create(ctx, realClient, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	c.createPod(t, ns, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "eci-client"}, Spec: corev1.PodSpec{
		Containers: []corev1.Container{{Name: "main", Image: busybox, Command: []string{"sh", "-c", fetch(realIP)}}}}})
	for pod, want := range map[string]string{"real-client": "out: on-an-instance", "eci-client": "out: on-the-real-node"} {
		c.waitPod(t, ns, pod, "fetched its peer, seen from its own address", 90*time.Second, func(p *corev1.Pod) error {
			raw, err := c.kube.CoreV1().Pods(ns).GetLogs(pod, &corev1.PodLogOptions{}).DoRaw(ctx)
			// busybox httpd says [::ffff:a.b.c.d]: the address, whole.
			if err != nil || !strings.Contains(string(raw), want) || p.Status.PodIP == "" || !strings.Contains(string(raw), ":"+p.Status.PodIP+"]\n") {
				return fmt.Errorf("log %q (%v), pod IP %s", raw, err, p.Status.PodIP)
			}
			return nil
		})
	}

	// Dual stack: a vSwitch with IPv6, and two pods that ask for it, one
	// on each host, fetch each other by their IPv6 pod IPs (the default
	// VPC's tunnel), each seen from its own.
	if _, err := srv.Admin.CreateVSwitch(ctx, &apiv1.VSwitch{Metadata: apiv1.ObjectMeta{Name: "vsw-six"},
		Spec: apiv1.VSwitchSpec{Zone: "zone-a", CIDR: bed.Network.LargeVSwitchCIDR.String(), IPv6CIDR: bed.Network.VSwitchIPv6CIDR.String()}}); err != nil {
		t.Fatal(err)
	}
	dual := func(name string, command []string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{vnode.AnnEnableIPv6: "true"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: busybox, Command: command}}}}
	}
	ipv6Of := func(p *corev1.Pod) error {
		if len(p.Status.PodIPs) != 2 || p.Annotations[vnode.AnnAllocatedIPv6] == "" || p.Status.PodIPs[1].IP != p.Annotations[vnode.AnnAllocatedIPv6] ||
			!bed.Network.VSwitchIPv6CIDR.Contains(netip.MustParseAddr(p.Annotations[vnode.AnnAllocatedIPv6])) || p.Status.PodIPs[0].IP != p.Status.PodIP {
			return fmt.Errorf("podIPs %v, %s %q", p.Status.PodIPs, vnode.AnnAllocatedIPv6, p.Annotations[vnode.AnnAllocatedIPv6])
		}
		return running(p)
	}
	c.createPod(t, ns, dual("six-web", web("six-web")))
	six := c.waitPod(t, ns, "six-web", "Running with an IPv6 address", 90*time.Second, ipv6Of).Status.PodIPs[1].IP
	setCordons(t, c, map[string]bool{"h1": false, "h2": true})
	c.createPod(t, ns, dual("six-client", []string{"sh", "-c", fetch("[" + six + "]")}))
	client := c.waitPod(t, ns, "six-client", "Running with an IPv6 address", 90*time.Second, ipv6Of)
	if h1, h2 := hostOfPod(t, c, ns, "six-web"), hostOfPod(t, c, ns, "six-client"); h1 == h2 {
		t.Fatalf("both dual-stack pods run on %s", h1)
	}
	c.waitPod(t, ns, "six-client", "fetched six-web by IPv6, seen from its own", 90*time.Second, func(p *corev1.Pod) error {
		raw, err := c.kube.CoreV1().Pods(ns).GetLogs("six-client", &corev1.PodLogOptions{}).DoRaw(ctx)
		if err != nil || !strings.Contains(string(raw), "out: six-web") || !strings.Contains(string(raw), "["+client.Status.PodIPs[1].IP+"]\n") {
			return fmt.Errorf("log %q (%v)", raw, err)
		}
		return nil
	})
}

// setCordons cordons (true) or uncordons the named hosts.
func setCordons(t *testing.T, c *cluster, cordons map[string]bool) {
	t.Helper()
	for h, cordon := range cordons {
		if _, err := c.srv.Admin.UpdateHost(context.Background(), h, apiv1.HostUpdate{Unschedulable: &cordon}); err != nil {
			t.Fatal(err)
		}
	}
}

// hostOfPod is the host of the group of pod name.
func hostOfPod(t *testing.T, c *cluster, ns, name string) string {
	t.Helper()
	p, err := c.kube.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	g, err := c.eci.GetGroup(context.Background(), p.Annotations[vnode.AnnInstanceID])
	if err != nil {
		t.Fatalf("the group of %s: %v", name, err)
	}
	return g.Status.Host
}
