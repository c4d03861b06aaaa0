package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/eci-dev/eci/internal/agent/agenttest"
	"github.com/eci-dev/eci/internal/poll"
	"github.com/eci-dev/eci/internal/server/servertest"
	"github.com/eci-dev/eci/internal/testbed"
	"github.com/eci-dev/eci/internal/vnode"
)

// metrics-server and the HorizontalPodAutoscaler on the virtual node, as a
// user of any cluster runs them: metrics-server (built from its Go module,
// deploy/addons/metrics-server.yaml, no --kubelet-insecure-tls) runs as an
// instance, scrapes the node's kubelet API with its service account's
// token and verifies the node's certificate, which the node got from the
// cluster's kubelet-serving signer; kubectl top shows the instances'
// usage; an HPA on CPU scales a Deployment up under load and down after.
func TestMetricsServerAndHPA(t *testing.T) {
	bed := testbed.New(t, testbed.Options{Kube: true, Containerd: true, Addons: true})
	srv := servertest.Start(t)
	agenttest.Start(t, srv, bed, "host-1")
	c := &cluster{bed: bed, srv: srv, eci: srv.TenantClient(t, "cluster-a"), kube: fastClient(t, bed)}
	var addr string
	c.stopVNode = c.startVNodeAs(t, nodeName, "cluster-a", c.eci, func(cfg *vnode.Config) {
		cfg.RotateServerCertificates = true
		addr = cfg.ListenAddr
	})
	ctx := context.Background()

	// The node's serving certificate: its own request, approved by itself,
	// signed by the cluster's CA for its InternalIP.
	poll.Eventually(t, 60*time.Second, "the kubelet API serves a certificate of the cluster's CA", func() error {
		return verifyServing(addr, bed.Kube.CA.Cert)
	})
	csrs, err := c.kube.CertificatesV1().CertificateSigningRequests().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	approved := 0
	for _, csr := range csrs.Items {
		for _, cond := range csr.Status.Conditions {
			if csr.Spec.SignerName == certificatesv1.KubeletServingSignerName && cond.Type == certificatesv1.CertificateApproved && cond.Reason == "EciVnodeSelfApprove" {
				approved++
			}
		}
	}
	if approved != 1 {
		t.Fatalf("%d kubelet-serving requests approved by the node; want its one", approved)
	}

	c.applyAddon(t, "metrics-server.yaml", "${METRICS_SERVER_IMAGE}", bed.Registry.MetricsServer)
	c.waitReady(t, "kube-system", "k8s-app=metrics-server", 180*time.Second)

	// A Deployment whose pods burn their CPU until told to idle.
	ns := "default"
	one := resource.MustParse("250m")
	replicas := int32(1)
	labels := map[string]string{"app": "hpa-burn"}
	if _, err := c.kube.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "hpa-burn"},
		Spec: appsv1.DeploymentSpec{Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: onVNode(corev1.PodSpec{
				Containers: []corev1.Container{{Name: "burn", Image: bed.Registry.Busybox,
					Command:   []string{"sh", "-c", "while [ ! -e /tmp/idle ]; do :; done; exec sleep 3600"},
					Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: one}, Limits: corev1.ResourceList{corev1.ResourceCPU: one}}}}})}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	c.waitReady(t, ns, "app=hpa-burn", 90*time.Second)

	// kubectl top: the node's and the burning pod's usage, in millicores.
	poll.Eventually(t, 90*time.Second, "kubectl top pods shows the burning pod near its 250m", func() error {
		out, err := c.kubectlIn(nil, "top", "pods", "-n", ns, "-l", "app=hpa-burn", "--no-headers")
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		if m := millicores(string(out)); m < 150 {
			return fmt.Errorf("%dm in %q", m, out)
		}
		return nil
	})
	poll.Eventually(t, 60*time.Second, "kubectl top node shows the virtual node", func() error {
		out, err := c.kubectlIn(nil, "top", "node", nodeName, "--no-headers")
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		if !strings.HasPrefix(string(out), nodeName+" ") || millicores(string(out)) < 150 {
			return fmt.Errorf("%q", out)
		}
		return nil
	})

	c.createHPA(t, ns, "hpa-burn", 3)
	poll.Eventually(t, 180*time.Second, "the HPA scales hpa-burn up to 3", func() error {
		return c.replicasNow(ns, "hpa-burn", 3)
	})
	c.waitReady(t, ns, "app=hpa-burn", 90*time.Second)
	// The load ends: every pod idles, and the HPA scales down.
	poll.Eventually(t, 240*time.Second, "the HPA scales hpa-burn down to 1 once idle", func() error {
		pods, err := c.kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=hpa-burn"})
		if err != nil {
			return err
		}
		for _, p := range pods.Items {
			if p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil {
				_, _ = c.kubectlIn(nil, "exec", "-n", ns, p.Name, "--", "touch", "/tmp/idle")
			}
		}
		return c.replicasNow(ns, "hpa-burn", 1)
	})
}

