package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/eci-dev/eci/internal/agent/agenttest"
	"github.com/eci-dev/eci/internal/poll"
	"github.com/eci-dev/eci/internal/server"
	"github.com/eci-dev/eci/internal/server/servertest"
	"github.com/eci-dev/eci/internal/testbed"
)

// helmAddon locates the helm binary hack/build-helm.sh built.
var helmAddon = testbed.Addon{Env: "HELM_BIN", Dir: "helm", File: "helm", Script: "hack/build-helm.sh"}

// The virtual node installed as a user installs it: a real helm (built from
// its Go module) installs deploy/helm/eci-vnode into the hybrid test bed's
// cluster, where the node runs as a pod on the real kubelet node with the
// chart's service account and least-privilege RBAC (no admin credentials),
// the eci server's address and a tenant token from a Secret. The node joins,
// gets its serving certificate from the cluster's signer, and runs a pod as
// an instance, whose logs come back through it. deploy/vnode (kustomize) is
// the chart rendered with its defaults, and the apiserver takes it.
func TestHelmChart(t *testing.T) {
	helm, err := helmAddon.Binary()
	if err != nil {
		t.Fatal(err)
	}
	bed := testbed.New(t, testbed.Options{Kube: true, Containerd: true, Kubelet: true})
	nodeIP := bed.Network.NodeIP.String()
	srv := servertest.Start(t, func(c *server.Config) { c.Addr, c.TLSNames = nodeIP+":0", []string{nodeIP} })
	// The instances' host has a containerd of its own: the real kubelet's
	// pods must not get the agent's CNI plugin.
	host := testbed.New(t, testbed.Options{Containerd: true, SharedRegistry: bed.Registry})
	agenttest.Start(t, srv, host, "host-1")
	c := &cluster{bed: bed, srv: srv, kube: fastClient(t, bed)}
	ctx := context.Background()
	root, err := testbed.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}

	// The eci image: the static binary on busybox, its entrypoint.
	bin := filepath.Join(t.TempDir(), "eci")
	build := exec.Command("go", "build", "-trimpath", "-o", bin, "./cmd/eci")
	build.Dir, build.Env = root, append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build eci: %v\n%s", err, out)
	}
	img, err := testbed.Addon{File: "eci"}.Image(bin)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := bed.Registry.Push(ctx, "eci:chart", img)
	if err != nil {
		t.Fatal(err)
	}
	repo, tag, _ := strings.Cut(ref[strings.LastIndex(ref, "/")+1:], ":")
	repo = ref[:strings.LastIndex(ref, "/")+1] + repo
	api, err := url.Parse(bed.Kube.Server)
	if err != nil {
		t.Fatal(err)
	}

	const node = "eci-vnode-helm"
	out, err := run(helm, "--kubeconfig", bed.Kube.Kubeconfig, "install", "eci-vnode", filepath.Join(root, "deploy", "helm", "eci-vnode"),
		"--namespace", "eci-system", "--create-namespace",
		"--set", "image.repository="+repo, "--set", "image.tag="+tag, "--set", "nodeName="+node,
		"--set", "eci.server="+srv.URL(), "--set", "eci.token="+srv.TenantToken(t, "cluster-helm"), "--set-file", "eci.caCert="+srv.CAFile(),
		// The bed's real node has no kube-proxy: the apiserver by address.
		"--set", "apiServer.host="+api.Hostname(), "--set-string", "apiServer.port="+api.Port())
	if err != nil {
		t.Fatalf("helm install: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		_, _ = run(helm, "--kubeconfig", bed.Kube.Kubeconfig, "uninstall", "eci-vnode", "--namespace", "eci-system")
	})

	poll.Eventually(t, 180*time.Second, "the chart's node is Ready", func() error {
		n, err := c.kube.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("%v; vnode pods: %s", err, c.podsIn("eci-system"))
		}
		for _, cond := range n.Status.Conditions {
			if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
				return nil
			}
		}
		return fmt.Errorf("conditions %v", n.Status.Conditions)
	})
	vnodePod := c.podsIn("eci-system")
	if !strings.Contains(vnodePod, bed.Kubelet.NodeName) {
		t.Fatalf("the vnode does not run on the real node: %s", vnodePod)
	}

	ns := "default"
	c.createPod(t, ns, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "via-chart"}, Spec: corev1.PodSpec{
		NodeSelector: map[string]string{"kubernetes.io/hostname": node},
		Tolerations:  []corev1.Toleration{{Key: "virtual-kubelet.io/provider", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}},
		Containers:   []corev1.Container{{Name: "main", Image: bed.Registry.Busybox, Command: []string{"sh", "-c", "echo hello from the node of the chart; sleep 3600"}}}}})
	c.waitPod(t, ns, "via-chart", "Running", 120*time.Second, running)
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := c.kubectlIn(nil, "-n", "eci-system", "logs", "deploy/eci-vnode", "--tail=40")
			t.Logf("the node's log:\n%s", out)
		}
	})
	c.logsUntil(t, ns, "via-chart", []string{"hello from the node of the chart"})
	// An admin approves the node's serving certificate, as a kubelet's (the
	// chart's default: the node may not approve it itself).
	sa := "system:serviceaccount:eci-system:eci-vnode"
	poll.Eventually(t, 90*time.Second, "the node serves a certificate of the cluster's CA once approved", func() error {
		csrs, err := c.kube.CertificatesV1().CertificateSigningRequests().List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		for _, csr := range csrs.Items {
			if csr.Spec.Username == sa && len(csr.Status.Conditions) == 0 {
				if out, err := c.kubectlIn(nil, "certificate", "approve", csr.Name); err != nil {
					return fmt.Errorf("approve: %v: %s", err, out)
				}
			}
		}
		n, err := c.kube.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
		if err != nil || len(n.Status.Addresses) == 0 {
			return fmt.Errorf("node %v", err)
		}
		return verifyServing(fmt.Sprintf("%s:%d", n.Status.Addresses[0].Address, n.Status.DaemonEndpoints.KubeletEndpoint.Port), bed.Kube.CA.Cert)
	})

	// What its service account may not do: change another node or a pod
	// not bound to it, request a token bound to no pod, approve a
	// certificate.
	as := []string{"--as=" + sa, "--as-group=system:serviceaccounts", "--as-group=system:serviceaccounts:eci-system", "--as-group=system:authenticated"}
	vnodePodName := strings.Fields(vnodePod)[0]
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"label", "node", bed.Kubelet.NodeName, "x=y"}, "forbidden"},
		{[]string{"-n", "eci-system", "annotate", "pod", vnodePodName, "x=y"}, "may change or delete only the pods bound to it"},
		{[]string{"-n", "eci-system", "delete", "pod", vnodePodName}, "may change or delete only the pods bound to it"},
		{[]string{"-n", "default", "create", "token", "default"}, "must be bound to a pod"},
	} {
		out, err := c.kubectlIn(nil, append(as, tc.args...)...)
		if err == nil || !strings.Contains(strings.ToLower(string(out)), strings.ToLower(tc.want)) {
			t.Errorf("as the node's service account, kubectl %s: %v %s; want %q", strings.Join(tc.args, " "), err, out, tc.want)
		}
	}

	// deploy/vnode holds the chart rendered with its defaults (and an
	// existing Secret), and the apiserver takes the kustomization.
	rendered, err := run(helm, "template", "eci-vnode", filepath.Join(root, "deploy", "helm", "eci-vnode"), "--namespace", "eci-system",
		"--include-crds", "--set", "eci.existingSecret=eci-vnode")
	if err != nil {
		t.Fatalf("helm template: %v\n%s", err, rendered)
	}
	committed, err := os.ReadFile(filepath.Join(root, "deploy", "vnode", "eci-vnode.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(bytes.TrimSpace(committed), bytes.TrimSpace([]byte(rendered))) {
		t.Fatalf("deploy/vnode/eci-vnode.yaml is not the chart rendered: run hack/render-vnode.sh")
	}
	if out, err := c.kubectlIn(nil, "apply", "--dry-run=server", "-k", filepath.Join(root, "deploy", "vnode")); err != nil {
		t.Fatalf("kubectl apply -k deploy/vnode: %v\n%s", err, out)
	}
}

// run runs a command and returns its output.
func run(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}

// podsIn prints the pods of ns: name, node, phase.
func (c *cluster) podsIn(ns string) string {
	pods, err := c.kube.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		return err.Error()
	}
	var b strings.Builder
	for _, p := range pods.Items {
		fmt.Fprintf(&b, "%s on %s: %s %v; events:", p.Name, p.Spec.NodeName, p.Status.Phase, p.Status.ContainerStatuses)
		evs, _ := c.kube.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{FieldSelector: "involvedObject.name=" + p.Name})
		for _, ev := range evs.Items {
			fmt.Fprintf(&b, " [%s %s: %s]", ev.Type, ev.Reason, ev.Message)
		}
		b.WriteString("; ")
	}
	return b.String()
}
