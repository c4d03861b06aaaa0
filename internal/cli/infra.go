package cli

import (
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/auth"
)

func newHostsCommand(f *Flags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "hosts",
		Short: "List the hosts of the pool with their capacity and allocation (admin)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			hosts, err := c.ListHosts(cmd.Context())
			if err != nil {
				return err
			}
			return output(cmd.OutOrStdout(), f.Output, apiv1.List[apiv1.Host]{Items: hosts}, func(tw *tabwriter.Writer, wide bool) {
				row(tw, "NAME", "ZONE", "STATUS", "CPU", "MEMORY", "GROUPS", "WARM", "AGE")
				for _, h := range hosts {
					status := "Ready"
					switch {
					case !h.Status.Ready:
						status = "NotReady"
					case h.Spec.Draining:
						status = "Draining"
					case h.Spec.Unschedulable:
						status = "Ready,SchedulingDisabled"
					}
					a, u := h.Spec.Allocatable, h.Status.Allocated
					row(tw, h.Metadata.Name, h.Spec.Zone, status,
						fmt.Sprintf("%g/%g", float64(u.MilliCPU)/1000, float64(a.MilliCPU)/1000),
						fmt.Sprintf("%.1fGi/%.1fGi", float64(u.MemoryMiB)/1024, float64(a.MemoryMiB)/1024),
						fmt.Sprintf("%d/%d", u.Pods, a.Pods), warmColumn(h), age(h.Metadata.CreatedAt))
				}
			})
		},
	}
	cmd.Flags().StringVarP(&f.Output, "output", "o", "", "json, yaml or wide")
	for _, verb := range []string{"cordon", "uncordon", "drain"} {
		cmd.AddCommand(newHostUpdateCommand(f, verb))
	}
	cmd.AddCommand(newWarmPoolCommand(f))
	return cmd
}

// warmColumn is a host's warm pool: ready sandboxes/reserved addresses
// (size on each vSwitch), "-" without one.
func warmColumn(h apiv1.Host) string {
	w := h.Status.WarmPool
	if w == nil || (w.Size == 0 && w.Reserved == 0) {
		return "-"
	}
	return fmt.Sprintf("%d/%d (size %d)", len(w.Ready), w.Reserved, w.Size)
}

func newVSwitchesCommand(f *Flags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "vswitches",
		Short: "List vSwitches with their address counts; 'vswitches create' adds one (admin)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			vs, err := c.ListVSwitches(cmd.Context())
			if err != nil {
				return err
			}
			return output(cmd.OutOrStdout(), f.Output, apiv1.List[apiv1.VSwitch]{Items: vs}, func(tw *tabwriter.Writer, _ bool) {
				row(tw, "ID", "TENANT", "VPC", "ZONE", "CIDR", "GATEWAY", "IPV6-CIDR", "NAT", "USED", "FREE")
				for _, v := range vs {
					vpc := v.Spec.VPCID
					if vpc == "" {
						vpc = apiv1.DefaultVPC
					}
					nat := "-"
					if v.Spec.NATGateway {
						nat = "yes"
					}
					row(tw, v.Metadata.ID, v.Metadata.Tenant, vpc, v.Spec.Zone, v.Spec.CIDR, v.Spec.Gateway, v.Spec.IPv6CIDR, nat, v.Status.Allocated, v.Status.Total-v.Status.Allocated)
				}
			})
		},
	}
	cmd.Flags().StringVarP(&f.Output, "output", "o", "", "json or yaml")
	var zone, cidr, gateway, tenant, vpc, ipv6CIDR string
	var natGateway bool
	create := &cobra.Command{
		Use:   "create NAME --zone ZONE --cidr CIDR [--ipv6-cidr CIDR] [--tenant NAME] [--vpc ID] [--nat-gateway]",
		Short: "Add a vSwitch, shared or one tenant's (admin)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			v, err := c.CreateVSwitch(cmd.Context(), &apiv1.VSwitch{
				Metadata: apiv1.ObjectMeta{Name: args[0], Tenant: tenant}, Spec: apiv1.VSwitchSpec{Zone: zone, CIDR: cidr, Gateway: gateway, VPCID: vpc, NATGateway: natGateway, IPv6CIDR: ipv6CIDR},
			})
			if err != nil {
				return err
			}
			cidrs := v.Spec.CIDR
			if v.Spec.IPv6CIDR != "" {
				cidrs += " and " + v.Spec.IPv6CIDR
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s created (%s in %s, %d addresses)\n", v.Metadata.ID, cidrs, v.Spec.Zone, v.Status.Total)
			return nil
		},
	}
	create.Flags().StringVar(&zone, "zone", "", "zone of the vSwitch")
	create.Flags().StringVar(&cidr, "cidr", "", "IPv4 CIDR, /16 to /29")
	create.Flags().StringVar(&gateway, "gateway", "", "gateway (default: the first address)")
	create.Flags().StringVar(&ipv6CIDR, "ipv6-cidr", "", "IPv6 CIDR too (dual stack), /48 to /120 with as many host bits as --cidr: a group with IPv6 (eci run --ipv6) gets its address at its IPv4 address's offset")
	create.Flags().StringVar(&tenant, "tenant", "", "the tenant whose groups alone use it and see it (default: shared by every tenant)")
	create.Flags().StringVar(&vpc, "vpc", "", "the VPC it belongs to (default: "+apiv1.DefaultVPC+")")
	create.Flags().BoolVar(&natGateway, "nat-gateway", false, "its instances reach addresses outside the VPC from their host's address (SNAT)")
	cmd.AddCommand(create)
	return cmd
}

