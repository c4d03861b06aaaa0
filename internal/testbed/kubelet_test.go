package testbed

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/eci-dev/eci/internal/poll"
)

// The bed's optional real node: a pod scheduled by kube-scheduler runs on the
// upstream kubelet through the bed's containerd, pulls from the bed's registry,
// serves HTTP on its pod IP, and its log comes back through the apiserver's
// kubelet proxy (as for kubectl logs).
func TestKubeletRunsScheduledPod(t *testing.T) {
	b := New(t, Options{Kube: true, Containerd: true, Kubelet: true, KubeletMaxPods: 5})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cs := b.Kube.Client

	node, err := cs.CoreV1().Nodes().Get(ctx, b.Kubelet.NodeName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := node.Status.Capacity.Pods().Value(); got != 5 {
		t.Errorf("node pod capacity %d, want 5 (KubeletMaxPods)", got)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "web", Image: b.Registry.Busybox,
			Command: []string{"sh", "-c", "echo started on a real node; mkdir -p /srv && echo real-node > /srv/index.html && cp /etc/resolv.conf /srv/resolv.txt && exec httpd -f -p 8080 -h /srv"},
		}}},
	}
	if _, err := cs.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var ip string
	poll.Eventually(t, 2*time.Minute, "the pod runs on the bed's node", func() error {
		p, err := cs.CoreV1().Pods("default").Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if p.Spec.NodeName != b.Kubelet.NodeName || p.Status.Phase != corev1.PodRunning || p.Status.PodIP == "" {
			return fmt.Errorf("node %q phase %s ip %q %v", p.Spec.NodeName, p.Status.Phase, p.Status.PodIP, p.Status.ContainerStatuses)
		}
		ip = p.Status.PodIP
		return nil
	})
	if !b.Network.PodCIDR.Contains(mustAddr(t, ip)) {
		t.Fatalf("pod IP %s outside the bed's pod network %s", ip, b.Network.PodCIDR)
	}
	client := &http.Client{Timeout: 2 * time.Second}
	poll.Eventually(t, 30*time.Second, "the pod serves HTTP on its IP", func() error {
		resp, err := client.Get("http://" + ip + ":8080/index.html")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if strings.TrimSpace(string(body)) != "real-node" {
			return fmt.Errorf("GET answered %s %q", resp.Status, body)
		}
		return nil
	})
	// No cluster DNS: the kubelet falls back to its resolvConf, the bed's
	// NoResolver, never the machine's own resolver.
	resp, err := client.Get("http://" + ip + ":8080/resolv.txt")
	if err != nil {
		t.Fatal(err)
	}
	resolv, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if strings.Contains(string(resolv), "nameserver") || !strings.Contains(string(resolv), "ndots:1") {
		t.Fatalf("the real node's pod has resolv.conf %q, want the bed's, with no nameserver", resolv)
	}
	poll.Eventually(t, 30*time.Second, "the pod's log comes back through the apiserver", func() error {
		raw, err := cs.CoreV1().Pods("default").GetLogs("web", &corev1.PodLogOptions{}).DoRaw(ctx)
		if err != nil {
			return err
		}
		if !strings.Contains(string(raw), "started on a real node") {
			return fmt.Errorf("log is %q", raw)
		}
		return nil
	})
}
