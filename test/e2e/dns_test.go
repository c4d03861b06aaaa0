package e2e

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/eci-dev/eci/internal/agent/agenttest"
	"github.com/eci-dev/eci/internal/poll"
	"github.com/eci-dev/eci/internal/server/servertest"
	"github.com/eci-dev/eci/internal/testbed"
	"github.com/eci-dev/eci/internal/vnode"
)

// applyCoreDNS applies deploy/addons/coredns.yaml with the bed's CoreDNS
// image, the cluster DNS address dns and the cluster domain.
func (c *cluster) applyCoreDNS(t *testing.T, dns string) {
	t.Helper()
	c.applyAddon(t, "coredns.yaml", "${COREDNS_IMAGE}", c.bed.Registry.CoreDNS, "${CLUSTER_DNS}", dns, "${CLUSTER_DOMAIN}", "cluster.local")
}

// applyAddon applies deploy/addons/<file> with kubectl, its placeholders
// replaced (pairs of placeholder and value, as strings.NewReplacer).
func (c *cluster) applyAddon(t *testing.T, file string, replace ...string) {
	t.Helper()
	root, err := testbed.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(root, "deploy", "addons", file))
	if err != nil {
		t.Fatal(err)
	}
	manifest := strings.NewReplacer(replace...).Replace(string(raw))
	if out, err := c.kubectlIn(strings.NewReader(manifest), "apply", "-f", "-"); err != nil {
		t.Fatalf("kubectl apply %s: %v\n%s", file, err, out)
	}
}

// kubectlIn runs the bed's kubectl with stdin and returns its output.
func (c *cluster) kubectlIn(stdin io.Reader, args ...string) ([]byte, error) {
	cmd := exec.Command(filepath.Join(c.bed.Kube.BinDir, "kubectl"), append([]string{"--kubeconfig", c.bed.Kube.Kubeconfig}, args...)...)
	cmd.Stdin = stdin
	return cmd.CombinedOutput()
}

// The cluster's DNS from instances: CoreDNS (built from its Go module) runs
// as a Deployment on the virtual node, behind the kube-dns Service's
// ClusterIP, which the vnode's --cluster-dns names; an instance with
// dnsPolicy ClusterFirst resolves a Service by its short and full names, a
// headless Service to its pod, and reaches kubernetes.default by name.
func TestClusterDNS(t *testing.T) {
	bed := testbed.New(t, testbed.Options{Kube: true, Containerd: true, Addons: true})
	srv := servertest.Start(t)
	agenttest.Start(t, srv, bed, "host-1")
	c := &cluster{bed: bed, srv: srv, eci: srv.TenantClient(t, "cluster-a"), kube: fastClient(t, bed)}
	// The tenth address of the service range, as kubeadm gives kube-dns.
	dns := bed.Network.ServiceCIDR.Addr()
	for range 10 {
		dns = dns.Next()
	}
	c.stopVNode = c.startVNodeAs(t, nodeName, "cluster-a", c.eci, func(cfg *vnode.Config) {
		cfg.ClusterDNS, cfg.ClusterDomain = []string{dns.String()}, "cluster.local"
	})
	c.applyCoreDNS(t, dns.String())
	ctx := context.Background()
	ns := "default"
	busybox := bed.Registry.Busybox

	poll.Eventually(t, 120*time.Second, "CoreDNS ready on the virtual node", func() error {
		pods, err := c.kube.CoreV1().Pods("kube-system").List(ctx, metav1.ListOptions{LabelSelector: "k8s-app=kube-dns"})
		if err != nil || len(pods.Items) != 1 {
			return fmt.Errorf("%d pods (%v)", len(pods.Items), err)
		}
		for _, cond := range pods.Items[0].Status.Conditions {
			if cond.Type == corev1.PodReady && cond.Status == corev1.ConditionTrue {
				return nil
			}
		}
		return fmt.Errorf("not ready: %s %v", pods.Items[0].Status.Phase, pods.Items[0].Status.ContainerStatuses)
	})

	web, err := c.kube.CoreV1().Services(ns).Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "dns-web"}, Spec: corev1.ServiceSpec{
		Selector: map[string]string{"app": "dns-web"}, Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.kube.CoreV1().Services(ns).Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "dns-headless"}, Spec: corev1.ServiceSpec{
		ClusterIP: corev1.ClusterIPNone, Selector: map[string]string{"app": "dns-web"}, Ports: []corev1.ServicePort{{Port: 80}}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	k8s, err := c.kube.CoreV1().Services("default").Get(ctx, "kubernetes", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c.createPod(t, ns, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "dns-web", Labels: map[string]string{"app": "dns-web"}}, Spec: corev1.PodSpec{
		Containers: []corev1.Container{{Name: "web", Image: busybox, Command: []string{"sh", "-c", "mkdir -p /srv && echo dns-web > /srv/index.html && exec httpd -f -p 8080 -h /srv"}}}}})
	webPod := c.waitPod(t, ns, "dns-web", "Running", 90*time.Second, running)

	// The client looks each name up over and over, a line per answer.
	const lookups = `while :; do
  for n in dns-web dns-web.default.svc.cluster.local dns-headless kubernetes.default.svc.cluster.local; do
    echo "$n => $(nslookup $n 2>&1 | sed -n 's/^Address: \([0-9][0-9.]*\)$/\1/p' | tr '\n' ' ')"
  done
  echo "fetched $(wget -q -O- http://dns-web/ 2>&1)"
  nc -w 3 kubernetes.default 443 </dev/null && echo "apiserver reached by name"
  sleep 1
done`
	c.createPod(t, ns, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "dns-client"}, Spec: corev1.PodSpec{
		Containers: []corev1.Container{{Name: "main", Image: busybox, Command: []string{"sh", "-c", lookups}}}}})
	c.waitPod(t, ns, "dns-client", "Running", 90*time.Second, running)
	want := map[string]string{
		"dns-web":                              web.Spec.ClusterIP,
		"dns-web.default.svc.cluster.local":    web.Spec.ClusterIP,
		"dns-headless":                         webPod.Status.PodIP,
		"kubernetes.default.svc.cluster.local": k8s.Spec.ClusterIP,
	}
	poll.Eventually(t, 60*time.Second, "every name resolved in the client's log", func() error {
		tail := int64(40)
		raw, err := c.kube.CoreV1().Pods(ns).GetLogs("dns-client", &corev1.PodLogOptions{TailLines: &tail}).DoRaw(ctx)
		if err != nil {
			return err
		}
		log := string(raw)
		for name, ip := range want {
			if _, err := netip.ParseAddr(ip); err != nil {
				return fmt.Errorf("%s has no address to look for (%q)", name, ip)
			}
			if !strings.Contains(log, name+" => "+ip+" ") {
				return fmt.Errorf("no %q => %s in\n%s", name, ip, log)
			}
		}
		// (busybox's nslookup does not search for names with a dot; its
		// resolver, which wget and nc use, does: ndots:5.)
		for _, line := range []string{"fetched dns-web", "apiserver reached by name"} {
			if !strings.Contains(log, line) {
				return fmt.Errorf("no %q in\n%s", line, log)
			}
		}
		return nil
	})
}
