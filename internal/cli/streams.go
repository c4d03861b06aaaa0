package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"
	"k8s.io/client-go/tools/remotecommand"
	utilexec "k8s.io/client-go/util/exec"

	apiv1 "github.com/eci-dev/eci/api/v1"
)

func newLogsCommand(f *Flags) *cobra.Command {
	var (
		o                 apiv1.LogOptions
		tail, limit       int64
		since             time.Duration
		sinceTime         string
		follow, prev, tms bool
	)
	cmd := &cobra.Command{
		Use:   "logs GROUP [-c CONTAINER]",
		Short: "Print a container's log (DescribeContainerLog)",
		Example: `  eci logs eci-0123 -f
  eci logs eci-0123 -c sidecar --tail 20 --timestamps
  eci logs eci-0123 --previous`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Follow, o.Previous, o.Timestamps = follow, prev, tms
			if cmd.Flags().Changed("tail") {
				o.TailLines = &tail
			}
			if cmd.Flags().Changed("limit-bytes") {
				o.LimitBytes = &limit
			}
			if since > 0 {
				s := int64(since.Round(time.Second) / time.Second)
				o.SinceSeconds = &s
			}
			if sinceTime != "" {
				t, err := time.Parse(time.RFC3339, sinceTime)
				if err != nil {
					return fmt.Errorf("--since-time %q: want an RFC 3339 time such as 2026-01-02T15:04:05Z", sinceTime)
				}
				o.SinceTime = &t
			}
			c, err := f.client()
			if err != nil {
				return err
			}
			rc, err := c.Logs(cmd.Context(), args[0], o)
			if err != nil {
				return err
			}
			defer rc.Close()
			_, err = io.Copy(cmd.OutOrStdout(), rc)
			if cmd.Context().Err() != nil {
				return nil // interrupted while following
			}
			return err
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&o.Container, "container", "c", "", "container (required when the group has several)")
	fl.BoolVarP(&follow, "follow", "f", false, "stream new lines until the container stops")
	fl.BoolVarP(&prev, "previous", "p", false, "the log of the attempt before the current one")
	fl.BoolVar(&tms, "timestamps", false, "prefix each line with its RFC 3339 time")
	fl.Int64Var(&tail, "tail", 0, "only the last N lines")
	fl.Int64Var(&limit, "limit-bytes", 0, "stop after N bytes")
	fl.DurationVar(&since, "since", 0, "only lines newer than this, such as 5m")
	fl.StringVar(&sinceTime, "since-time", "", "only lines after this RFC 3339 time")
	return cmd
}

func newExecCommand(f *Flags) *cobra.Command {
	var o apiv1.ExecOptions
	cmd := &cobra.Command{
		Use:   "exec GROUP [-c CONTAINER] [-i] [-t] -- COMMAND [ARGS...]",
		Short: "Run a command in a container (ExecContainerCommand); its exit code is eci's",
		Example: `  eci exec eci-0123 -- cat /etc/hosts
  eci exec -it eci-0123 -- sh`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Command = args[1:]
			return session(cmd, f, args[0], o, true)
		},
	}
	sessionFlags(cmd, &o)
	return cmd
}

func newAttachCommand(f *Flags) *cobra.Command {
	var o apiv1.ExecOptions
	cmd := &cobra.Command{
		Use:   "attach GROUP [-c CONTAINER] [-i] [-t]",
		Short: "Attach to a container's main process",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return session(cmd, f, args[0], o, false)
		},
	}
	sessionFlags(cmd, &o)
	return cmd
}

func sessionFlags(cmd *cobra.Command, o *apiv1.ExecOptions) {
	fl := cmd.Flags()
	fl.StringVarP(&o.Container, "container", "c", "", "container (required when the group has several)")
	fl.BoolVarP(&o.Stdin, "stdin", "i", false, "pass stdin to the process")
	fl.BoolVarP(&o.TTY, "tty", "t", false, "allocate a terminal (stdin must be a terminal)")
}

