package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/eci-dev/eci/internal/client"
	"github.com/eci-dev/eci/internal/pki"
	"github.com/eci-dev/eci/internal/poll"
	"github.com/eci-dev/eci/internal/vnode"
)

// testHardening: what a tenant may not ask of the virtual node is refused
// with the pod Failed and an Event saying why, and nothing is created.
func testHardening(t *testing.T, c *cluster, ns string) {
	busybox := c.bed.Registry.Busybox
	refused := func(t *testing.T, name, reason string, sc *corev1.SecurityContext, psc *corev1.PodSecurityContext, want ...string) {
		t.Helper()
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.PodSpec{SecurityContext: psc,
			Containers: []corev1.Container{{Name: "main", Image: busybox, Command: []string{"sleep", "3600"}, SecurityContext: sc}}}}
		c.createPod(t, ns, pod)
		p := c.waitPod(t, ns, name, "Failed with "+reason, 30*time.Second, func(p *corev1.Pod) error {
			if p.Status.Phase != corev1.PodFailed || p.Status.Reason != reason {
				return fmt.Errorf("phase %s reason %q", p.Status.Phase, p.Status.Reason)
			}
			return nil
		})
		for _, w := range want {
			if !strings.Contains(p.Status.Message, w) {
				t.Errorf("message %q lacks %q", p.Status.Message, w)
			}
		}
		podEvent(t, c, ns, p, reason, want[0])
		noGroupFor(t, c, p)
	}

	t.Run("capabilities beyond the allowlist and Unconfined seccomp fail the pod with an Event naming what is allowed", func(t *testing.T) {
		refused(t, "cap-sys-admin", "CapabilityNotAllowed",
			&corev1.SecurityContext{Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"NET_ADMIN", "CAP_SYS_ADMIN"}}}, nil,
			"SYS_ADMIN may not be added", "capabilities.add[1]", "allowed: AUDIT_WRITE, CHOWN")
		refused(t, "cap-all", "CapabilityNotAllowed",
			&corev1.SecurityContext{Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"ALL"}}}, nil, "ALL may not be added", "NET_ADMIN")
		refused(t, "cap-sys-module", "CapabilityNotAllowed",
			&corev1.SecurityContext{Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"SYS_MODULE"}}}, nil, "SYS_MODULE may not be added")
		refused(t, "seccomp-unconfined", "SeccompProfileNotAllowed", nil,
			&corev1.PodSecurityContext{SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeUnconfined}}, "allowed: RuntimeDefault")
	})

	t.Run("the kubelet API authorizes as a kubelet: client certificates and tokens, then SubjectAccessReview", func(t *testing.T) {
		testKubeletAuth(t, c, ns)
	})

	t.Run("pods Kubernetes accepts run and keep their instance: a 120-character name, a dotted name, named probe ports", func(t *testing.T) {
		long := "long-" + strings.Repeat("n", 115)
		web := func(name string) *corev1.Pod {
			return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: busybox,
				Command: []string{"sh", "-c", "hostname; mkdir -p /srv && echo ok > /srv/healthz && exec httpd -f -p 8080 -h /srv"},
				Ports:   []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
				ReadinessProbe: &corev1.Probe{PeriodSeconds: 1, ProbeHandler: corev1.ProbeHandler{
					HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromString("http")}}},
				LivenessProbe: &corev1.Probe{PeriodSeconds: 1, ProbeHandler: corev1.ProbeHandler{
					TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromString("http")}}},
			}}}}
		}
		ready := func(p *corev1.Pod) error {
			if p.Status.Phase != corev1.PodRunning || len(p.Status.ContainerStatuses) != 1 || !p.Status.ContainerStatuses[0].Ready {
				return fmt.Errorf("phase %s %+v", p.Status.Phase, p.Status.ContainerStatuses)
			}
			return nil
		}
		ids := map[string]string{}
		for _, name := range []string{long, "web.v1"} {
			c.createPod(t, ns, web(name))
			p := c.waitPod(t, ns, name, "Running and Ready through its named port", 60*time.Second, ready)
			ids[name] = p.Annotations[vnode.AnnInstanceID]
		}
		poll.Eventually(t, 10*time.Second, "the dotted pod's hostname is its name", func() error {
			raw, err := c.kube.CoreV1().Pods(ns).GetLogs("web.v1", &corev1.PodLogOptions{}).Do(context.Background()).Raw()
			if err != nil || strings.TrimSpace(string(raw)) != "web.v1" {
				return fmt.Errorf("log %q (%v)", raw, err)
			}
			return nil
		})
		// While the orphan collector runs a few times:
		c.keepInstances(t, ns, ids, 3*orphanInterval, func(p *corev1.Pod, _ string) error {
			groups, err := c.eci.ListGroups(context.Background(), client.ListOptions{LabelSelector: vnode.LabelPodUID + "=" + string(p.UID)})
			if err != nil || len(groups.Items) != 1 || groups.Items[0].Metadata.ID != p.Annotations[vnode.AnnInstanceID] ||
				groups.Items[0].Metadata.DeletionRequestedAt != nil || groups.Items[0].Metadata.Labels[vnode.LabelPodName] != p.Name {
				return fmt.Errorf("instance %s: groups %+v (%v)", p.Annotations[vnode.AnnInstanceID], groups, err)
			}
			return nil
		})
		for name := range ids {
			c.waitPod(t, ns, name, "still Running with its first instance", time.Second, ready)
		}
		c.deletePods(t, ns, ids)
	})

	t.Run("two virtual nodes of one cluster, one with a 50-character name, never delete each other's instances", func(t *testing.T) {
		other := "eci-vnode-" + strings.Repeat("x", 40)
		stop := c.startVNodeAs(t, other, "cluster-a", c.eci)
		defer func() {
			// Gone with its node: later pods must not be scheduled to it.
			stop()
			if err := c.kube.CoreV1().Nodes().Delete(context.Background(), other, metav1.DeleteOptions{}); err != nil {
				t.Error(err)
			}
		}()
		for node, name := range map[string]string{nodeName: "on-first", other: "on-second"} {
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.PodSpec{
				NodeSelector: map[string]string{"kubernetes.io/hostname": node},
				Containers:   []corev1.Container{{Name: "main", Image: busybox, Command: []string{"sleep", "3600"}}}}}
			c.createPod(t, ns, pod)
		}
		ids := map[string]string{}
		for _, name := range []string{"on-first", "on-second"} {
			c.waitPod(t, ns, name, "Running", 60*time.Second, running)
			poll.Eventually(t, 10*time.Second, name+"'s instance id", func() error {
				cur, err := c.kube.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{})
				if err != nil || cur.Annotations[vnode.AnnInstanceID] == "" {
					return fmt.Errorf("annotations %v (%v)", cur.GetAnnotations(), err)
				}
				ids[name] = cur.Annotations[vnode.AnnInstanceID]
				return nil
			})
		}
		c.keepInstances(t, ns, ids, 3*orphanInterval, func(_ *corev1.Pod, id string) error {
			g, err := c.eci.GetGroup(context.Background(), id)
			if err != nil || g.Metadata.DeletionRequestedAt != nil || g.Status.State.Terminal() {
				return fmt.Errorf("the instance was deleted by the other virtual node: %+v (%v)", g, err)
			}
			return nil
		})
		c.deletePods(t, ns, ids)
	})
}

