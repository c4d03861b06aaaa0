package cli

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/client"
	"github.com/eci-dev/eci/internal/errdefs"
)

func newRestartCommand(f *Flags) *cobra.Command {
	return &cobra.Command{
		Use:   "restart GROUP",
		Short: "Restart every container of a group in place (RestartContainerGroup)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			g, err := c.RestartGroup(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s\n", g.Metadata.ID, g.Status.State)
			return nil
		},
	}
}

func newUpdateCommand(f *Flags) *cobra.Command {
	var labels, tags, images []string
	var version string
	cmd := &cobra.Command{
		Use:   "update GROUP",
		Short: "Change a group's labels, tags or containers' images (UpdateContainerGroup)",
		Long: `Change a group's labels, tags or containers' images. A running container
whose image changes is stopped and started again with the new one, as a kubelet
does when a pod's image changes.`,
		Example: `  eci update eci-1234 --image web=registry.local/web:2 --tag team=shop`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			u := apiv1.GroupUpdate{ResourceVersion: version}
			var err error
			if u.Labels, err = KeyValues("--label", labels); err != nil {
				return err
			}
			if u.Tags, err = KeyValues("--tag", tags); err != nil {
				return err
			}
			if u.Images, err = KeyValues("--image", images); err != nil {
				return err
			}
			if u.Labels == nil && u.Tags == nil && u.Images == nil {
				return fmt.Errorf("nothing to change: give --label, --tag or --image: %w", errdefs.ErrInvalidArgument)
			}
			c, err := f.client()
			if err != nil {
				return err
			}
			g, err := c.UpdateGroup(cmd.Context(), args[0], u)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s updated (version %s)\n", g.Metadata.ID, g.Metadata.ResourceVersion)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringArrayVar(&labels, "label", nil, "KEY=VALUE: the group's labels (all of them: they replace the current ones)")
	fl.StringArrayVar(&tags, "tag", nil, "KEY=VALUE: the group's tags (all of them)")
	fl.StringArrayVar(&images, "image", nil, "CONTAINER=IMAGE: a container's new image")
	fl.StringVar(&version, "resource-version", "", "change only if the group is still at this version")
	return cmd
}

// watchGroups prints a row per change of the groups o selects, after the
// current ones, until the command's context ends (eci ps -w).
func watchGroups(cmd *cobra.Command, c *client.Client, o client.ListOptions, wide bool) error {
	events, err := c.WatchGroups(cmd.Context(), o, "")
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 8, 2, ' ', 0)
	groupHeader(tw, wide)
	_ = tw.Flush()
	for ev := range events {
		if ev.Err != nil {
			return ev.Err
		}
		if ev.Type == "BOOKMARK" {
			continue
		}
		g := ev.Object
		if ev.Type == "DELETED" {
			g.Status.State = "Deleted"
		}
		groupRow(tw, g, wide)
		_ = tw.Flush()
	}
	return cmd.Context().Err()
}
