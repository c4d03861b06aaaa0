package main

import (
	"net/netip"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/eci-dev/eci/internal/control"
	"github.com/eci-dev/eci/internal/up"
)

func newUpCommand() *cobra.Command {
	var cfg up.Config
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run server, agent (and a vnode with --kubeconfig) on this machine",
		Long: `eci up starts the whole service on one machine: an eci server on an embedded etcd,
an eci agent on this host's containerd, and, when --kubeconfig is given, an eci
vnode that joins that cluster. With 'make up' it also starts a local Kubernetes
control plane with no real nodes: a serverless cluster whose every pod runs as an
elastic container instance.

The admin's client config is written to <data-dir>/server/admin.conf
(eci --config <data-dir>/server/admin.conf ps).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return up.Run(cmd.Context(), cfg)
		},
	}
	self, _ := os.Executable()
	fl := cmd.Flags()
	fl.StringVar(&cfg.DataDir, "data-dir", "/var/lib/eci", "the server's etcd, the agent's state and the tokens")
	fl.StringVar(&cfg.Listen, "listen", "127.0.0.1:8443", "the API's address")
	fl.Func("tunnel-ip", "this machine's address on the network between the pool's hosts: its agent's tunnels start there (other hosts' agents join with eci agent --tunnel-ip; the API must listen where they reach it)", func(s string) (err error) {
		cfg.TunnelIP, err = netip.ParseAddr(s)
		return err
	})
	fl.Func("eip-range", "addresses of the hosts' network that EIPs are given from (eci server --eip-range; none: no EIPs)", func(s string) (err error) {
		cfg.EIPRange, _ = netip.ParsePrefix(s)
		if err := control.CheckEIPRange(cfg.EIPRange, ""); err != nil {
			return err
		}
		cfg.EIPRange = cfg.EIPRange.Masked()
		return nil
	})
	fl.StringVar(&cfg.CRIEndpoint, "cri-endpoint", "unix:///run/containerd/containerd.sock", "containerd's CRI socket")
	fl.StringVar(&cfg.CNIConfDir, "cni-conf-dir", "/etc/cni/net.d", "containerd's CNI config dir")
	fl.StringVar(&cfg.CNIBinDir, "cni-bin-dir", "/opt/cni/bin", "a CNI plugin dir of containerd's, where eci-cni is installed")
	fl.StringVar(&cfg.Plugin, "cni-plugin", filepath.Join(filepath.Dir(self), "eci-cni"), "the eci-cni plugin to install")
	fl.StringVar(&cfg.RegistryConfigDir, "registry-config-dir", "/etc/containerd/certs.d", "containerd's registry hosts dir")
	fl.StringArrayVar(&cfg.LocalRegistries, "allowed-local-registry", nil, "HOST:PORT of a registry on this machine's loopback address that pods may pull from (others are refused)")
	fl.StringVar(&cfg.ResolvConf, "resolv-conf", "/etc/resolv.conf", "the resolv.conf of groups with no DNS of their own (dnsPolicy Default, or ClusterFirst with no cluster DNS); empty: no nameserver")
	fl.StringVar(&cfg.CgroupParent, "cgroup-parent", "eci", "cgroup under which each group gets its own")
	fl.StringVar(&cfg.PriceBookFile, "price-book", "", "the price book bills are rated with (YAML, docs/billing.md); default: the spec's list prices")
	fl.StringVar(&cfg.LogDir, "log-dir", "/var/log/eci/groups", "CRI log files")
	fl.StringVar(&cfg.PodCIDR, "pod-cidr", "198.19.200.0/24", "the vSwitch the groups get their IPs from")
	fl.StringVar(&cfg.PodIPv6CIDR, "pod-ipv6-cidr", "", "an IPv6 CIDR that makes that vSwitch dual stack (e.g. fd00:ec1::/64): groups with IPv6 (eci-enable-ipv6, eci run --ipv6) get their IPv6 addresses from it; empty: IPv4 only")
	fl.StringVar(&cfg.DefaultSize, "default-size", "", "size of pods that ask for no CPU or memory, as 0.5-1Gi (default: the spec's 2-4Gi, halved until 32 such pods fit on this machine)")
	fl.Float64Var(&cfg.Overcommit, "overcommit", 4, "offer this many times the machine's CPU and memory to groups, so that default-size pods (2 vCPU, 4 GiB) fit on a small machine; each group's limits still hold")
	fl.IntVar(&cfg.WarmPoolSize, "warm-pool-size", 0, "ready sandboxes the agent keeps, so that a group placed on one only starts its containers; each holds an address of the vSwitch (docs/fast-start.md)")
	fl.StringVar(&cfg.NetworkName, "network-name", "eci0", "name of the groups' network (its CNI network, the agent's nftables tables)")
	fl.StringVar(&cfg.Kubeconfig, "kubeconfig", "", "join this cluster with a virtual node")
	fl.StringVar(&cfg.NodeName, "node-name", "eci-vnode", "the virtual node's name")
	fl.StringVar(&cfg.NodeIP, "node-ip", "", "where the apiserver reaches the virtual node (port 10250)")
	fl.StringSliceVar(&cfg.ClusterDNS, "cluster-dns", nil, "DNS servers of ClusterFirst pods (the cluster DNS Service's ClusterIP)")
	fl.StringVar(&cfg.ClusterDomain, "cluster-domain", "cluster.local", "the cluster's DNS domain")
	fl.StringVar(&cfg.ClientCAFile, "client-ca-file", "", "the cluster's CA (of the apiserver's kubelet client certificate)")
	return cmd
}