// waitReady waits until the pods of selector in ns exist and are all Ready.
func (c *cluster) waitReady(t *testing.T, ns, selector string, timeout time.Duration) {
	t.Helper()
	poll.Eventually(t, timeout, selector+" ready", func() error {
		pods, err := c.kube.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: selector})
		if err != nil || len(pods.Items) == 0 {
			return fmt.Errorf("%d pods (%v)", len(pods.Items), err)
		}
		for _, p := range pods.Items {
			if !podReady(&p) {
				return fmt.Errorf("%s not ready: %s %v", p.Name, p.Status.Phase, p.Status.ContainerStatuses)
			}
		}
		return nil
	})
}

func podReady(p *corev1.Pod) bool {
	for _, cond := range p.Status.Conditions {
		if cond.Type == corev1.PodReady {
			return cond.Status == corev1.ConditionTrue
		}
	}
	return false
}

// createHPA autoscales the Deployment name on CPU (50% of requests), 1 to
// max replicas, with no stabilization window (the default waits 5 minutes
// before scaling down).
func (c *cluster) createHPA(t *testing.T, ns, name string, hi int32) {
	t.Helper()
	lo, target, zero := int32(1), int32(50), int32(0)
	if _, err := c.kube.AutoscalingV2().HorizontalPodAutoscalers(ns).Create(context.Background(), &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: name},
			MinReplicas:    &lo, MaxReplicas: hi,
			Metrics: []autoscalingv2.MetricSpec{{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{
				Name: corev1.ResourceCPU, Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: &target}}}},
			Behavior: &autoscalingv2.HorizontalPodAutoscalerBehavior{
				ScaleUp:   &autoscalingv2.HPAScalingRules{StabilizationWindowSeconds: &zero},
				ScaleDown: &autoscalingv2.HPAScalingRules{StabilizationWindowSeconds: &zero}},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// replicasNow: the Deployment asks for want replicas and has as many ready.
func (c *cluster) replicasNow(ns, name string, want int32) error {
	ctx := context.Background()
	hpa, err := c.kube.AutoscalingV2().HorizontalPodAutoscalers(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	d, err := c.kube.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	if *d.Spec.Replicas != want || d.Status.ReadyReplicas != want || d.Status.Replicas != want {
		return fmt.Errorf("replicas %d (ready %d, all %d), HPA current %v desired %d, conditions %v", *d.Spec.Replicas, d.Status.ReadyReplicas, d.Status.Replicas,
			hpa.Status.CurrentMetrics, hpa.Status.DesiredReplicas, hpa.Status.Conditions)
	}
	return nil
}

// millicores reads the first CPU column ("123m") of kubectl top's output.
func millicores(out string) int {
	m := regexp.MustCompile(`\s(\d+)m\s`).FindStringSubmatch(out)
	if m == nil {
		return -1
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// verifyServing dials the kubelet API at addr and verifies its certificate
// with the cluster's CA for the address.
func verifyServing(addr string, ca *x509.Certificate) error {
	host, _, _ := net.SplitHostPort(addr)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 3 * time.Second}, "tcp", addr, &tls.Config{RootCAs: pool, ServerName: host})
	if err != nil {
		return err
	}
	return conn.Close()
}
