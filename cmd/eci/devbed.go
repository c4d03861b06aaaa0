package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/eci-dev/eci/internal/log"
	"github.com/eci-dev/eci/internal/testbed"
)

func newDevBedCommand() *cobra.Command {
	var opts testbed.Options
	var noKube, noContainerd bool
	var infoFile string
	cmd := &cobra.Command{
		Use:   "bed",
		Short: "Run the test bed (Kubernetes control plane, containerd, registry) until interrupted",
		Long: `eci dev bed starts the same real parts the integration tests use: a local
Kubernetes control plane with no nodes, a project-owned containerd with its CRI
plugin and a CNI network, and an OCI registry holding the test images. It prints
where the kubeconfig, the CRI socket and the registry are, and stops everything,
leaving nothing behind, on SIGINT or SIGTERM. hack/local-cluster.sh wraps it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			opts.Kube, opts.Containerd, opts.Registry = !noKube, !noContainerd, true
			opts.Logger = log.G(ctx)
			bed, err := testbed.Start(ctx, opts)
			if err != nil {
				return err
			}
			defer func() { _ = bed.Stop() }()
			info := fmt.Sprintf("slot=%d\ndir=%s\nregistry=%s\nbusybox=%s\n", bed.Slot, bed.Dir, bed.Registry.Host, bed.Registry.Busybox)
			if bed.Kube != nil {
				info += fmt.Sprintf("kubeconfig=%s\nserver=%s\nkubectl=%s\n", bed.Kube.Kubeconfig, bed.Kube.Server, filepath.Join(bed.Kube.BinDir, "kubectl"))
			}
			if bed.Kubelet != nil {
				info += fmt.Sprintf("node=%s\n", bed.Kubelet.NodeName)
			}
			if bed.Kube != nil {
				info += fmt.Sprintf("ca_file=%s\nnode_ip=%s\n", bed.Kube.CAFile, bed.Network.NodeIP)
			}
			if bed.Containerd != nil {
				info += fmt.Sprintf("cri=%s\ncni_conf_dir=%s\ncni_bin_dir=%s\ncerts_dir=%s\ncgroup_parent=%s\npod_cidr=%s\nbridge=%s\n",
					bed.Containerd.Endpoint, bed.Containerd.CNIConfDir, bed.Containerd.CNIBinDir, bed.Containerd.CertsDir,
					bed.CgroupParent, bed.Network.VSwitchCIDR, bed.Network.AgentBridge)
			}
			fmt.Fprint(cmd.OutOrStdout(), info)
			if infoFile != "" {
				if err := os.WriteFile(infoFile, []byte(info), 0o644); err != nil {
					return err
				}
				defer func() { _ = os.Remove(infoFile) }()
			}
			<-ctx.Done()
			log.G(ctx).Info("stopping the test bed")
			return bed.Stop()
		},
	}
	cmd.Flags().BoolVar(&noKube, "no-kube", false, "do not start the Kubernetes control plane")
	cmd.Flags().BoolVar(&noContainerd, "no-containerd", false, "do not start containerd")
	cmd.Flags().BoolVar(&opts.Kubelet, "kubelet", false, "also run a real node: the upstream kubelet on the bed's containerd")
	cmd.Flags().Int32Var(&opts.KubeletMaxPods, "kubelet-max-pods", 110, "pods the real node takes (a small number makes overflow easy to see)")
	cmd.Flags().StringVar(&opts.RegistryAddr, "registry-addr", "", "address of the registry (default: a free loopback port)")
	cmd.Flags().StringVar(&opts.BaseDir, "base-dir", testbed.DefaultBaseDir, "directory holding the beds' slots")
	cmd.Flags().StringVar(&infoFile, "info-file", "", "also write the printed facts to this file once the bed is ready")
	return cmd
}
