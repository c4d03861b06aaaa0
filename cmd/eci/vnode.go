package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/eci-dev/eci/internal/cli"
	"github.com/eci-dev/eci/internal/client"
	"github.com/eci-dev/eci/internal/vnode"
)

// vnodeHelp is the command's help.
const vnodeHelp = `eci vnode registers a node in a Kubernetes cluster (virtual-kubelet) with the
labels type=virtual-kubelet, kubernetes.io/role=agent, k8s.aliyun.com/vnode=true and
the taint virtual-kubelet.io/provider=eci:NoSchedule.

Every pod bound to it is translated into a container group of the instance service
(size rounded to the spec table and written back as k8s.aliyun.com/eci-instance-spec,
the k8s.aliyun.com/ annotations honoured, unsupported features refused with the
alternative named, configMaps, secrets, downward API and service-account tokens
sent as file payloads) and its status is kept true in Kubernetes from the
service's watch.

It serves the kubelet API (logs, exec, attach, port-forward, /stats/summary,
/metrics/resource) to the apiserver (a client certificate of --client-ca-file is
required), and the eci-profile admission webhook (--profile-listen), configured
by the ConfigMap kube-system/eci-profile: it sends pods to the virtual node by
label (alibabacloud.com/eci=true on the pod or its namespace) or selector, adds
the selectors' annotations and labels, and lets normalNodePrefer pods overflow
from full real nodes. The webhook's MutatingWebhookConfiguration
(eci-profile.NODE-NAME, failurePolicy Ignore) is kept by the vnode and left in
place when it stops.

It keeps the cluster's table of virtual IPs on the instance service (named by
--cluster-id) equal to the cluster's Services and EndpointSlices, as kube-proxy
serves them, so that instances reach ClusterIPs (--services=false: it leaves the
table alone).

Kubernetes permissions it needs: nodes, node leases, pods and pods/status,
events, configMaps, secrets, services, namespaces, endpointslices (read),
serviceaccounts/token, mutatingwebhookconfigurations, and secrets in
--namespace (write).`