func newTokenCommand(f *Flags) *cobra.Command {
	var tenant, host string
	parent := &cobra.Command{Use: "token", Short: "Make, list and revoke API tokens (admin)"}
	cmd := &cobra.Command{
		Use:   "create (--tenant NAME | --host NAME)",
		Short: "Make a tenant token (creating the tenant if needed) or a host token (admin)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			spec := apiv1.TokenSpec{Kind: apiv1.TokenTenant, Tenant: tenant}
			if host != "" {
				spec = apiv1.TokenSpec{Kind: apiv1.TokenHost, Host: host}
			}
			if tenant != "" && host != "" {
				return fmt.Errorf("give --tenant or --host, not both")
			}
			if spec.Kind == apiv1.TokenTenant && tenant != "" {
				if _, err := c.PutTenant(cmd.Context(), &apiv1.Tenant{Metadata: apiv1.ObjectMeta{Name: tenant}}); err != nil {
					return err
				}
			}
			t, err := c.CreateToken(cmd.Context(), &apiv1.Token{Spec: spec})
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), t.Status.Token)
			return nil
		},
	}
	cmd.Flags().StringVar(&tenant, "tenant", "", "the token's tenant")
	cmd.Flags().StringVar(&host, "host", "", "the token's host (for its agent)")
	parent.AddCommand(cmd, newTokenListCommand(f), newTokenRevokeCommand(f))
	return parent
}

func newTokenListCommand(f *Flags) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the tokens: their ids (the SHA-256 of the secret), kind, tenant or host (admin)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			tokens, err := c.ListTokens(cmd.Context())
			if err != nil {
				return err
			}
			return output(cmd.OutOrStdout(), f.Output, apiv1.List[apiv1.Token]{Items: tokens}, func(tw *tabwriter.Writer, _ bool) {
				row(tw, "ID", "KIND", "TENANT", "HOST", "AGE")
				for _, t := range tokens {
					row(tw, t.Metadata.ID, t.Spec.Kind, t.Spec.Tenant, t.Spec.Host, age(t.Metadata.CreatedAt))
				}
			})
		},
	}
}

func newTokenRevokeCommand(f *Flags) *cobra.Command {
	var secretFile string
	cmd := &cobra.Command{
		Use:   "revoke (ID | --secret-file FILE)",
		Short: "Revoke a tenant or host token: every server refuses it from the next request on (admin)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var id string
			switch {
			case len(args) == 1 && secretFile == "":
				id = args[0]
			case len(args) == 0 && secretFile != "":
				data, err := os.ReadFile(secretFile)
				if err != nil {
					return fmt.Errorf("--secret-file: %w", err)
				}
				id = auth.Hash(strings.TrimSpace(string(data)))
			default:
				return fmt.Errorf("give the token's ID (eci token list) or --secret-file, not both")
			}
			c, err := f.client()
			if err != nil {
				return err
			}
			t, err := c.RevokeToken(cmd.Context(), id)
			if err != nil {
				return err
			}
			who := t.Spec.Tenant
			if t.Spec.Kind == apiv1.TokenHost {
				who = t.Spec.Host
			}
			fmt.Fprintf(cmd.OutOrStdout(), "token %s (%s %s) revoked\n", t.Metadata.ID, t.Spec.Kind, who)
			return nil
		},
	}
	cmd.Flags().StringVar(&secretFile, "secret-file", "", "a file holding the token's secret")
	return cmd
}

// Commands returns the client verbs, each with the connection flags.
func Commands() []*cobra.Command {
	f := &Flags{}
	cmds := []*cobra.Command{
		newRunCommand(f), newPsCommand(f), newDescribeCommand(f), newRmCommand(f), newEventsCommand(f),
		newLogsCommand(f), newExecCommand(f), newAttachCommand(f), newPortForwardCommand(f), newTopCommand(f),
		newRestartCommand(f), newUpdateCommand(f), newTenantsCommand(f), newQuotaCommand(f),
		newHostsCommand(f), newVSwitchesCommand(f), newVPCsCommand(f), newEIPsCommand(f), newRoutesCommand(f), newSecurityGroupsCommand(f), newImageCachesCommand(f), newDataCachesCommand(f), newTokenCommand(f), newBillCommand(f),
	}
	for _, c := range cmds {
		f.bind(c)
	}
	return cmds
}
