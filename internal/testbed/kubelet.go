package testbed

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"text/template"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/eci-dev/eci/internal/pki"
)

// NoResolver is a resolv.conf with no nameserver: what pods of the bed get
// when they have no DNS of their own. Instances of a test never send to the
// machine's own resolver (a runtime given no DNS settings copies the
// machine's /etc/resolv.conf).
const NoResolver = "# the test bed's: no nameserver, never the machine's resolver\noptions ndots:1\n"

// Kubelet is a real node of the bed's cluster: the upstream kubelet on the bed's
// containerd, registered as NodeName with the node IP.
type Kubelet struct {
	NodeName string
	// Port is the kubelet API port on the node IP.
	Port    int
	RootDir string
}

var kubeletConfig = template.Must(template.New("kubelet").Parse(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: {{.NodeIP}}
port: {{.Port}}
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: {{.HealthzPort}}
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: {{.CAFile}}}
authorization: {mode: Webhook}
cgroupDriver: cgroupfs
cgroupRoot: {{.CgroupRoot}}
cgroupsPerQOS: true
enforceNodeAllocatable: [pods]
containerRuntimeEndpoint: {{.Endpoint}}
# This kind of machine has cgroup v1 only; Kubernetes 1.35 refuses it by default.
failCgroupV1: false
failSwapOn: false
maxPods: {{.MaxPods}}
podLogsDir: {{.PodLogsDir}}
serializeImagePulls: false
clusterDomain: cluster.local
# Pods with no cluster DNS get this, never the machine's own resolver.
resolvConf: {{.ResolvConf}}
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
`))

// startKubelet runs the kubelet inside containerd's PID and mount namespaces
// (nsenter), so that the volumes it mounts are the ones containerd sees, and it
// dies with them.
func (b *Bed) startKubelet(ctx context.Context, maxPods int32) (*Kubelet, error) {
	k, c := b.Kube, b.Containerd
	dir := filepath.Join(b.Dir, "kubelet")
	kl := &Kubelet{NodeName: fmt.Sprintf("bed-%d-node", b.Slot), RootDir: filepath.Join(dir, "root")}
	for _, d := range []string{kl.RootDir, filepath.Join(dir, "pod-logs")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	kl.Port = ports[0]
	cert, err := k.CA.Issue(pki.CertRequest{
		CommonName: "system:node:" + kl.NodeName, Organization: []string{"system:nodes"}, Client: true,
	})
	if err != nil {
		return nil, err
	}
	certFile, keyFile := filepath.Join(dir, "client.crt"), filepath.Join(dir, "client.key")
	if err := pki.WriteKeyPair(certFile, keyFile, cert.Cert, cert.Key); err != nil {
		return nil, err
	}
	kubeconfig := filepath.Join(dir, "kubelet.kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: bed
  cluster: {server: %s, certificate-authority: %s}
users:
- name: kubelet
  user: {client-certificate: %s, client-key: %s}
contexts:
- name: bed
  context: {cluster: bed, user: kubelet}
current-context: bed
`, k.Server, k.CAFile, certFile, keyFile)), 0o600); err != nil {
		return nil, err
	}
	if maxPods <= 0 {
		maxPods = 110
	}
	resolvConf := filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(resolvConf, []byte(NoResolver), 0o644); err != nil {
		return nil, err
	}
	configFile := filepath.Join(dir, "config.yaml")
	if err := renderFile(configFile, kubeletConfig, map[string]any{
		"ResolvConf": resolvConf,
		"NodeIP":     b.Network.NodeIP.String(), "Port": kl.Port, "HealthzPort": ports[1],
		"CAFile": k.CAFile, "CgroupRoot": b.CgroupParent, "Endpoint": c.Endpoint,
		"MaxPods": maxPods, "PodLogsDir": filepath.Join(dir, "pod-logs"),
	}); err != nil {
		return nil, err
	}
	nsPID, err := c.namespacePID()
	if err != nil {
		return nil, err
	}
	proc, err := b.startProcess("kubelet", "nsenter",
		"--target", strconv.Itoa(nsPID), "--mount", "--pid", "--",
		filepath.Join(k.BinDir, "kubelet"),
		"--config="+configFile, "--kubeconfig="+kubeconfig,
		"--root-dir="+kl.RootDir, "--hostname-override="+kl.NodeName,
		"--node-ip="+b.Network.NodeIP.String(), "--v=1")
	if err != nil {
		return nil, err
	}
	err = proc.waitReady(ctx, 90*time.Second, func(ctx context.Context) error {
		node, err := k.Client.CoreV1().Nodes().Get(ctx, kl.NodeName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, cond := range node.Status.Conditions {
			if cond.Type == corev1.NodeReady {
				if cond.Status == corev1.ConditionTrue {
					return nil
				}
				return fmt.Errorf("node %s not Ready: %s", kl.NodeName, cond.Message)
			}
		}
		return fmt.Errorf("node %s has no Ready condition yet", kl.NodeName)
	})
	if err != nil {
		return nil, err
	}
	return kl, nil
}