func newVnodeCommand() *cobra.Command {
	var (
		cfg               vnode.Config
		src               client.Source
		kubeconfig, taint string
		cpu, memory, pods string
		labels, tags      []string
		noTaint, services bool
		debugAddr         string
	)
	cmd := &cobra.Command{
		Use:   "vnode",
		Short: "Join a Kubernetes cluster as a virtual node whose pods run as instances",
		Long:  vnodeHelp,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			var err error
			if cfg.Kube, err = vnode.KubeClient(kubeconfig); err != nil {
				return err
			}
			if cfg.ECI, err = src.New(); err != nil {
				return err
			}
			if cfg.Capacity, err = vnode.ParseCapacity(cpu, memory, pods); err != nil {
				return err
			}
			if !noTaint {
				if cfg.Taint, err = vnode.ParseTaint(taint); err != nil {
					return err
				}
			}
			if cfg.Labels, err = cli.KeyValues("--label", labels); err != nil {
				return err
			}
			if cfg.Tags, err = cli.KeyValues("--tag", tags); err != nil {
				return err
			}
			cfg.NoServices = !services
			v, err := vnode.New(cfg)
			if err != nil {
				return err
			}
			if err := serveDebug(ctx, debugAddr); err != nil {
				return err
			}
			return v.Run(ctx)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&kubeconfig, "kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig of the cluster to join")
	fl.StringVar(&cfg.NodeName, "node-name", "eci-vnode", "the node's name")
	fl.StringVar(&cfg.ClusterID, "cluster-id", "", "tells this cluster's instances from others' on the same service (default: the node name)")
	fl.StringVar(&src.Server, "server", "https://127.0.0.1:8443", "the instance service")
	fl.StringVar(&src.Token, "token", "", "a tenant token of the instance service (default $ECI_TOKEN)")
	fl.StringVar(&src.TokenFile, "token-file", "", "read the token from this file")
	fl.StringVar(&src.CAFile, "ca-file", "", "CA of the instance service's certificate")
	fl.StringVar(&cfg.InternalIP, "internal-ip", "", "the node's IP, where the apiserver reaches its kubelet API")
	fl.StringVar(&cfg.ListenAddr, "listen", ":10250", "kubelet API address")
	fl.StringVar(&cfg.TLSCertFile, "tls-cert-file", "", "serving certificate of the kubelet API (default: self-signed)")
	fl.StringVar(&cfg.TLSKeyFile, "tls-key-file", "", "its key")
	fl.BoolVar(&cfg.RotateServerCertificates, "rotate-server-certificates", false, "ask the cluster's kubernetes.io/kubelet-serving signer for the serving certificate and renew it, as the kubelet's flag (the node approves its own request when its identity may; otherwise: kubectl certificate approve)")
	fl.StringVar(&cfg.CertDir, "cert-dir", "", "keep the certificate of --rotate-server-certificates here across restarts (default: in memory, asked for again at each start)")
	fl.Func("default-size", "size of pods that ask for no CPU or memory, as 0.5-1Gi (default: 2-4Gi, docs/spec.md section 4; eci-profile's defaultSize wins)", func(s string) (err error) {
		cfg.DefaultSize, err = vnode.ParseDefaultSize(s)
		return err
	})
	fl.StringVar(&cfg.ClientCAFile, "client-ca-file", "", "CA of the apiserver's kubelet client certificate (required)")
	fl.BoolVar(&cfg.ImageCaches, "image-caches", true, "keep the cluster's ImageCache and DataCache objects as the tenant's image and data caches (one node per cluster should; the chart's crds/ define them)")
	fl.BoolVar(&services, "services", true, "fill the cluster's table of virtual IPs from its Services and EndpointSlices, so that instances reach ClusterIPs")
	fl.StringSliceVar(&cfg.ClusterDNS, "cluster-dns", nil, "DNS servers of ClusterFirst pods")
	fl.StringVar(&cfg.ClusterDomain, "cluster-domain", "cluster.local", "the cluster's DNS domain")
	fl.StringVar(&debugAddr, "debug-address", "", "serve Go's profiles (/debug/pprof/) here, unauthenticated, so on a loopback address only, such as 127.0.0.1:6060 (empty: none)")
	fl.StringVar(&taint, "taint", "", "the node's taint, KEY=VALUE:EFFECT (default virtual-kubelet.io/provider=eci:NoSchedule)")
	fl.BoolVar(&noTaint, "no-taint", false, "no taint: every pod may land on the node")
	fl.StringArrayVar(&labels, "label", nil, "an extra node label KEY=VALUE (repeat)")
	fl.StringArrayVar(&tags, "tag", nil, "a tag KEY=VALUE of the node's own charge (it is billed as one 2 vCPU / 8 GiB instance while Ready; repeat, at most 20)")
	fl.StringVar(&cpu, "cpu", "1000", "the node's cpu capacity")
	fl.StringVar(&memory, "memory", "4Ti", "the node's memory capacity")
	fl.StringVar(&pods, "pods", "1000", "the node's pod capacity")
	fl.StringVar(&cfg.Profile.ListenAddr, "profile-listen", ":10251", "serve the eci-profile admission webhook here (empty: no webhook)")
	fl.StringVar(&cfg.Profile.URL, "profile-url", "", "where the apiserver calls the webhook (default https://INTERNAL-IP:PORT/eci-profile/mutate)")
	fl.StringVar(&cfg.Profile.Namespace, "namespace", "kube-system", "the vnode's namespace: keeps the webhook's certificate; its pods are never mutated")
	fl.StringSliceVar(&cfg.Profile.ExcludeNamespaces, "profile-exclude-namespaces", nil, "namespaces whose pods the webhook never sees (kube-system and --namespace always)")
	fl.StringVar(&cfg.Profile.CertFile, "profile-tls-cert-file", "", "the webhook's serving certificate (default: from a CA the vnode makes and keeps in a Secret)")
	fl.StringVar(&cfg.Profile.KeyFile, "profile-tls-key-file", "", "its key")
	fl.StringVar(&cfg.Profile.CAFile, "profile-ca-file", "", "the CA bundle the apiserver verifies it with")
	return cmd
}