// keepInstances checks for d (the orphan collector's runs) that each pod of
// ids (name -> its instance's id) stays Running without a restart and that
// kept(pod, id) holds, failing t as soon as one does not.
func (c *cluster) keepInstances(t *testing.T, ns string, ids map[string]string, d time.Duration, kept func(p *corev1.Pod, id string) error) {
	t.Helper()
	poll.Consistently(t, d, "the pods keep their instances", func() error {
		for name, id := range ids {
			p, err := c.kube.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if err := running(p); err != nil {
				return fmt.Errorf("pod %s: %v", name, err)
			}
			for _, s := range p.Status.ContainerStatuses {
				if s.RestartCount != 0 {
					return fmt.Errorf("pod %s restarted: %+v", name, s)
				}
			}
			if err := kept(p, id); err != nil {
				return fmt.Errorf("pod %s: %v", name, err)
			}
		}
		return nil
	})
}

// deletePods deletes the pods named by names' keys and waits until they are gone.
func (c *cluster) deletePods(t *testing.T, ns string, names map[string]string) {
	t.Helper()
	grace := int64(1) // busybox as PID 1 ignores SIGTERM
	for name := range names {
		if err := c.kube.CoreV1().Pods(ns).Delete(context.Background(), name, metav1.DeleteOptions{GracePeriodSeconds: &grace}); err != nil {
			t.Error(err)
		}
	}
	poll.Eventually(t, 60*time.Second, "the pods gone", func() error {
		for name := range names {
			if _, err := c.kube.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{}); err == nil {
				return fmt.Errorf("pod %s is still there", name)
			}
		}
		return nil
	})
}

