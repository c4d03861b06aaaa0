package cli

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	apiv1 "github.com/eci-dev/eci/api/v1"
)

// newVPCsCommand is `eci vpcs`: list, create and delete VPCs.
func newVPCsCommand(f *Flags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "vpcs",
		Short: "List VPCs with their VNIs; 'vpcs create' and 'vpcs delete' (admin)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			vs, err := c.ListVPCs(cmd.Context())
			if err != nil {
				return err
			}
			return output(cmd.OutOrStdout(), f.Output, apiv1.List[apiv1.VPC]{Items: vs}, func(tw *tabwriter.Writer, _ bool) {
				row(tw, "ID", "TENANT", "CIDR", "VNI", "VSWITCHES", "AGE")
				for _, v := range vs {
					row(tw, v.Metadata.ID, v.Metadata.Tenant, v.Spec.CIDR, v.Status.VNI, v.Status.VSwitches, age(v.Metadata.CreatedAt))
				}
			})
		},
	}
	cmd.Flags().StringVarP(&f.Output, "output", "o", "", "json or yaml")
	var cidr, tenant string
	create := &cobra.Command{
		Use:   "create NAME [--tenant NAME] [--cidr CIDR]",
		Short: "Add a VPC, shared or one tenant's (admin)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			v, err := c.CreateVPC(cmd.Context(), &apiv1.VPC{Metadata: apiv1.ObjectMeta{Name: args[0], Tenant: tenant}, Spec: apiv1.VPCSpec{CIDR: cidr}})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s created (VNI %d)\n", v.Metadata.ID, v.Status.VNI)
			return nil
		},
	}
	create.Flags().StringVar(&cidr, "cidr", "", "IPv4 CIDR its vSwitches must be inside (optional)")
	create.Flags().StringVar(&tenant, "tenant", "", "the tenant whose vSwitches alone it holds (default: shared)")
	del := &cobra.Command{
		Use:   "delete NAME",
		Short: "Remove a VPC without vSwitches (admin)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			if err := c.DeleteVPC(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s deleted\n", args[0])
			return nil
		},
	}
	cmd.AddCommand(create, del)
	return cmd
}
