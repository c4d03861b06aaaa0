package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"

	"github.com/eci-dev/eci/internal/client"
	"github.com/eci-dev/eci/internal/datapath"
	"github.com/eci-dev/eci/internal/poll"
	"github.com/eci-dev/eci/internal/vnode"
)

// testAnnotations: the k8s.aliyun.com annotations of a pod reach its
// instance, a malformed one fails the pod with an Event quoting it, and a
// DaemonSet's pod never runs on the virtual node.
func testAnnotations(t *testing.T, c *cluster, ns string) {
	ctx := context.Background()
	busybox := c.bed.Registry.Busybox

	t.Run("annotations reach the instance: size, private IP, hosts, tags, extra storage, bandwidth, EIP", func(t *testing.T) {
		vs, err := c.eci.ListVSwitches(ctx)
		if err != nil || len(vs) == 0 {
			t.Fatalf("vSwitches %v (%v)", vs, err)
		}
		prefix := netip.MustParsePrefix(vs[0].Spec.CIDR)
		ip := prefix.Addr()
		for range 200 { // an address high in the range, away from the others
			ip = ip.Next()
		}
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "annotated", Annotations: map[string]string{
			vnode.AnnUseSpecs:         "1-2Gi",
			vnode.AnnPrivateIP:        ip.String(),
			vnode.AnnCustomHosts:      `[{"host":"db.internal","ip":"198.18.0.9"}]`,
			vnode.AnnCustomTags:       "team:web,env:test",
			vnode.AnnExtraEphemeral:   "20Gi",
			vnode.AnnIngressBandwidth: "8M",
			vnode.AnnEgressBandwidth:  "4M",
			vnode.AnnWithEIP:          "true",
			// Not supported: a Warning Event says so and what happens instead.
			"k8s.aliyun.com/eci-compute-category": "economy",
		}}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: busybox,
			Command: []string{"sh", "-c", "cat /etc/hosts; exec sleep 3600"}}}}}
		c.createPod(t, ns, pod)
		p := c.waitPod(t, ns, "annotated", "Running", 60*time.Second, running)
		podEvent(t, c, ns, p, "AnnotationNotSupported", "k8s.aliyun.com/eci-compute-category is not supported and has no effect: one compute category")
		if p.Status.PodIP != ip.String() {
			t.Errorf("pod IP %s, asked %s", p.Status.PodIP, ip)
		}
		poll.Eventually(t, 10*time.Second, "the instance's id and size on the pod", func() error {
			cur, err := c.kube.CoreV1().Pods(ns).Get(ctx, "annotated", metav1.GetOptions{})
			if err != nil {
				return err
			}
			if cur.Annotations[vnode.AnnInstanceSpec] != "1.0-2.0Gi" || cur.Annotations[vnode.AnnInstanceID] == "" || cur.Annotations[vnode.AnnAllocatedEIP] == "" {
				return fmt.Errorf("annotations %v", cur.Annotations)
			}
			p = cur
			return nil
		})
		g, err := c.eci.GetGroup(ctx, p.Annotations[vnode.AnnInstanceID])
		if err != nil {
			t.Fatal(err)
		}
		if g.Spec.Tags["team"] != "web" || g.Spec.Tags["env"] != "test" || g.Spec.ExtraEphemeralStorage != 20 {
			t.Errorf("group tags %v, extra storage %d GiB", g.Spec.Tags, g.Spec.ExtraEphemeralStorage)
		}
		if g.Status.EIPAddress != p.Annotations[vnode.AnnAllocatedEIP] || !strings.HasSuffix(g.Status.EIPAddress, ".241") {
			t.Errorf("group EIP %q, the pod's %q; want the range's first", g.Status.EIPAddress, p.Annotations[vnode.AnnAllocatedEIP])
		}
		if g.Spec.IngressBandwidth != 8e6 || g.Spec.EgressBandwidth != 4e6 {
			t.Errorf("group bandwidth %d in, %d out", g.Spec.IngressBandwidth, g.Spec.EgressBandwidth)
		}
		checkShapers(t, ip.String(), "8Mbit", "4Mbit")
		poll.Eventually(t, 10*time.Second, "the custom host in /etc/hosts", func() error {
			raw, err := c.kube.CoreV1().Pods(ns).GetLogs("annotated", &corev1.PodLogOptions{}).Do(ctx).Raw()
			if err != nil || !strings.Contains(string(raw), "198.18.0.9") || !strings.Contains(string(raw), "db.internal") {
				return fmt.Errorf("/etc/hosts %q (%v)", raw, err)
			}
			return nil
		})
	})

	t.Run("a StatefulSet's pod made again keeps its fixed IP", func(t *testing.T) {
		labels := map[string]string{"app": "fixed"}
		replicas := int32(1)
		sts := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "fixed"}, Spec: appsv1.StatefulSetSpec{
			Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: labels}, ServiceName: "fixed",
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: map[string]string{vnode.AnnFixedIP: "true", vnode.AnnFixedIPRetain: "1"}},
				Spec:       onVNode(corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: busybox, Command: []string{"sleep", "3600"}}}}),
			},
		}}
		if _, err := c.kube.AppsV1().StatefulSets(ns).Create(ctx, sts, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = c.kube.AppsV1().StatefulSets(ns).Delete(ctx, "fixed", metav1.DeleteOptions{}) }()
		first := c.waitPod(t, ns, "fixed-0", "Running", 90*time.Second, running)
		if first.Status.PodIP == "" {
			t.Fatal("no pod IP")
		}
		if err := c.kube.CoreV1().Pods(ns).Delete(ctx, "fixed-0", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		again := c.waitPod(t, ns, "fixed-0", "made again and Running", 120*time.Second, func(p *corev1.Pod) error {
			if p.UID == first.UID {
				return fmt.Errorf("still the first pod")
			}
			return running(p)
		})
		if again.Status.PodIP != first.Status.PodIP {
			t.Errorf("the pod made again has IP %s, the first had %s", again.Status.PodIP, first.Status.PodIP)
		}
	})

	t.Run("a malformed annotation fails the pod with an Event quoting it and the expected form", func(t *testing.T) {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "malformed", Annotations: map[string]string{vnode.AnnMaxPending: "soon"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: busybox, Command: []string{"sleep", "3600"}}}}}
		c.createPod(t, ns, pod)
		p := c.waitPod(t, ns, "malformed", "Failed", 30*time.Second, func(p *corev1.Pod) error {
			if p.Status.Phase != corev1.PodFailed || p.Status.Reason != "InvalidAnnotation" {
				return fmt.Errorf("phase %s reason %q", p.Status.Phase, p.Status.Reason)
			}
			return nil
		})
		want := vnode.AnnMaxPending + `="soon"`
		if !strings.Contains(p.Status.Message, want) || !strings.Contains(p.Status.Message, "integer from 10 to 1440") {
			t.Errorf("message %q: want it to quote %s and the expected form", p.Status.Message, want)
		}
		podEvent(t, c, ns, p, "InvalidAnnotation", want)
		noGroupFor(t, c, p)
	})

	t.Run("a DaemonSet's pod never runs on the virtual node", func(t *testing.T) {
		labels := map[string]string{"app": "agent"}
		ds := &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "agent"}, Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{
				// Tolerating every taint, as many node agents do.
				Tolerations: []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
				Containers:  []corev1.Container{{Name: "main", Image: busybox, Command: []string{"sleep", "3600"}}},
			}},
		}}
		if _, err := c.kube.AppsV1().DaemonSets(ns).Create(ctx, ds, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = c.kube.AppsV1().DaemonSets(ns).Delete(ctx, "agent", metav1.DeleteOptions{}) }()
		var failed *corev1.Pod
		poll.Eventually(t, 60*time.Second, "the DaemonSet's pod on the virtual node Failed", func() error {
			list, err := c.kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=agent"})
			if err != nil {
				return err
			}
			for i, p := range list.Items {
				if p.Spec.NodeName == nodeName && p.Status.Phase == corev1.PodFailed && p.Status.Reason == "DaemonSetNotSupported" {
					failed = &list.Items[i]
					return nil
				}
			}
			return fmt.Errorf("%d pods, none Failed with DaemonSetNotSupported", len(list.Items))
		})
		if !strings.Contains(failed.Status.Message, "sidecar") {
			t.Errorf("message %q does not name the alternative", failed.Status.Message)
		}
		podEvent(t, c, ns, failed, "DaemonSetNotSupported", "sidecar")
		noGroupFor(t, c, failed)
	})
}

