package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/eci-dev/eci/internal/profile"
	"github.com/eci-dev/eci/internal/vnode"
)

// ProfileCommand is eci profile: eci-profile checked offline.
func ProfileCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "profile", Short: "Work with eci-profile (the ConfigMap kube-system/eci-profile)"}
	cmd.AddCommand(newProfileCheckCommand())
	return cmd
}

func newProfileCheckCommand() *cobra.Command {
	var file, podFile string
	var nsLabels []string
	cmd := &cobra.Command{
		Use:   "check -f CONFIGMAP.yaml [--pod POD.yaml [--namespace-label KEY=VALUE]...]",
		Short: "Validate an eci-profile ConfigMap offline; with --pod, show what it would do to that pod",
		Long: `eci profile check reads an eci-profile ConfigMap (YAML or JSON) and says whether the
virtual node would accept it, naming the key, line and field of every problem (exit
code 1 then). With --pod it dry-runs the webhook on a pod manifest: whether the pod
goes to virtual nodes, why (the alibabacloud.com/eci label or a selector), under
which policy, which selectors' effects apply, and the JSON patch the webhook would
return. --namespace-label gives the labels of the pod's namespace.`,
		Example: `  eci profile check -f eci-profile.yaml
  eci profile check -f eci-profile.yaml --pod web.yaml --namespace-label team=web`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			if file == "" {
				return fmt.Errorf("-f: the ConfigMap file is required")
			}
			var cm corev1.ConfigMap
			if err := readManifest(file, &cm); err != nil {
				return err
			}
			if cm.Kind != "" && cm.Kind != "ConfigMap" {
				return fmt.Errorf("%s: kind %q: want a ConfigMap", file, cm.Kind)
			}
			p, err := profile.Parse(cm.Data)
			if err != nil {
				return fmt.Errorf("%s: the virtual node would keep its last good profile:\n%w", file, err)
			}
			_, _ = fmt.Fprintf(out, "%s: valid: %d selectors", file, len(p.Selectors))
			if len(p.Ignored) > 0 {
				_, _ = fmt.Fprintf(out, "; keys ignored: %s", strings.Join(p.Ignored, ", "))
			}
			_, _ = fmt.Fprintln(out)
			if (cm.Namespace != "" && cm.Namespace != profile.ConfigMapNamespace) || (cm.Name != "" && cm.Name != profile.ConfigMapName) {
				_, _ = fmt.Fprintf(out, "note: the virtual node reads %s/%s, not %s/%s\n", profile.ConfigMapNamespace, profile.ConfigMapName, cm.Namespace, cm.Name)
			}
			if podFile == "" {
				return nil
			}
			var pod corev1.Pod
			if err := readManifest(podFile, &pod); err != nil {
				return err
			}
			labels, err := KeyValues("--namespace-label", nsLabels)
			if err != nil {
				return err
			}
			return printDecision(out, p, &pod, labels, profile.VirtualNode(vnode.Taint()))
		},
	}
	cmd.Flags().StringVarP(&file, "filename", "f", "", "the ConfigMap (YAML or JSON; - for stdin)")
	cmd.Flags().StringVar(&podFile, "pod", "", "a pod manifest to dry-run the webhook on")
	cmd.Flags().StringArrayVar(&nsLabels, "namespace-label", nil, "a label of the pod's namespace, KEY=VALUE (repeat)")
	return cmd
}

func printDecision(out io.Writer, p *profile.Profile, pod *corev1.Pod, nsLabels map[string]string, node profile.Node) error {
	d := p.Decide(pod, nsLabels, node)
	if !d.Route {
		_, _ = fmt.Fprintln(out, "pod: not for virtual nodes (no alibabacloud.com/eci label, no selector matches, or already bound): left alone")
		return nil
	}
	policy := string(d.Policy)
	if policy == "" {
		policy = "none (the pod selects the virtual node itself)"
	}
	_, _ = fmt.Fprintf(out, "pod: for virtual nodes, by %s; policy %s\n", d.By, policy)
	if len(d.Matched) > 0 {
		_, _ = fmt.Fprintf(out, "selectors whose effect applies, in order: %s\n", strings.Join(d.Matched, ", "))
	}
	for _, set := range []struct {
		what string
		m    map[string]string
	}{{"annotation", d.Annotations}, {"label", d.Labels}} {
		keys := make([]string, 0, len(set.m))
		for k := range set.m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			_, _ = fmt.Fprintf(out, "  + %s %s=%s\n", set.what, k, set.m[k])
		}
	}
	if d.Tolerate {
		_, _ = fmt.Fprintf(out, "  + toleration %s (%s)\n", node.Taint.Key, node.Taint.Effect)
	}
	if d.SelectNode {
		_, _ = fmt.Fprintf(out, "  + nodeSelector %s=%s\n", node.SelectorKey, node.SelectorValue)
	}
	if d.Policy == profile.NormalNodePrefer {
		_, _ = fmt.Fprintf(out, "  the pod stays for real nodes; after %ds unschedulable it tolerates the virtual node\n", d.OverflowAfter)
	}
	patch, err := json.MarshalIndent(d.Patch(pod, node), "", "  ")
	if err != nil {
		return err
	}
	_, _ = fmt.Fprintf(out, "JSON patch:\n%s\n", patch)
	return nil
}

// readManifest decodes a YAML or JSON file (- is stdin) into v.
func readManifest(path string, v any) error {
	data, err := ReadInput(path)
	if err != nil {
		return err
	}
	if err := yaml.UnmarshalStrict(data, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