// session runs exec (or attach) with this terminal's streams. With -t the
// local terminal is raw for the session and its size follows the window.
func session(cmd *cobra.Command, f *Flags, id string, o apiv1.ExecOptions, exec bool) error {
	c, err := f.client()
	if err != nil {
		return err
	}
	s := remotecommand.StreamOptions{Stdout: cmd.OutOrStdout(), Tty: o.TTY}
	if !o.TTY {
		s.Stderr = cmd.ErrOrStderr()
	}
	if o.Stdin {
		s.Stdin = cmd.InOrStdin()
	}
	if o.TTY {
		fd := int(os.Stdin.Fd())
		if !term.IsTerminal(fd) {
			return fmt.Errorf("-t: stdin is not a terminal")
		}
		state, err := term.MakeRaw(fd)
		if err != nil {
			return fmt.Errorf("-t: %w", err)
		}
		defer func() { _ = term.Restore(fd, state) }()
		sizes := &windowSizes{fd: fd, ch: make(chan os.Signal, 1)}
		signal.Notify(sizes.ch, syscall.SIGWINCH)
		defer signal.Stop(sizes.ch)
		sizes.ch <- syscall.SIGWINCH // the first size
		s.TerminalSizeQueue = sizes
	}
	if exec {
		return c.Exec(cmd.Context(), id, o, s)
	}
	return c.Attach(cmd.Context(), id, o, s)
}

// windowSizes reports the terminal's size at start and on each SIGWINCH.
type windowSizes struct {
	fd int
	ch chan os.Signal
}

func (w *windowSizes) Next() *remotecommand.TerminalSize {
	if _, ok := <-w.ch; !ok {
		return nil
	}
	width, height, err := term.GetSize(w.fd)
	if err != nil {
		return nil
	}
	return &remotecommand.TerminalSize{Width: uint16(width), Height: uint16(height)}
}

func newPortForwardCommand(f *Flags) *cobra.Command {
	var addresses []string
	cmd := &cobra.Command{
		Use:   "port-forward GROUP [LOCAL:]REMOTE...",
		Short: "Forward local ports to a group's ports until interrupted",
		Example: `  eci port-forward eci-0123 8080
  eci port-forward eci-0123 9000:80 :443`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt)
			defer stop()
			fw, err := c.PortForward(ctx, args[0], addresses, args[1:], cmd.OutOrStdout(), cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			return fw.Wait()
		},
	}
	cmd.Flags().StringSliceVar(&addresses, "address", []string{"127.0.0.1"}, "local addresses to listen on")
	return cmd
}

func newTopCommand(f *Flags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "top GROUP",
		Short: "Show a group's CPU, memory, network and ephemeral storage, per container",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
			defer cancel()
			st, err := c.GroupStats(ctx, args[0])
			if err != nil {
				return err
			}
			return output(cmd.OutOrStdout(), f.Output, st, func(tw *tabwriter.Writer, _ bool) {
				row(tw, "CONTAINER", "CPU(cores)", "MEMORY(MiB)", "WRITABLE(MiB)")
				row(tw, "(group)", milli(st.CPU.UsageNanoCores), mib(st.Memory.WorkingSetBytes), mib(st.EphemeralStorage.UsedBytes))
				for _, c := range st.Containers {
					row(tw, c.Name, milli(c.CPU.UsageNanoCores), mib(c.Memory.WorkingSetBytes), mib(c.WritableLayer.UsedBytes))
				}
				row(tw, "")
				row(tw, "NETWORK", st.Network.Interface, fmt.Sprintf("rx %d B", st.Network.RxBytes), fmt.Sprintf("tx %d B", st.Network.TxBytes))
				row(tw, "EPHEMERAL", fmt.Sprintf("%s of %s MiB", mib(st.EphemeralStorage.UsedBytes), mib(st.EphemeralStorage.CapacityBytes)))
			})
		},
	}
	cmd.Flags().StringVarP(&f.Output, "output", "o", "", "json or yaml instead of the table")
	return cmd
}

func milli(nanocores uint64) string { return fmt.Sprintf("%dm", nanocores/1_000_000) }
func mib(b uint64) string           { return fmt.Sprintf("%.1f", float64(b)/(1<<20)) }

// ExitStatus is the exit code of the command eci exec ran, when err is its
// ending (the binary exits with it).
func ExitStatus(err error) (int, bool) {
	var exit utilexec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitStatus(), true
	}
	return 0, false
}
