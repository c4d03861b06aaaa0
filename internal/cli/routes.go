package cli

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	apiv1 "github.com/eci-dev/eci/api/v1"
)

// newRoutesCommand is `eci routes`: the default VPC's route table.
func newRoutesCommand(f *Flags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "routes",
		Short: "List the default VPC's route entries; 'routes add' and 'routes delete' (admin)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			rs, err := c.ListRouteEntries(cmd.Context())
			if err != nil {
				return err
			}
			return output(cmd.OutOrStdout(), f.Output, apiv1.List[apiv1.RouteEntry]{Items: rs}, func(tw *tabwriter.Writer, _ bool) {
				row(tw, "NAME", "DESTINATION", "NEXT HOP", "AGE")
				for _, r := range rs {
					row(tw, r.Metadata.ID, r.Spec.Destination, r.Spec.NextHop, age(r.Metadata.CreatedAt))
				}
			})
		},
	}
	cmd.Flags().StringVarP(&f.Output, "output", "o", "", "json or yaml")
	var dst, hop string
	add := &cobra.Command{
		Use:   "add NAME --destination CIDR --next-hop IP",
		Short: "Route a network (a real node's pod CIDR) through an address of the hosts' network (admin)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			r, err := c.AddRouteEntry(cmd.Context(), &apiv1.RouteEntry{Metadata: apiv1.ObjectMeta{Name: args[0]}, Spec: apiv1.RouteEntrySpec{Destination: dst, NextHop: hop}})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s added (%s via %s)\n", r.Metadata.ID, r.Spec.Destination, r.Spec.NextHop)
			return nil
		},
	}
	add.Flags().StringVar(&dst, "destination", "", "IPv4 CIDR, such as a node's pod CIDR")
	add.Flags().StringVar(&hop, "next-hop", "", "the address on the hosts' network it is reached through (the node's)")
	del := &cobra.Command{
		Use:   "delete NAME",
		Short: "Remove a route entry (admin)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			if err := c.DeleteRouteEntry(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s deleted\n", args[0])
			return nil
		},
	}
	cmd.AddCommand(add, del)
	return cmd
}
