package testbed

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/eci-dev/eci/internal/pki"
)

// KubeBinaries are the programs hack/build-kube.sh builds.
var KubeBinaries = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kubectl", "kube-proxy"}

// Kube is the bed's Kubernetes control plane.
type Kube struct {
	// Server is the apiserver's URL; it listens on the bed's node IP.
	Server string
	// Kubeconfig is a kubeconfig file for the cluster admin (system:masters).
	Kubeconfig string
	// AdminToken is the bearer token of that admin.
	AdminToken string
	// CAFile signs the apiserver's certificate; the controller-manager puts it in
	// every namespace's kube-root-ca.crt.
	CAFile string
	// CA is the cluster CA, for tests that issue certificates (kubelet, webhooks).
	CA *pki.CA
	// BinDir holds the Kubernetes binaries (kubectl among them).
	BinDir string

	Config *rest.Config
	Client kubernetes.Interface
}

// KubeBinDir returns the folder that holds the Kubernetes binaries: $KUBE_BIN_DIR,
// or _output/kube/bin in the checkout. It fails, saying what to run, when any
// binary is missing.
func KubeBinDir() (string, error) {
	dir := os.Getenv("KUBE_BIN_DIR")
	if dir == "" {
		root, err := RepoRoot()
		if err != nil {
			return "", fmt.Errorf("finding the Kubernetes binaries: %w; set KUBE_BIN_DIR", err)
		}
		dir = filepath.Join(root, "_output", "kube", "bin")
	}
	for _, b := range KubeBinaries {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			return "", fmt.Errorf("%s is missing in %s: run hack/build-kube.sh (make kube) to build the Kubernetes binaries", b, dir)
		}
	}
	return dir, nil
}

func (b *Bed) startKube(ctx context.Context) (*Kube, error) {
	binDir, err := KubeBinDir()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(b.Dir, "kube")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	k := &Kube{BinDir: binDir, CAFile: filepath.Join(dir, "ca.crt")}
	ports, err := freePorts(5)
	if err != nil {
		return nil, err
	}
	etcdPort, peerPort, apiPort, kcmPort, schedPort := ports[0], ports[1], ports[2], ports[3], ports[4]
	k.Server = "https://" + net.JoinHostPort(b.Network.NodeIP.String(), strconv.Itoa(apiPort))
	if err := k.writePKI(dir, b.Network); err != nil {
		return nil, err
	}
	if err := k.writeCredentials(dir); err != nil {
		return nil, err
	}
	etcdURL, err := b.startKubeEtcd(ctx, binDir, dir, etcdPort, peerPort)
	if err != nil {
		return nil, err
	}
	if err := b.startAPIServer(ctx, k, dir, etcdURL, apiPort); err != nil {
		return nil, err
	}
	kcm, err := b.startControllers(ctx, k, dir, kcmPort, schedPort)
	if err != nil {
		return nil, err
	}
	k.Config = &rest.Config{
		Host: k.Server, BearerToken: k.AdminToken,
		TLSClientConfig: rest.TLSClientConfig{CAData: pki.CertPEM(k.CA.Cert)},
		QPS:             200, Burst: 400,
	}
	if k.Client, err = kubernetes.NewForConfig(k.Config); err != nil {
		return nil, err
	}
	// Pods can't be created in a namespace before its default service account
	// exists; wait for the controller-manager to make it in "default".
	err = kcm.waitReady(ctx, 60*time.Second, func(ctx context.Context) error {
		_, err := k.Client.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		return err
	})
	if err != nil {
		return nil, err
	}
	return k, nil
}

// writeCredentials writes the static tokens of the admin, the
// controller-manager and the scheduler, and a kubeconfig for each.
func (k *Kube) writeCredentials(dir string) error {
	tokens := map[string]string{}
	for _, u := range []string{"admin", "kcm", "scheduler"} {
		tokens[u] = randomToken()
	}
	k.AdminToken = tokens["admin"]
	csv := fmt.Sprintf("%s,admin,admin,\"system:masters\"\n%s,system:kube-controller-manager,kcm\n%s,system:kube-scheduler,scheduler\n",
		tokens["admin"], tokens["kcm"], tokens["scheduler"])
	if err := os.WriteFile(filepath.Join(dir, "tokens.csv"), []byte(csv), 0o600); err != nil {
		return err
	}
	k.Kubeconfig = filepath.Join(dir, "admin.kubeconfig")
	for name, token := range tokens {
		if err := writeKubeconfig(filepath.Join(dir, name+".kubeconfig"), k.Server, k.CAFile, name, token); err != nil {
			return err
		}
	}
	return nil
}

