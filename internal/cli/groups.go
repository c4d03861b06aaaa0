package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/client"
	"github.com/eci-dev/eci/internal/errdefs"
)

func newRunCommand(f *Flags) *cobra.Command {
	var (
		file, image, restart, clientToken, privateIP, failStrategy, eipID string
		withEIP, ipv6                                                     bool
		cpu, memory                                                       float64
		specs, env, labels, tags, vswitches, command                      []string
		ports                                                             []int32
	)
	cmd := &cobra.Command{
		Use:   "run NAME --image IMAGE [flags] [-- ARGS...]  |  run -f GROUP.yaml",
		Short: "Create a container group (CreateContainerGroup)",
		Example: `  eci run web --image 127.0.0.1:5000/busybox:1.35 --cpu 1 --memory 2 -- httpd -f -p 80
  eci run job --image busybox --spec 2-4Gi --spec 4-8Gi --restart-policy Never -- sh -c 'echo done'
  eci run -f group.yaml`,
		RunE: func(cmd *cobra.Command, args []string) error {
			var g apiv1.ContainerGroup
			if file != "" {
				if err := readGroupFile(file, &g); err != nil {
					return err
				}
			} else {
				if len(args) == 0 {
					return fmt.Errorf("a NAME is required (or -f FILE)")
				}
				if image == "" {
					return fmt.Errorf("--image is required (or -f FILE)")
				}
				c := apiv1.Container{Name: "main", Image: image, Command: command, Args: args[1:]}
				for _, kv := range env {
					k, v, ok := strings.Cut(kv, "=")
					if !ok {
						return fmt.Errorf("--env %q: want KEY=VALUE", kv)
					}
					c.Env = append(c.Env, apiv1.EnvVar{Name: k, Value: v})
				}
				for _, p := range ports {
					c.Ports = append(c.Ports, apiv1.Port{ContainerPort: p})
				}
				g.Metadata.Name = args[0]
				g.Spec = apiv1.ContainerGroupSpec{
					CPU: cpu, Memory: memory, Specs: specs, Containers: []apiv1.Container{c},
					RestartPolicy: apiv1.RestartPolicy(restart), VSwitchIDs: vswitches, ClientToken: clientToken,
					PrivateIPAddress: privateIP, FailStrategy: apiv1.FailStrategy(failStrategy),
					EIPID: eipID, WithEIP: withEIP, EnableIPv6: ipv6,
				}
				var err error
				if g.Metadata.Labels, err = KeyValues("--label", labels); err != nil {
					return err
				}
				if g.Spec.Tags, err = KeyValues("--tag", tags); err != nil {
					return err
				}
			}
			c, err := f.client()
			if err != nil {
				return err
			}
			out, created, err := c.CreateGroup(cmd.Context(), &g)
			if err != nil {
				return err
			}
			if f.Output != "" {
				return output(cmd.OutOrStdout(), f.Output, out, func(*tabwriter.Writer, bool) {})
			}
			verb := "created"
			if !created {
				verb = "exists (same client token)"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s\n", out.Metadata.ID, verb)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&file, "filename", "f", "", "a container group in YAML or JSON (- for stdin)")
	fl.StringVar(&image, "image", "", "image of the main container")
	fl.Float64Var(&cpu, "cpu", 0, "vCPU of the group (with --memory)")
	fl.Float64Var(&memory, "memory", 0, "memory of the group in GiB (with --cpu)")
	fl.StringArrayVar(&specs, "spec", nil, "a size to try, in order, e.g. 2-4Gi (repeatable, up to 5)")
	fl.StringArrayVar(&env, "env", nil, "KEY=VALUE (repeatable)")
	fl.Int32SliceVar(&ports, "port", nil, "container port (repeatable)")
	fl.StringArrayVar(&command, "command", nil, "entrypoint, one word per flag (default: the image's)")
	fl.StringArrayVar(&labels, "label", nil, "k=v label (repeatable)")
	fl.StringArrayVar(&tags, "tag", nil, "k=v cost allocation tag (repeatable)")
	fl.StringArrayVar(&vswitches, "vswitch", nil, "allowed vSwitch (repeatable)")
	fl.StringVar(&restart, "restart-policy", "", "Always (default), OnFailure, Never")
	fl.StringVar(&clientToken, "client-token", "", "makes the create idempotent")
	fl.StringVar(&privateIP, "private-ip", "", "a fixed, idle IPv4 of an allowed vSwitch")
	fl.StringVar(&eipID, "eip", "", "an EIP of yours (eci eips) to reach the group at")
	fl.BoolVar(&withEIP, "with-eip", false, "give the group an EIP of its own, released with it")
	fl.BoolVar(&ipv6, "ipv6", false, "give the group an IPv6 address too (dual stack): only a vSwitch with an IPv6 CIDR is used")
	fl.StringVar(&failStrategy, "fail-strategy", "", "fail-back (default), fail-over, fail-fast")
	fl.StringVarP(&f.Output, "output", "o", "", "json or yaml to print the created group")
	return cmd
}

// ReadInput reads a file named by a flag, or standard input for "-".
func ReadInput(path string) ([]byte, error) {
	if path == "-" {
		return io.ReadAll(os.Stdin)
	}
	return os.ReadFile(path)
}

func readGroupFile(path string, g *apiv1.ContainerGroup) error {
	data, err := ReadInput(path)
	if err != nil {
		return err
	}
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := apiv1.Decode(bytes.NewReader(js), g); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// KeyValues parses the KEY=VALUE arguments of a flag, naming it in errors.
func KeyValues(flag string, kvs []string) (map[string]string, error) {
	if len(kvs) == 0 {
		return nil, nil
	}
	out := map[string]string{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%s %q: want KEY=VALUE", flag, kv)
		}
		out[k] = v
	}
	return out, nil
}

func newPsCommand(f *Flags) *cobra.Command {
	var o client.ListOptions
	var state string
	var watch bool
	cmd := &cobra.Command{
		Use:     "ps",
		Aliases: []string{"get"},
		Short:   "List container groups with their state, IP, host and size (DescribeContainerGroups); -w watches",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			o.State = apiv1.State(state)
			if watch {
				if f.Output != "" && f.Output != "wide" {
					return fmt.Errorf("--watch prints rows: -o %q; allowed with --watch: wide: %w", f.Output, errdefs.ErrInvalidArgument)
				}
				return watchGroups(cmd, c, o, f.Output == "wide")
			}
			items, err := listAll(cmd.Context(), c, o)
			if err != nil {
				return err
			}
			return output(cmd.OutOrStdout(), f.Output, apiv1.List[apiv1.ContainerGroup]{Items: items}, func(tw *tabwriter.Writer, wide bool) {
				groupHeader(tw, wide)
				for i := range items {
					groupRow(tw, &items[i], wide)
				}
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&state, "state", "", "only groups in this state (Scheduling, Pending, Running, ...)")
	fl.StringVar(&o.Host, "host", "", "only groups on this host")
	fl.StringVar(&o.Tag, "tag", "", "only groups with these tags, k=v,k2=v2")
	fl.StringVarP(&o.LabelSelector, "selector", "l", "", "label selector: k=v, k!=v, k, !k")
	fl.StringVarP(&f.Output, "output", "o", "", "json, yaml or wide")
	fl.BoolVarP(&watch, "watch", "w", false, "after the list, print a row for each change until interrupted")
	return cmd
}

func groupHeader(tw io.Writer, wide bool) {
	if wide {
		row(tw, "ID", "NAME", "TENANT", "STATE", "REASON", "SPEC", "IP", "IPV6", "HOST", "ZONE", "VSWITCH", "AGE")
	} else {
		row(tw, "ID", "NAME", "STATE", "SPEC", "IP", "HOST", "AGE")
	}
}

func groupRow(tw io.Writer, g *apiv1.ContainerGroup, wide bool) {
	st := g.Status
	if wide {
		row(tw, g.Metadata.ID, g.Metadata.Name, g.Metadata.Tenant, st.State, st.Reason, st.InstanceSpec, st.IP, st.IPv6Address, st.Host, st.Zone, st.VSwitchID, age(g.Metadata.CreatedAt))
	} else {
		row(tw, g.Metadata.ID, g.Metadata.Name, st.State, st.InstanceSpec, st.IP, st.Host, age(g.Metadata.CreatedAt))
	}
}

func listAll(ctx context.Context, c *client.Client, o client.ListOptions) ([]apiv1.ContainerGroup, error) {
	var items []apiv1.ContainerGroup
	o.Limit = 500
	for {
		page, err := c.ListGroups(ctx, o)
		if err != nil {
			return nil, err
		}
		items = append(items, page.Items...)
		if page.Continue == "" {
			return items, nil
		}
		o.Continue = page.Continue
	}
}

func newDescribeCommand(f *Flags) *cobra.Command {
	return &cobra.Command{
		Use:   "describe GROUP",
		Short: "Show one container group: spec, status, containers, events",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			g, err := c.GetGroup(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			evs, err := c.GroupEvents(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			data, err := yaml.Marshal(g)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprint(w, string(data))
			fmt.Fprintln(w, "events:")
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			row(tw, "  AGE", "TYPE", "REASON", "FROM", "MESSAGE")
			for _, ev := range evs {
				row(tw, "  "+age(ev.LastTime), ev.Type, ev.Reason, ev.Source, ev.Message)
			}
			return tw.Flush()
		},
	}
}

func newRmCommand(f *Flags) *cobra.Command {
	var force bool
	var grace int64 = -1
	cmd := &cobra.Command{
		Use:   "rm GROUP...",
		Short: "Delete container groups: graceful by default, --force to remove at once",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			o := client.DeleteOptions{Force: force}
			if grace >= 0 {
				o.GracePeriodSeconds = &grace
			}
			var failed []string
			for _, id := range args {
				g, err := c.DeleteGroup(cmd.Context(), id, o)
				if err != nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "%s: %v\n", id, err)
					failed = append(failed, id)
					continue
				}
				what := "deleted"
				if g.Status.State == apiv1.StateTerminating && !force {
					what = "terminating"
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s %s\n", id, what)
			}
			if len(failed) > 0 {
				return fmt.Errorf("could not delete %s", strings.Join(failed, ", "))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "remove at once, without waiting for the containers to stop")
	cmd.Flags().Int64Var(&grace, "grace-period", -1, "seconds the containers get to stop (default: the group's terminationGracePeriodSeconds, or 30)")
	return cmd
}

func newEventsCommand(f *Flags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "events [GROUP]",
		Short: "List events of a container group, or every event you may see",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			id := ""
			if len(args) == 1 {
				id = args[0]
			}
			evs, err := c.ListEvents(cmd.Context(), id)
			if err != nil {
				return err
			}
			sort.SliceStable(evs, func(i, j int) bool { return evs[i].LastTime.Before(evs[j].LastTime) })
			return output(cmd.OutOrStdout(), f.Output, apiv1.List[apiv1.Event]{Items: evs}, func(tw *tabwriter.Writer, _ bool) {
				row(tw, "AGE", "OBJECT", "TYPE", "REASON", "FROM", "MESSAGE")
				for _, ev := range evs {
					row(tw, age(ev.LastTime), ev.Object.ID, ev.Type, ev.Reason, ev.Source, ev.Message)
				}
			})
		},
	}
	cmd.Flags().StringVarP(&f.Output, "output", "o", "", "json or yaml")
	return cmd
}
