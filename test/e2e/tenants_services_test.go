package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/eci-dev/eci/internal/agent/agenttest"
	"github.com/eci-dev/eci/internal/poll"
	"github.com/eci-dev/eci/internal/server/servertest"
	"github.com/eci-dev/eci/internal/testbed"
)

// Two clusters on one pool: each its own control plane, virtual node and
// tenant, one host for both, and a Service with the same ClusterIP in each
// (a service range both clusters add). Each cluster's instances reach their
// own cluster's backend through it, never the other's.
func TestTwoClustersOneClusterIP(t *testing.T) {
	one := testbed.New(t, testbed.Options{Kube: true, Containerd: true})
	two := testbed.New(t, testbed.Options{Kube: true, SharedRegistry: one.Registry})
	if !one.Network.LargeServiceCIDR.IsValid() {
		t.Fatalf("slot of %s has no large service range (slots 0-15 do)", one.Dir)
	}
	srv := servertest.Start(t)
	agenttest.Start(t, srv, one, "host-1")
	clusters := map[string]*cluster{
		"a": {bed: one, srv: srv, eci: srv.TenantClient(t, "tenant-a"), kube: fastClient(t, one)},
		"b": {bed: two, srv: srv, eci: srv.TenantClient(t, "tenant-b"), kube: fastClient(t, two)},
	}
	shared := one.Network.LargeServiceCIDR
	clusterIP := shared.Addr()
	for range 10 {
		clusterIP = clusterIP.Next()
	}
	ctx := context.Background()
	ns := "default"
	for name, c := range clusters {
		c.stopVNode = c.startVNodeAs(t, nodeName, "cluster-"+name, c.eci)
		if _, err := c.kube.NetworkingV1().ServiceCIDRs().Create(ctx, &networkingv1.ServiceCIDR{ObjectMeta: metav1.ObjectMeta{Name: "shared"},
			Spec: networkingv1.ServiceCIDRSpec{CIDRs: []string{shared.String()}}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		poll.Eventually(t, 30*time.Second, "cluster "+name+"'s Service web on "+clusterIP.String(), func() error {
			_, err := c.kube.CoreV1().Services(ns).Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: corev1.ServiceSpec{
				ClusterIP: clusterIP.String(), Selector: map[string]string{"app": "web"},
				Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}}}}, metav1.CreateOptions{})
			return err
		})
		c.createPod(t, ns, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", Labels: map[string]string{"app": "web"}}, Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "web", Image: one.Registry.Busybox,
				Command: []string{"sh", "-c", "mkdir -p /srv && echo web-of-" + name + " > /srv/index.html && exec httpd -f -p 8080 -h /srv"}}}}})
	}
	for _, c := range clusters {
		c.waitPod(t, ns, "web", "Running", 90*time.Second, running)
		c.createPod(t, ns, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "client"}, Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "main", Image: one.Registry.Busybox,
				Command: []string{"sh", "-c", "while :; do echo \"got $(wget -q -O- http://" + clusterIP.String() + "/ 2>&1)\"; sleep 0.3; done"}}}}})
	}
	for name, c := range clusters {
		c.waitPod(t, ns, "client", "Running", 90*time.Second, running)
		poll.Eventually(t, 60*time.Second, "cluster "+name+"'s client answered by its own web only", func() error {
			raw, err := c.kube.CoreV1().Pods(ns).GetLogs("client", &corev1.PodLogOptions{}).DoRaw(ctx)
			if err != nil {
				return err
			}
			lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
			for _, l := range lines {
				if strings.Contains(l, "web-of-") && l != "got web-of-"+name {
					t.Fatalf("cluster %s's client was answered %q", name, l)
				}
			}
			if n := strings.Count(string(raw), "got web-of-"+name); n < 5 {
				return fmt.Errorf("%d answers of its own web so far: %q", n, lines[max(0, len(lines)-5):])
			}
			return nil
		})
	}
}
