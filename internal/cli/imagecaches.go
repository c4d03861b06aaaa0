package cli

import (
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	apiv1 "github.com/eci-dev/eci/api/v1"
)

// newImageCachesCommand is `eci imagecaches`: list, create, get and
// delete the caller's image caches.
func newImageCachesCommand(f *Flags) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "imagecaches",
		Aliases: []string{"imc"},
		Short:   "List image caches (images pulled ahead to the hosts); 'imagecaches create', 'get' and 'delete'",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			list, err := c.ListImageCaches(cmd.Context())
			if err != nil {
				return err
			}
			return output(cmd.OutOrStdout(), f.Output, apiv1.List[apiv1.ImageCache]{Items: list}, func(tw *tabwriter.Writer, _ bool) {
				row(tw, "CACHEID", "NAME", "PHASE", "PROGRESS", "HOSTS", "SIZE", "IMAGES", "AGE")
				for _, ic := range list {
					row(tw, ic.Metadata.ID, ic.Metadata.Name, string(ic.Status.Phase), ic.Status.Progress,
						fmt.Sprintf("%d/%d", ic.Status.HostsReady, ic.Status.Hosts), sizeText(ic.Status.SizeBytes),
						strings.Join(ic.Spec.Images, ","), age(ic.Metadata.CreatedAt))
				}
			})
		},
	}
	cmd.Flags().StringVarP(&f.Output, "output", "o", "", "json or yaml")
	cmd.AddCommand(newIMCCreateCommand(f), newIMCGetCommand(f), newIMCDeleteCommand(f))
	return cmd
}

func sizeText(n int64) string {
	if n == 0 {
		return "-"
	}
	return mib(uint64(n)) + "Mi"
}

// newIMCCreateCommand is `eci imagecaches create`.
func newIMCCreateCommand(f *Flags) *cobra.Command {
	var images []string
	var tenant, server, user, passwordEnv string
	var size, retention, perZone int
	create := &cobra.Command{
		Use:   "create NAME --image IMAGE... [--hosts-per-zone N] [--size GIB] [--retention-days N] [--registry-server HOST[:PORT] --registry-user USER --registry-password-env VAR]",
		Short: "Make an image cache: the hosts pull its images, and groups made of them start without pulling",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			ic := &apiv1.ImageCache{Metadata: apiv1.ObjectMeta{Name: args[0], Tenant: tenant},
				Spec: apiv1.ImageCacheSpec{Images: images, ImageCacheSize: size, RetentionDays: retention, HostsPerZone: perZone}}
			if user != "" || server != "" {
				// A password never on the command line (ps shows it): from
				// the environment, for the one registry named.
				pw := os.Getenv(passwordEnv)
				if server == "" || user == "" || passwordEnv == "" || pw == "" {
					return fmt.Errorf("a registry credential needs --registry-server, --registry-user and --registry-password-env naming a set environment variable")
				}
				ic.Spec.ImageRegistryCredentials = []apiv1.RegistryCredential{{Server: server, Username: user, Password: pw}}
			}
			out, err := c.CreateImageCache(cmd.Context(), ic)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s created (%d images, %s)\n", out.Metadata.ID, len(out.Spec.Images), out.Status.Phase)
			return nil
		},
	}
	create.Flags().StringArrayVar(&images, "image", nil, "an image to keep (repeatable)")
	create.Flags().IntVar(&perZone, "hosts-per-zone", 0, "how many hosts of each zone keep it (0: every host)")
	create.Flags().IntVar(&size, "size", 0, "the most GiB its images may take on a host (0: 20)")
	create.Flags().IntVar(&retention, "retention-days", 0, "remove it this many days after it is made (0: kept until deleted)")
	create.Flags().StringVar(&server, "registry-server", "", "the registry (host[:port]) the credential is for (private images)")
	create.Flags().StringVar(&user, "registry-user", "", "the registry user")
	create.Flags().StringVar(&passwordEnv, "registry-password-env", "", "the environment variable that holds the registry password")
	create.Flags().StringVar(&tenant, "tenant", "", "the tenant whose cache it is (the admin names one)")
	return create
}

// newIMCGetCommand is `eci imagecaches get`.
func newIMCGetCommand(f *Flags) *cobra.Command {
	get := &cobra.Command{
		Use:   "get ID",
		Short: "An image cache with its status on each host",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			ic, err := c.GetImageCache(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return output(cmd.OutOrStdout(), f.Output, ic, func(tw *tabwriter.Writer, _ bool) {
				row(tw, "HOST", "READY", "IMAGES", "MESSAGE")
				for _, h := range ic.Status.HostStatuses {
					row(tw, h.Host, fmt.Sprint(h.Ready), fmt.Sprintf("%d/%d", h.Images, len(ic.Spec.Images)), h.Message)
				}
			})
		},
	}
	get.Flags().StringVarP(&f.Output, "output", "o", "", "json or yaml")
	return get
}

// newIMCDeleteCommand is `eci imagecaches delete`.
func newIMCDeleteCommand(f *Flags) *cobra.Command {
	return &cobra.Command{
		Use:   "delete ID",
		Short: "Remove an image cache (the hosts remove its images no other cache keeps and no container uses)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			if err := c.DeleteImageCache(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s deleted\n", args[0])
			return nil
		},
	}
}