// testKubeletAuth: the vnode's kubelet API authorizes as a kubelet with
// Webhook authentication and authorization.
func testKubeletAuth(t *testing.T, c *cluster, ns string) {
	ctx := context.Background()
	node, err := c.kube.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	base := fmt.Sprintf("https://%s:%d", c.bed.Network.NodeIP, node.Status.DaemonEndpoints.KubeletEndpoint.Port)
	call := func(method, path string, cert *tls.Certificate, token string) int {
		t.Helper()
		tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}} //nolint:gosec // the vnode's self-signed serving cert
		if cert != nil {
			tr.TLSClientConfig.Certificates = []tls.Certificate{*cert}
		}
		req, _ := http.NewRequest(method, base+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	exec := "/exec/" + ns + "/no-such-pod/main?command=id&output=1"
	mallory, err := c.bed.Kube.CA.Issue(pki.CertRequest{CommonName: "mallory", Client: true})
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, _ := pki.KeyPEM(mallory.Key)
	malloryCert, err := tls.X509KeyPair(pki.CertPEM(mallory.Cert), keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	// Service accounts with the rights metrics-server and a reader of
	// nodes/proxy get.
	token := func(name string, rules ...rbacv1.PolicyRule) string {
		t.Helper()
		if _, err := c.kube.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.kube.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "e2e-" + name}, Rules: rules}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.kube.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "e2e-" + name},
			RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "e2e-" + name},
			Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: name, Namespace: ns}}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		tr, err := c.kube.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name, &authnv1.TokenRequest{}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return tr.Status.Token
	}
	metricsReader := token("metrics-reader", rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"nodes/stats", "nodes/metrics"}, Verbs: []string{"get"}})
	proxyReader := token("proxy-reader", rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"nodes/proxy"}, Verbs: []string{"get"}})

	for _, tc := range []struct {
		who, method, path string
		cert              *tls.Certificate
		token             string
		want              int
	}{
		{"nobody", "GET", "/stats/summary", nil, "", http.StatusUnauthorized},
		{"a made-up token", "GET", "/stats/summary", nil, "not-a-token", http.StatusUnauthorized},
		{"a certificate of another identity, without RBAC", "GET", "/stats/summary", &malloryCert, "", http.StatusForbidden},
		{"a certificate of another identity, without RBAC", "POST", exec, &malloryCert, "", http.StatusForbidden},
		{"a certificate of another identity, without RBAC", "GET", "/pods", &malloryCert, "", http.StatusForbidden},
		{"metrics-server's rights (a token)", "GET", "/stats/summary", nil, metricsReader, http.StatusOK},
		{"metrics-server's rights (a token)", "GET", "/metrics/resource", nil, metricsReader, http.StatusOK},
		{"metrics-server's rights (a token)", "POST", exec, nil, metricsReader, http.StatusForbidden},
		{"metrics-server's rights (a token)", "GET", "/containerLogs/" + ns + "/x/y", nil, metricsReader, http.StatusForbidden},
		{"nobody", "GET", "/metrics", nil, "", http.StatusUnauthorized},
		{"metrics-server's rights (a token)", "GET", "/metrics", nil, metricsReader, http.StatusOK},
		{"metrics-server's rights (a token)", "GET", "/healthz", nil, metricsReader, http.StatusForbidden},
		{"get nodes/proxy (a token)", "GET", "/healthz", nil, proxyReader, http.StatusOK},
		{"get nodes/proxy (a token)", "GET", "/pods", nil, proxyReader, http.StatusOK},
		{"get nodes/proxy (a token): exec over a GET is still create", "GET", exec, nil, proxyReader, http.StatusForbidden},
	} {
		if got := call(tc.method, tc.path, tc.cert, tc.token); got != tc.want {
			t.Errorf("%s: %s %s answered %d, want %d", tc.who, tc.method, tc.path, got, tc.want)
		}
	}
}