// startKubeEtcd starts the control plane's etcd and returns its client URL.
func (b *Bed) startKubeEtcd(ctx context.Context, binDir, dir string, port, peerPort int) (string, error) {
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", port)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", peerPort)
	etcd, err := b.startProcess("etcd", filepath.Join(binDir, "etcd"),
		"--name=bed", "--data-dir="+filepath.Join(dir, "etcd"),
		"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=bed="+peerURL, "--log-level=warn", "--quota-backend-bytes=1073741824")
	if err != nil {
		return "", err
	}
	plain := &http.Client{Timeout: 2 * time.Second}
	return etcdURL, etcd.waitReady(ctx, 30*time.Second, httpOK(plain, etcdURL+"/health", ""))
}

// startAPIServer starts kube-apiserver on the node IP and waits until it is
// ready.
func (b *Bed) startAPIServer(ctx context.Context, k *Kube, dir, etcdURL string, port int) error {
	nodeIP := b.Network.NodeIP.String()
	api, err := b.startProcess("kube-apiserver", filepath.Join(k.BinDir, "kube-apiserver"),
		"--etcd-servers="+etcdURL,
		"--bind-address="+nodeIP, "--advertise-address="+nodeIP, "--secure-port="+strconv.Itoa(port),
		"--tls-cert-file="+filepath.Join(dir, "apiserver.crt"), "--tls-private-key-file="+filepath.Join(dir, "apiserver.key"),
		"--client-ca-file="+k.CAFile,
		"--kubelet-client-certificate="+filepath.Join(dir, "apiserver-kubelet-client.crt"),
		"--kubelet-client-key="+filepath.Join(dir, "apiserver-kubelet-client.key"),
		"--token-auth-file="+filepath.Join(dir, "tokens.csv"),
		"--authorization-mode=Node,RBAC",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+filepath.Join(dir, "sa.pub"),
		"--service-account-signing-key-file="+filepath.Join(dir, "sa.key"),
		"--service-cluster-ip-range="+b.Network.ServiceCIDR.String(),
		"--kubelet-preferred-address-types=InternalIP,Hostname",
		// The aggregation layer (metrics.k8s.io from metrics-server), its
		// backends reached at their endpoints' addresses as no kube-proxy
		// runs beside the apiserver.
		"--requestheader-client-ca-file="+filepath.Join(dir, "front-proxy-ca.crt"),
		"--requestheader-allowed-names=front-proxy-client",
		"--requestheader-username-headers=X-Remote-User", "--requestheader-group-headers=X-Remote-Group",
		"--requestheader-extra-headers-prefix=X-Remote-Extra-",
		"--proxy-client-cert-file="+filepath.Join(dir, "front-proxy-client.crt"),
		"--proxy-client-key-file="+filepath.Join(dir, "front-proxy-client.key"),
		"--enable-aggregator-routing=true",
		"--allow-privileged=true", "--profiling=false", "--v=1")
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AddCert(k.CA.Cert)
	secure := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	return api.waitReady(ctx, 90*time.Second, httpOK(secure, k.Server+"/readyz", k.AdminToken))
}

// startControllers starts kube-controller-manager and kube-scheduler and
// waits until both are healthy.
func (b *Bed) startControllers(ctx context.Context, k *Kube, dir string, kcmPort, schedPort int) (kcm *process, err error) {
	kcm, err = b.startProcess("kube-controller-manager", filepath.Join(k.BinDir, "kube-controller-manager"),
		"--kubeconfig="+filepath.Join(dir, "kcm.kubeconfig"),
		"--leader-elect=false", "--bind-address=127.0.0.1", "--secure-port="+strconv.Itoa(kcmPort),
		"--service-account-private-key-file="+filepath.Join(dir, "sa.key"),
		"--root-ca-file="+k.CAFile, "--use-service-account-credentials=true",
		"--cluster-signing-cert-file="+k.CAFile, "--cluster-signing-key-file="+filepath.Join(dir, "ca.key"),
		"--service-cluster-ip-range="+b.Network.ServiceCIDR.String(), "--v=1")
	if err != nil {
		return nil, err
	}
	sched, err := b.startProcess("kube-scheduler", filepath.Join(k.BinDir, "kube-scheduler"),
		"--kubeconfig="+filepath.Join(dir, "scheduler.kubeconfig"),
		"--leader-elect=false", "--bind-address=127.0.0.1", "--secure-port="+strconv.Itoa(schedPort), "--v=1")
	if err != nil {
		return nil, err
	}
	insecure := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	if err := kcm.waitReady(ctx, 60*time.Second, httpOK(insecure, fmt.Sprintf("https://127.0.0.1:%d/healthz", kcmPort), "")); err != nil {
		return nil, err
	}
	return kcm, sched.waitReady(ctx, 60*time.Second, httpOK(insecure, fmt.Sprintf("https://127.0.0.1:%d/healthz", schedPort), ""))
}

