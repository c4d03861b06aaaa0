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
