// Command eci is the single binary of the elastic container instance service:
// the control plane (server), the host agent (agent), the Kubernetes virtual node
// (vnode), all of them on one machine (up), and the command-line client.
//
// This file only wires subcommands; each role lives in its own internal package.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/eci-dev/eci/internal/cli"
	"github.com/eci-dev/eci/internal/log"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCommand().ExecuteContext(ctx)
	stop()
	if code, ok := cli.ExitStatus(err); ok {
		os.Exit(code) // eci exec: the command's own exit code
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "eci:", err)
		os.Exit(1)
	}
}

type globalFlags struct {
	logLevel, logFormat string
}

func newRootCommand() *cobra.Command {
	g := &globalFlags{}
	root := &cobra.Command{
		Use:   "eci",
		Short: "Elastic container instances for any Kubernetes cluster",
		Long: `eci runs Kubernetes pods as elastic container instances: each pod bound to an
eci virtual node becomes a container group with its own sandbox, its own IP and its
own vCPU/memory size, placed on a pool of hosts and billed per second while it runs.

Daemons:   server, agent, vnode, up
Client:    run, ps (get, -w), describe, logs, exec, attach, port-forward, top, restart, update, rm, events,
           quota, bill; admin: hosts (cordon, uncordon, drain), tenants, vswitches, vpcs, eips,
           routes, securitygroups, token
Other:     version, profile`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			l, err := log.New(cmd.ErrOrStderr(), g.logFormat, g.logLevel)
			if err != nil {
				return err
			}
			cmd.SetContext(log.WithLogger(cmd.Context(), l.With("component", cmd.Name())))
			return nil
		},
	}
	root.PersistentFlags().StringVar(&g.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	root.PersistentFlags().StringVar(&g.logFormat, "log-format", "text", "log format: text, json")
	root.AddCommand(
		newVersionCommand(),
		newServerCommand(), newAgentCommand(), newVnodeCommand(), newUpCommand(),
		cli.ProfileCommand(),
	)
	// The client verbs find the server with --server/--token/--ca-file,
	// $ECI_SERVER/$ECI_TOKEN/$ECI_CA_FILE, or a config file (--config,
	// $ECI_CONFIG, ~/.eci/config).
	root.AddCommand(cli.Commands()...)
	return root
}
