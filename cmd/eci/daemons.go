package main

import (
	"github.com/spf13/cobra"
)

func plannedCmd(cmd *cobra.Command, issue string) *cobra.Command {
	cmd.RunE = func(c *cobra.Command, _ []string) error {
		return notImplementedError{what: "eci " + c.Name(), issue: issue}
	}
	return cmd
}

func newVnodeCommand() *cobra.Command {
	return plannedCmd(&cobra.Command{
		Use:   "vnode",
		Short: "Join a Kubernetes cluster as a virtual node whose pods run as instances",
		Long: `eci vnode registers a node in a Kubernetes cluster (virtual-kubelet) with the
labels type=virtual-kubelet, kubernetes.io/role=agent, k8s.aliyun.com/vnode=true and
the taint virtual-kubelet.io/provider=eci:NoSchedule.

Every pod bound to it is translated into a container group of the instance service
(size rounded to the spec table, k8s.aliyun.com/ annotations honoured, unsupported
features refused with the alternative named, configMaps, secrets and service
account tokens sent as file payloads) and its status is kept true in Kubernetes.

It serves the kubelet API on :10250 (logs, exec, attach, port-forward,
/stats/summary) and the eci-profile mutating admission webhook, configured by the
ConfigMap kube-system/eci-profile, that sends pods to virtual nodes automatically.`,
		Args: cobra.NoArgs,
	}, "#6")
}

func newUpCommand() *cobra.Command {
	return plannedCmd(&cobra.Command{
		Use:   "up",
		Short: "Run server, agent (and a vnode with --kubeconfig) on this machine",
		Long: `eci up starts the whole service on one machine: an eci server on an embedded etcd,
an eci agent on this host's containerd, and, when --kubeconfig is given, an eci
vnode that joins that cluster. With 'make up' it also starts a local Kubernetes
control plane with no real nodes: a serverless cluster whose every pod runs as an
elastic container instance.`,
		Args: cobra.NoArgs,
	}, "#6")
}
