package cli

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	apiv1 "github.com/eci-dev/eci/api/v1"
)

// newSecurityGroupsCommand is `eci securitygroups`: list, apply (create or
// replace) and delete a tenant's security groups.
func newSecurityGroupsCommand(f *Flags) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "securitygroups",
		Aliases: []string{"sg"},
		Short:   "List security groups with their rules; 'securitygroups apply' and 'delete'",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			gs, err := c.ListSecurityGroups(cmd.Context())
			if err != nil {
				return err
			}
			return output(cmd.OutOrStdout(), f.Output, apiv1.List[apiv1.SecurityGroup]{Items: gs}, func(tw *tabwriter.Writer, _ bool) {
				row(tw, "NAME", "TENANT", "INNER", "INGRESS", "EGRESS", "AGE")
				for _, g := range gs {
					egress := rulesText(g.Spec.Egress)
					if egress == "" {
						egress = "all"
					}
					row(tw, g.Metadata.Name, g.Metadata.Tenant, g.Spec.InnerAccessPolicy, rulesText(g.Spec.Ingress), egress, age(g.Metadata.CreatedAt))
				}
			})
		},
	}
	cmd.Flags().StringVarP(&f.Output, "output", "o", "", "json or yaml")
	cmd.AddCommand(newSGApplyCommand(f), newSGDeleteCommand(f))
	return cmd
}

// newSGApplyCommand is `eci securitygroups apply`.
func newSGApplyCommand(f *Flags) *cobra.Command {
	var ingress, egress []string
	var inner, tenant string
	apply := &cobra.Command{
		Use:   "apply NAME [--ingress RULE]... [--egress RULE]... [--inner-access Accept|Drop]",
		Short: "Create or replace a security group whole; RULE is PROTOCOL:PORTS:PEER, e.g. tcp:80/80:198.18.0.0/15, tcp:80/80:fd00::/8 (IPv6; ::/0 is any), udp:53/53:sg=dns, icmp::0.0.0.0/0, all::sg=web",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			g := &apiv1.SecurityGroup{Metadata: apiv1.ObjectMeta{Name: args[0], Tenant: tenant}, Spec: apiv1.SecurityGroupSpec{InnerAccessPolicy: inner}}
			for _, d := range []struct {
				flag string
				in   []string
				out  *[]apiv1.SecurityRule
			}{{"--ingress", ingress, &g.Spec.Ingress}, {"--egress", egress, &g.Spec.Egress}} {
				for _, s := range d.in {
					r, err := parseRule(s)
					if err != nil {
						return fmt.Errorf("%s %q: %w", d.flag, s, err)
					}
					*d.out = append(*d.out, r)
				}
			}
			out, err := c.PutSecurityGroup(cmd.Context(), g)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s applied (%d ingress, %d egress rules)\n", out.Metadata.Name, len(out.Spec.Ingress), len(out.Spec.Egress))
			return nil
		},
	}
	apply.Flags().StringArrayVar(&ingress, "ingress", nil, "an ingress rule, PROTOCOL:PORTS:SOURCE (repeatable)")
	apply.Flags().StringArrayVar(&egress, "egress", nil, "an egress rule, PROTOCOL:PORTS:DESTINATION (repeatable; none: every destination)")
	apply.Flags().StringVar(&inner, "inner-access", "", "Accept (default): members reach each other; Drop: only by the rules")
	apply.Flags().StringVar(&tenant, "tenant", "", "the tenant whose group it is (the admin names one)")
	return apply
}

// newSGDeleteCommand is `eci securitygroups delete`.
func newSGDeleteCommand(f *Flags) *cobra.Command {
	var tenant string
	del := &cobra.Command{
		Use:   "delete NAME",
		Short: "Remove a security group (instances naming it take no new connections)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			if err := c.DeleteSecurityGroup(cmd.Context(), tenant, args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s deleted\n", args[0])
			return nil
		},
	}
	del.Flags().StringVar(&tenant, "tenant", "", "the tenant whose group it is (the admin names one)")
	return del
}

// parseRule reads PROTOCOL:PORTS:PEER, PEER a CIDR or sg=NAME (the server
// checks the values).
func parseRule(s string) (apiv1.SecurityRule, error) {
	parts := strings.SplitN(s, ":", 3)
	if len(parts) != 3 {
		return apiv1.SecurityRule{}, fmt.Errorf("want PROTOCOL:PORTS:PEER (PORTS may be empty: icmp::0.0.0.0/0)")
	}
	r := apiv1.SecurityRule{Protocol: strings.ToUpper(parts[0]), PortRange: parts[1]}
	if name, ok := strings.CutPrefix(parts[2], "sg="); ok {
		r.GroupID = name
	} else {
		r.CIDR = parts[2]
	}
	return r, nil
}

// rulesText prints rules as parseRule reads them.
func rulesText(rules []apiv1.SecurityRule) string {
	var out []string
	for _, r := range rules {
		peer := r.CIDR
		if r.GroupID != "" {
			peer = "sg=" + r.GroupID
		}
		out = append(out, strings.ToLower(r.Protocol)+":"+r.PortRange+":"+peer)
	}
	return strings.Join(out, ",")
}
