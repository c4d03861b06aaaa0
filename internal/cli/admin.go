package cli

import (
	"fmt"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/client"
	"github.com/eci-dev/eci/internal/errdefs"
)

// newHostUpdateCommand is "hosts cordon|uncordon|drain NAME". drain
// cordons and marks the host Draining, then waits until its groups have
// ended: an instance never moves (its owner, a virtual node or a user,
// deletes it and makes another, placed elsewhere).
func newHostUpdateCommand(f *Flags, verb string) *cobra.Command {
	var wait time.Duration
	short := map[string]string{
		"cordon":   "Place no new groups on a host (admin)",
		"uncordon": "Place groups on a host again, ending a cordon or drain (admin)",
		"drain":    "Cordon a host and wait until its groups have ended; nothing is moved (admin)",
	}[verb]
	cmd := &cobra.Command{
		Use:   verb + " HOST",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			yes, no := true, false
			u := map[string]apiv1.HostUpdate{
				"cordon":   {Unschedulable: &yes},
				"uncordon": {Unschedulable: &no, Draining: &no},
				"drain":    {Unschedulable: &yes, Draining: &yes},
			}[verb]
			h, err := c.UpdateHost(cmd.Context(), args[0], u)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if verb != "drain" {
				fmt.Fprintf(out, "host %s %sed\n", h.Metadata.Name, verb)
				return nil
			}
			fmt.Fprintf(out, "host %s cordoned and draining\n", h.Metadata.Name)
			return waitDrained(cmd, c, h, wait)
		},
	}
	if verb == "drain" {
		cmd.Flags().DurationVar(&wait, "timeout", 0, "stop waiting after this long (0: wait until the host has no groups)")
	}
	return cmd
}

// newWarmPoolCommand is "hosts warm-pool HOST SIZE": the operator's size of
// a host's warm pool, replacing its agent's ("agent" gives it back).
func newWarmPoolCommand(f *Flags) *cobra.Command {
	return &cobra.Command{
		Use:   "warm-pool HOST SIZE|agent",
		Short: "Set how many ready sandboxes a host keeps on each vSwitch, e.g. before an expected burst; 'agent' gives the choice back to its agent's --warm-pool-size (admin)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := strconv.Atoi(args[1])
			if args[1] == "agent" {
				n, err = -1, nil
			}
			if err != nil || (n < 0 && args[1] != "agent") {
				return fmt.Errorf("SIZE %q: allowed: a number from 0 to %d, or agent", args[1], apiv1.MaxWarmPoolSize)
			}
			c, err := f.client()
			if err != nil {
				return err
			}
			h, err := c.UpdateHost(cmd.Context(), args[0], apiv1.HostUpdate{WarmPoolTarget: &n})
			if err != nil {
				return err
			}
			if h.Spec.WarmPoolTarget == nil {
				fmt.Fprintf(cmd.OutOrStdout(), "host %s keeps its agent's warm pool size\n", h.Metadata.Name)
				return nil
			}
			fmt.Fprintf(cmd.OutOrStdout(), "host %s keeps %d ready sandboxes on each vSwitch\n", h.Metadata.Name, *h.Spec.WarmPoolTarget)
			return nil
		},
	}
}

// waitDrained polls the host until it holds no group, saying how many are
// left when that changes.
func waitDrained(cmd *cobra.Command, c *client.Client, h *apiv1.Host, timeout time.Duration) error {
	ctx := cmd.Context()
	var deadline <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		deadline = t.C
	}
	last := -1
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	for {
		if n := h.Status.Groups; n != last {
			if n == 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "host %s drained: no groups left; 'eci hosts uncordon %s' places groups on it again\n", h.Metadata.Name, h.Metadata.Name)
				return nil
			}
			fmt.Fprintf(cmd.OutOrStdout(), "waiting for %d group(s) on %s to end (their owners delete them; nothing is moved)\n", n, h.Metadata.Name)
			last = n
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline:
			return fmt.Errorf("host %s still holds %d group(s) after %s: %w", h.Metadata.Name, last, timeout, errdefs.ErrUnavailable)
		case <-tick.C:
		}
		var err error
		if h, err = c.GetHost(ctx, h.Metadata.Name); err != nil {
			return err
		}
	}
}

func newTenantsCommand(f *Flags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "tenants",
		Short: "List tenants with their quotas; 'tenants set' sets one's quota (admin)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			ts, err := c.ListTenants(cmd.Context())
			if err != nil {
				return err
			}
			return output(cmd.OutOrStdout(), f.Output, apiv1.List[apiv1.Tenant]{Items: ts}, func(tw *tabwriter.Writer, _ bool) {
				row(tw, "NAME", "CPU", "MEMORY", "GPU", "GROUPS", "SPENDING-LIMIT", "AGE")
				for _, t := range ts {
					q := t.Spec.Quota
					row(tw, t.Metadata.Name, limitText(float64(q.MilliCPU)/1000, ""), limitText(float64(q.MemoryMiB)/1024, "Gi"),
						limitText(float64(q.GPU), ""), limitText(float64(q.Groups), ""), spendingText(t.Spec.SpendingLimit), age(t.Metadata.CreatedAt))
				}
			})
		},
	}
	cmd.Flags().StringVarP(&f.Output, "output", "o", "", "json or yaml")
	cmd.AddCommand(newTenantSetCommand(f))
	return cmd
}

