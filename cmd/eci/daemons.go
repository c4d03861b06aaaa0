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

func newAgentCommand() *cobra.Command {
	return plannedCmd(&cobra.Command{
		Use:   "agent",
		Short: "Run the host agent: make the container groups placed on this host real",
		Long: `eci agent runs on every host of the pool. It registers the host with the control
plane (capacity, zone, labels, runtime handlers), keeps its lease, and watches the
container groups placed on it.

Each group becomes one pod sandbox through the Kubernetes CRI API on containerd: its
own network namespace with the IP the server allocated (CNI), its own cgroup holding
the group's vCPU and memory size, its volumes (emptyDir, file payloads, NFS), then
its init containers in order and its containers, with probes, hooks, restart policy
and back-off. Status and events go back to the server as soon as they change.

It serves logs, exec, attach, port-forward and stats to the control plane. A
restarted agent adopts what runs and removes what no longer has a group.`,
		Args: cobra.NoArgs,
	}, "#5")
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
