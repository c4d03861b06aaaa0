package cli

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	apiv1 "github.com/eci-dev/eci/api/v1"
)

// newDataCachesCommand is `eci datacaches`: list, create, get and delete
// the caller's data caches.
func newDataCachesCommand(f *Flags) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "datacaches",
		Aliases: []string{"edc"},
		Short:   "List data caches (data sets fetched once per host); 'datacaches create', 'get' and 'delete'",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			list, err := c.ListDataCaches(cmd.Context())
			if err != nil {
				return err
			}
			return output(cmd.OutOrStdout(), f.Output, apiv1.List[apiv1.DataCache]{Items: list}, func(tw *tabwriter.Writer, _ bool) {
				row(tw, "DATACACHEID", "NAME", "BUCKET", "PATH", "PHASE", "HOSTS", "SIZE", "AGE")
				for _, dc := range list {
					row(tw, dc.Metadata.ID, dc.Metadata.Name, dc.Spec.Bucket, dc.Spec.Path, string(dc.Status.Phase),
						fmt.Sprintf("%d/%d", dc.Status.HostsReady, dc.Status.Hosts), sizeText(dc.Status.SizeBytes), age(dc.Metadata.CreatedAt))
				}
			})
		},
	}
	cmd.Flags().StringVarP(&f.Output, "output", "o", "", "json or yaml")
	cmd.AddCommand(newEDCCreateCommand(f), newEDCGetCommand(f), newEDCDeleteCommand(f))
	return cmd
}

// newEDCCreateCommand is `eci datacaches create`.
func newEDCCreateCommand(f *Flags) *cobra.Command {
	var tenant, bucket, path, url, format, sum, name string
	var size, retention, perZone int
	create := &cobra.Command{
		Use:   "create NAME --path /PATH --url URL [--bucket B] [--format file|tar|tar.gz] [--sha256 HEX] [--hosts-per-zone N] [--size GIB] [--retention-days N]",
		Short: "Make a data cache: the hosts fetch it once each, and pods mount it read-only (hostPath of its path, with the annotation k8s.aliyun.com/eci-data-cache-bucket)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			opts := map[string]string{"url": url}
			for k, v := range map[string]string{"format": format, "sha256": sum, "name": name} {
				if v != "" {
					opts[k] = v
				}
			}
			dc := &apiv1.DataCache{Metadata: apiv1.ObjectMeta{Name: args[0], Tenant: tenant},
				Spec: apiv1.DataCacheSpec{Bucket: bucket, Path: path, DataSource: apiv1.DataCacheSource{Type: apiv1.DataSourceURL, Options: opts},
					Size: size, RetentionDays: retention, HostsPerZone: perZone}}
			out, err := c.CreateDataCache(cmd.Context(), dc)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s created (%s:%s, %s)\n", out.Metadata.ID, out.Spec.Bucket, out.Spec.Path, out.Status.Phase)
			return nil
		},
	}
	fl := create.Flags()
	fl.StringVar(&bucket, "bucket", "", "the bucket (default: default)")
	fl.StringVar(&path, "path", "", "the cache's path in its bucket, which pods give as their hostPath volume's path")
	fl.StringVar(&url, "url", "", "the http or https URL of the data")
	fl.StringVar(&format, "format", "", "file, tar or tar.gz (default: from the URL's suffix)")
	fl.StringVar(&sum, "sha256", "", "the download's SHA-256 (hex), checked on every host")
	fl.StringVar(&name, "name", "", "the file's name, for a one-file source (default: the URL's last path element)")
	fl.IntVar(&perZone, "hosts-per-zone", 0, "how many hosts of each zone fetch it ahead (0: every host)")
	fl.IntVar(&size, "size", 0, "the most GiB its data may take on a host (0: 20)")
	fl.IntVar(&retention, "retention-days", 0, "remove it this many days after it is made (0: kept until deleted)")
	fl.StringVar(&tenant, "tenant", "", "the tenant whose cache it is (the admin names one)")
	return create
}

// newEDCGetCommand is `eci datacaches get`.
func newEDCGetCommand(f *Flags) *cobra.Command {
	get := &cobra.Command{
		Use:   "get ID",
		Short: "A data cache with its status on each host",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			dc, err := c.GetDataCache(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return output(cmd.OutOrStdout(), f.Output, dc, func(tw *tabwriter.Writer, _ bool) {
				row(tw, "HOST", "READY", "MESSAGE")
				for _, h := range dc.Status.HostStatuses {
					row(tw, h.Host, fmt.Sprint(h.Ready), h.Message)
				}
			})
		},
	}
	get.Flags().StringVarP(&f.Output, "output", "o", "", "json or yaml")
	return get
}

// newEDCDeleteCommand is `eci datacaches delete`.
func newEDCDeleteCommand(f *Flags) *cobra.Command {
	return &cobra.Command{
		Use:   "delete ID",
		Short: "Remove a data cache (the hosts remove their copies once no group mounts them)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			if err := c.DeleteDataCache(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s deleted\n", args[0])
			return nil
		},
	}
}