// writePKI makes the cluster CA, the apiserver's serving certificate (for the
// node IP, loopback and the kubernetes Service's IP), the apiserver's client
// certificate towards kubelets, and the service-account signing key.
func (k *Kube) writePKI(dir string, n Network) error {
	ca, err := pki.NewCA("eci-testbed-ca", 10*365*24*time.Hour)
	if err != nil {
		return err
	}
	k.CA = ca
	if err := pki.WriteKeyPair(k.CAFile, filepath.Join(dir, "ca.key"), ca.Cert, ca.Key); err != nil {
		return err
	}
	serviceIP := n.ServiceCIDR.Addr().Next()
	serving, err := ca.Issue(pki.CertRequest{
		CommonName: "kube-apiserver", Server: true,
		DNSNames: []string{"kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local", "localhost"},
		IPs:      []net.IP{net.IP(n.NodeIP.AsSlice()), net.IPv4(127, 0, 0, 1), net.IP(serviceIP.AsSlice())},
	})
	if err != nil {
		return err
	}
	if err := pki.WriteKeyPair(filepath.Join(dir, "apiserver.crt"), filepath.Join(dir, "apiserver.key"), serving.Cert, serving.Key); err != nil {
		return err
	}
	kc, err := ca.Issue(pki.CertRequest{CommonName: "kube-apiserver-kubelet-client", Organization: []string{"system:masters"}, Client: true})
	if err != nil {
		return err
	}
	if err := pki.WriteKeyPair(filepath.Join(dir, "apiserver-kubelet-client.crt"), filepath.Join(dir, "apiserver-kubelet-client.key"), kc.Cert, kc.Key); err != nil {
		return err
	}
	if err := writeFrontProxy(dir); err != nil {
		return err
	}
	sa, err := pki.NewSigningKey()
	if err != nil {
		return err
	}
	pub, err := pki.PublicKeyPEM(sa)
	if err != nil {
		return err
	}
	key, err := pki.KeyPEM(sa)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "sa.pub"), pub, 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "sa.key"), key, 0o600)
}

// writeFrontProxy makes the aggregation layer's CA and the apiserver's
// client certificate towards extension apiservers (metrics-server), as
// kubeadm does: a CA of their own, so that no client certificate of the
// cluster's CA passes for the front proxy.
func writeFrontProxy(dir string) error {
	ca, err := pki.NewCA("eci-testbed-front-proxy-ca", 10*365*24*time.Hour)
	if err != nil {
		return err
	}
	if err := pki.WriteKeyPair(filepath.Join(dir, "front-proxy-ca.crt"), filepath.Join(dir, "front-proxy-ca.key"), ca.Cert, ca.Key); err != nil {
		return err
	}
	client, err := ca.Issue(pki.CertRequest{CommonName: "front-proxy-client", Client: true})
	if err != nil {
		return err
	}
	return pki.WriteKeyPair(filepath.Join(dir, "front-proxy-client.crt"), filepath.Join(dir, "front-proxy-client.key"), client.Cert, client.Key)
}

func writeKubeconfig(path, server, caFile, user, token string) error {
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: eci-testbed
  cluster:
    server: %s
    certificate-authority: %s
users:
- name: %s
  user:
    token: %s
contexts:
- name: eci-testbed
  context:
    cluster: eci-testbed
    user: %s
current-context: eci-testbed
`, server, caFile, user, token, user)
	return os.WriteFile(path, []byte(cfg), 0o600)
}

func randomToken() string {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

func freePorts(n int) ([]int, error) {
	seen := map[int]bool{}
	var ports []int
	for len(ports) < n {
		p, err := freePort()
		if err != nil {
			return nil, err
		}
		if !seen[p] {
			seen[p] = true
			ports = append(ports, p)
		}
	}
	return ports, nil
}

// httpOK is a readiness check: GET url answers 200.
func httpOK(c *http.Client, url, token string) func(context.Context) error {
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := c.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		return nil
	}
}
