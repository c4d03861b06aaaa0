package cli

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	apiv1 "github.com/eci-dev/eci/api/v1"
)

// newEIPsCommand is `eci eips`: list, allocate and release EIPs.
func newEIPsCommand(f *Flags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "eips",
		Short: "List EIPs with the groups they are bound to; 'eips allocate' and 'eips release'",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			es, err := c.ListEIPs(cmd.Context())
			if err != nil {
				return err
			}
			return output(cmd.OutOrStdout(), f.Output, apiv1.List[apiv1.EIP]{Items: es}, func(tw *tabwriter.Writer, _ bool) {
				row(tw, "ID", "NAME", "TENANT", "ADDRESS", "GROUP", "AGE")
				for _, e := range es {
					row(tw, e.Metadata.ID, e.Metadata.Name, e.Metadata.Tenant, e.Status.Address, e.Status.GroupID, age(e.Metadata.CreatedAt))
				}
			})
		},
	}
	cmd.Flags().StringVarP(&f.Output, "output", "o", "", "json or yaml")
	var tenant string
	alloc := &cobra.Command{
		Use:   "allocate [NAME] [--tenant NAME]",
		Short: "Get an EIP for your tenant (the admin: for --tenant's); a group names it with --eip",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			e := &apiv1.EIP{Metadata: apiv1.ObjectMeta{Tenant: tenant}}
			if len(args) == 1 {
				e.Metadata.Name = args[0]
			}
			out, err := c.AllocateEIP(cmd.Context(), e)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s allocated (%s)\n", out.Metadata.ID, out.Status.Address)
			return nil
		},
	}
	alloc.Flags().StringVar(&tenant, "tenant", "", "the tenant it is for (admin; default: the default tenant)")
	release := &cobra.Command{
		Use:   "release ID",
		Short: "Give back an EIP no group holds",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			if err := c.ReleaseEIP(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s released\n", args[0])
			return nil
		},
	}
	cmd.AddCommand(alloc, release)
	return cmd
}
