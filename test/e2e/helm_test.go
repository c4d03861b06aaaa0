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
	agenttest.Start(t, srv, bed, "host-1")
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
		Containers:   []corev1.Container{{Name: "main", Image: bed.Registry.Busybox, Command: []string{"sh", "-c", "echo hello from the chart's node; sleep 3600"}}}}})
	c.waitPod(t, ns, "via-chart", "Running", 120*time.Second, running)
	c.logsUntil(t, ns, "via-chart", []string{"hello from the chart's node"})
	poll.Eventually(t, 60*time.Second, "the node serves a certificate of the cluster's CA", func() error {
		n, err := c.kube.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
		if err != nil || len(n.Status.Addresses) == 0 {
			return fmt.Errorf("node %v", err)
		}
		return verifyServing(fmt.Sprintf("%s:%d", n.Status.Addresses[0].Address, n.Status.DaemonEndpoints.KubeletEndpoint.Port), bed.Kube.CA.Cert)
	})

	// deploy/vnode holds the chart rendered with its defaults (and an
	// existing Secret), and the apiserver takes the kustomization.
	rendered, err := run(helm, "template", "eci-vnode", filepath.Join(root, "deploy", "helm", "eci-vnode"), "--namespace", "eci-system",
		"--set", "eci.existingSecret=eci-vnode")
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
		fmt.Fprintf(&b, "%s on %s: %s %v; ", p.Name, p.Spec.NodeName, p.Status.Phase, p.Status.ContainerStatuses)
	}
	return b.String()
}
