package e2e

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/eci-dev/eci/internal/poll"
)

// An instance gets the Service environment variables the kubelet sets
// (enableServiceLinks: the namespace's Services; always the default
// namespace's kubernetes Service), and, on a virtual node with no
// --cluster-dns, the kubelet's MissingClusterDNS event and a resolv.conf
// that is not the machine's (the agent's --resolv-conf "").
func testServiceLinks(t *testing.T, c *cluster, ns string) {
	ctx := context.Background()
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "shop-api"}, Spec: corev1.ServiceSpec{
		Selector: map[string]string{"app": "shop-api"},
		Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}},
	}}
	svc, err := c.kube.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.kube.CoreV1().Services(ns).Delete(ctx, "shop-api", metav1.DeleteOptions{}) }()
	k8s, err := c.kube.CoreV1().Services("default").Get(ctx, "kubernetes", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	no := false
	for name, links := range map[string]*bool{"links": nil, "no-links": &no} {
		c.createPod(t, ns, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.PodSpec{
			EnableServiceLinks: links,
			Containers: []corev1.Container{{Name: "main", Image: c.bed.Registry.Busybox,
				Command: []string{"sh", "-c", "env | sort; echo ---; cat /etc/resolv.conf; sleep 3600"}}}}})
	}
	machine, _ := os.ReadFile("/etc/resolv.conf")
	for name, wantShop := range map[string]bool{"links": true, "no-links": false} {
		c.waitPod(t, ns, name, "Running", 60*time.Second, running)
		var out string
		poll.Eventually(t, 30*time.Second, name+"'s env in its log", func() error {
			raw, err := c.kube.CoreV1().Pods(ns).GetLogs(name, &corev1.PodLogOptions{}).DoRaw(ctx)
			if out = string(raw); err != nil || !strings.Contains(out, "---") {
				return fmt.Errorf("log %q (%v)", out, err)
			}
			return nil
		})
		env, resolv, _ := strings.Cut(out, "---")
		for v, want := range map[string]bool{
			"SHOP_API_SERVICE_HOST=" + svc.Spec.ClusterIP: wantShop, "SHOP_API_SERVICE_PORT_HTTP=80": wantShop,
			"SHOP_API_PORT=tcp://" + svc.Spec.ClusterIP + ":80": wantShop,
			"KUBERNETES_SERVICE_HOST=" + k8s.Spec.ClusterIP:     true, "KUBERNETES_SERVICE_PORT=443": true,
		} {
			if strings.Contains(env, v+"\n") != want {
				t.Errorf("pod %s: %s in its env is %v, want %v:\n%s", name, v, !want, want, env)
			}
		}
		// The test's agent has --resolv-conf "": no nameserver at all.
		if strings.Contains(resolv, "nameserver") || !strings.Contains(resolv, "options ndots:1") {
			t.Errorf("pod %s's resolv.conf:\n%s\nwant no nameserver, only the resolver's default options", name, resolv)
		}
		for _, line := range strings.Split(string(machine), "\n") {
			if l := strings.TrimSpace(line); strings.HasPrefix(l, "nameserver") && strings.Contains(resolv, l) {
				t.Errorf("pod %s's resolv.conf has the machine's %q:\n%s", name, l, resolv)
			}
		}
	}
	poll.Eventually(t, 30*time.Second, "the MissingClusterDNS event", func() error {
		evs, err := c.kube.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=links,reason=MissingClusterDNS"})
		if err != nil || len(evs.Items) == 0 {
			return fmt.Errorf("none (%v)", err)
		}
		return nil
	})
	for _, name := range []string{"links", "no-links"} {
		_ = c.kube.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{})
	}
}