func newTenantSetCommand(f *Flags) *cobra.Command {
	var cpu, mem float64
	var gpu, groups int
	var spend apiv1.SpendingLimit
	cmd := &cobra.Command{
		Use:   "set TENANT",
		Short: "Create a tenant or replace its quota (0: unlimited) and spending limit (admin)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cpu < 0 || mem < 0 || gpu < 0 || groups < 0 {
				return fmt.Errorf("--cpu, --memory, --gpu and --groups: allowed: 0 (unlimited) or more: %w", errdefs.ErrInvalidArgument)
			}
			c, err := f.client()
			if err != nil {
				return err
			}
			spec := apiv1.TenantSpec{Quota: apiv1.Quota{MilliCPU: int64(cpu*1000 + 0.5), MemoryMiB: int64(mem*1024 + 0.5), GPU: gpu, Groups: groups}}
			switch {
			case spend.Amount == "none":
			case spend.Amount != "":
				spec.SpendingLimit = &spend
			case cmd.Flags().Changed("spending-period"):
				return fmt.Errorf("--spending-period goes with --spending-limit: %w", errdefs.ErrInvalidArgument)
			default: // the limit stays as it is
				cur, err := c.GetTenant(cmd.Context(), args[0])
				if err != nil && !errdefs.IsNotFound(err) {
					return err
				}
				if err == nil {
					spec.SpendingLimit = cur.Spec.SpendingLimit
				}
			}
			t, err := c.PutTenant(cmd.Context(), &apiv1.Tenant{Metadata: apiv1.ObjectMeta{Name: args[0]}, Spec: spec})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "tenant %s: quota %s; spending limit %s\n", t.Metadata.Name, quotaText(t.Spec.Quota), spendingText(t.Spec.SpendingLimit))
			return nil
		},
	}
	fl := cmd.Flags()
	fl.Float64Var(&cpu, "cpu", 0, "vCPU its live groups may hold together")
	fl.Float64Var(&mem, "memory", 0, "GiB of memory")
	fl.IntVar(&gpu, "gpu", 0, "GPUs")
	fl.IntVar(&groups, "groups", 0, "live groups")
	fl.StringVar(&spend.Amount, "spending-limit", "", "what its groups may be billed for in a period, in the price book's currency (250.00); past it, new groups are refused (402); none: no limit; not given: the limit stays")
	fl.StringVar(&spend.Period, "spending-period", "month", "the limit's period: day or month (UTC)")
	return cmd
}

func spendingText(l *apiv1.SpendingLimit) string {
	if l == nil {
		return "none"
	}
	period := l.Period
	if period == "" {
		period = "month"
	}
	return l.Amount + " a " + period
}

func newQuotaCommand(f *Flags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "quota",
		Short: "Show what your groups hold, your quota and what the pool can still place (GET /v1/capacity)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			cp, err := c.Capacity(cmd.Context())
			if err != nil {
				return err
			}
			return output(cmd.OutOrStdout(), f.Output, cp, func(tw *tabwriter.Writer, _ bool) {
				row(tw, "RESOURCE", "USED", "QUOTA", "POOL FREE", "POOL", "LARGEST FREE ON ONE HOST")
				row(tw, "cpu", float64(cp.Used.MilliCPU)/1000, limitText(float64(cp.Quota.MilliCPU)/1000, ""), float64(cp.Free.MilliCPU)/1000, float64(cp.Pool.MilliCPU)/1000, float64(cp.LargestFree.MilliCPU)/1000)
				row(tw, "memory", fmt.Sprintf("%.1fGi", float64(cp.Used.MemoryMiB)/1024), limitText(float64(cp.Quota.MemoryMiB)/1024, "Gi"),
					fmt.Sprintf("%.1fGi", float64(cp.Free.MemoryMiB)/1024), fmt.Sprintf("%.1fGi", float64(cp.Pool.MemoryMiB)/1024), fmt.Sprintf("%.1fGi", float64(cp.LargestFree.MemoryMiB)/1024))
				row(tw, "gpu", cp.Used.GPU, limitText(float64(cp.Quota.GPU), ""), cp.Free.GPU, cp.Pool.GPU, cp.LargestFree.GPU)
				row(tw, "groups", cp.Used.Pods, limitText(float64(cp.Quota.Groups), ""), cp.Free.Pods, cp.Pool.Pods, cp.LargestFree.Pods)
			})
		},
	}
	cmd.Flags().StringVarP(&f.Output, "output", "o", "", "json or yaml")
	return cmd
}

// limitText prints a quota's figure; 0 is unlimited.
func limitText(v float64, unit string) string {
	if v == 0 {
		return "unlimited"
	}
	return fmt.Sprintf("%g%s", v, unit)
}

func quotaText(q apiv1.Quota) string {
	if q == (apiv1.Quota{}) {
		return "unlimited"
	}
	return fmt.Sprintf("cpu %s, memory %s, gpu %s, groups %s", limitText(float64(q.MilliCPU)/1000, ""), limitText(float64(q.MemoryMiB)/1024, "Gi"),
		limitText(float64(q.GPU), ""), limitText(float64(q.Groups), ""))
}
