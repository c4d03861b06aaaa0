// Command eci-devbed runs the test bed (internal/testbed) outside tests:
// hack/local-cluster.sh and so `make up` start it. It is a command of its
// own, not a subcommand of eci, so that the product binary links neither the
// test bed nor the testing package (hack/build.sh builds it into
// _output/bin/eci-devbed).
//
//	go run ./hack/devbed [--kubelet] [--info-file FILE]
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/eci-dev/eci/internal/log"
	"github.com/eci-dev/eci/internal/testbed"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newCommand().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "eci-devbed:", err)
		os.Exit(1)
	}
}

func newCommand() *cobra.Command {
	var opts testbed.Options
	var noKube, noContainerd bool
	var infoFile, logLevel, logFormat string
	cmd := &cobra.Command{
		Use:   "eci-devbed",
		Short: "Run the test bed (Kubernetes control plane, containerd, registry) until interrupted",
		Long: `eci-devbed starts the same real parts the integration tests use: a local
Kubernetes control plane with no nodes, a project-owned containerd with its CRI
plugin and a CNI network, and an OCI registry holding the test images. It prints
where the kubeconfig, the CRI socket and the registry are, and stops everything,
leaving nothing behind, on SIGINT or SIGTERM. hack/local-cluster.sh wraps it.`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := log.New(cmd.ErrOrStderr(), logFormat, logLevel)
			if err != nil {
				return err
			}
			ctx := log.WithLogger(cmd.Context(), l.With("component", "devbed"))
			opts.Kube, opts.Containerd, opts.Registry = !noKube, !noContainerd, true
			opts.Addons = opts.Kube
			opts.Logger = log.G(ctx)
			return run(ctx, cmd.OutOrStdout(), opts, infoFile)
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&noKube, "no-kube", false, "do not start the Kubernetes control plane")
	fl.BoolVar(&noContainerd, "no-containerd", false, "do not start containerd")
	fl.BoolVar(&opts.Kubelet, "kubelet", false, "also run a real node: the upstream kubelet on the bed's containerd")
	fl.IntVar(&opts.Hosts, "hosts", 0, "also make this many pool hosts: network namespaces on an underlay, each with its own containerd (the registry then listens on the underlay)")
	fl.Int32Var(&opts.KubeletMaxPods, "kubelet-max-pods", 110, "pods the real node takes (a small number makes overflow easy to see)")
	fl.StringVar(&opts.RegistryAddr, "registry-addr", "", "address of the registry (default: a free loopback port)")
	fl.StringVar(&opts.BaseDir, "base-dir", testbed.DefaultBaseDir, "directory holding the beds' slots")
	fl.StringVar(&infoFile, "info-file", "", "also write the printed facts to this file once the bed is ready")
	fl.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fl.StringVar(&logFormat, "log-format", "text", "log format: text, json")
	return cmd
}

// run starts the bed, prints (and writes) where its parts are, and stops it
// when ctx ends.
func run(ctx context.Context, out io.Writer, opts testbed.Options, infoFile string) error {
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
		info += fmt.Sprintf("ca_file=%s\nnode_ip=%s\nservice_cidr=%s\ncoredns=%s\nmetrics_server=%s\n", bed.Kube.CAFile, bed.Network.NodeIP, bed.Network.ServiceCIDR, bed.Registry.CoreDNS, bed.Registry.MetricsServer)
	}
	if bed.Containerd != nil {
		info += fmt.Sprintf("cri=%s\ncni_conf_dir=%s\ncni_bin_dir=%s\ncerts_dir=%s\ncgroup_parent=%s\npod_cidr=%s\nnetwork=%s\n",
			bed.Containerd.Endpoint, bed.Containerd.CNIConfDir, bed.Containerd.CNIBinDir, bed.Containerd.CertsDir,
			bed.CgroupParent, bed.Network.VSwitchCIDR, bed.Network.AgentNetwork)
	}
	if len(bed.Hosts) > 0 {
		info += fmt.Sprintf("hosts=%d\nunderlay_gateway=%s\neip_range=%s\n", len(bed.Hosts), bed.Network.UnderlayGateway, bed.Network.EIPRange)
		for _, h := range bed.Hosts {
			info += fmt.Sprintf("%[1]s_netns=%[2]s\n%[1]s_tunnel_ip=%[3]s\n%[1]s_dir=%[4]s\n%[1]s_cri=%[5]s\n%[1]s_cni_conf_dir=%[6]s\n%[1]s_cni_bin_dir=%[7]s\n%[1]s_certs_dir=%[8]s\n",
				h.Name, h.NetNS, h.TunnelIP, h.Dir, h.Containerd.Endpoint, h.Containerd.CNIConfDir, h.Containerd.CNIBinDir, h.Containerd.CertsDir)
		}
	}
	fmt.Fprint(out, info)
	if infoFile != "" {
		if err := os.WriteFile(infoFile, []byte(info), 0o644); err != nil {
			return fmt.Errorf("--info-file: %w", err)
		}
		defer func() { _ = os.Remove(infoFile) }()
	}
	<-ctx.Done()
	log.G(ctx).Info("stopping the test bed")
	return bed.Stop()
}
