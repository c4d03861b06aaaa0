// Command eci is the single binary of the elastic container instance service:
// the control plane (server), the host agent (agent), the Kubernetes virtual node
// (vnode), all of them on one machine (up), and the command-line client.
//
// This file only wires subcommands; each role lives in its own internal package.
package main

import (
	"context"
	"errors"
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
		var ni notImplementedError
		if errors.As(err, &ni) {
			os.Exit(3)
		}
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
	root.AddCommand(newClientCommands()...)
	return root
}

// notImplementedError is returned by a subcommand whose role is planned (its
// --help says what it will do) but not built yet; the exit code is 3.
type notImplementedError struct{ what, issue string }

func (e notImplementedError) Error() string {
	return fmt.Sprintf("%s is not implemented yet (planned in issue %s)", e.what, e.issue)
}