// podEvent waits for an Event on pod with reason whose message has want.
func podEvent(t *testing.T, c *cluster, ns string, pod *corev1.Pod, reason, want string) {
	t.Helper()
	poll.Eventually(t, 20*time.Second, "Event "+reason+" on "+pod.Name, func() error {
		evs, err := c.kube.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("involvedObject.uid", string(pod.UID)).String()})
		if err != nil {
			return err
		}
		for _, ev := range evs.Items {
			if ev.Reason == reason && strings.Contains(ev.Message, want) {
				return nil
			}
		}
		return fmt.Errorf("events %v", evs.Items)
	})
}

// noGroupFor fails if the service has a group for pod.
func noGroupFor(t *testing.T, c *cluster, pod *corev1.Pod) {
	t.Helper()
	groups, err := c.eci.ListGroups(context.Background(), client.ListOptions{LabelSelector: vnode.LabelPodUID + "=" + string(pod.UID)})
	if err != nil {
		t.Fatal(err)
	}
	if len(groups.Items) != 0 {
		t.Errorf("pod %s has %d groups, want none", pod.Name, len(groups.Items))
	}
}

// checkShapers checks the host's token buckets of the instance at ip: the
// rate of what its link sends it, and of its egress shaper.
func checkShapers(t *testing.T, ip, in, out string) {
	t.Helper()
	route, err := exec.Command("ip", "-4", "-o", "route", "get", ip).CombinedOutput()
	if err != nil {
		t.Fatalf("route to %s: %v: %s", ip, err, route)
	}
	f := strings.Fields(string(route))
	link := ""
	for i := range f[:len(f)-1] {
		if f[i] == "dev" {
			link = f[i+1]
		}
	}
	if !strings.HasPrefix(link, datapath.InterfacePrefix) {
		t.Fatalf("route to %s: %s", ip, route)
	}
	for dev, rate := range map[string]string{link: in, datapath.ShaperPrefix + strings.TrimPrefix(link, datapath.InterfacePrefix): out} {
		qd, err := exec.Command("tc", "qdisc", "show", "dev", dev).CombinedOutput()
		if err != nil || !strings.Contains(string(qd), "tbf") || !strings.Contains(string(qd), "rate "+rate) {
			t.Errorf("qdiscs of %s: %s (%v); want a token bucket of %s", dev, qd, err, rate)
		}
	}
}
