// Package e2e runs the product's main job end to end on the test bed: a real
// Kubernetes control plane, a virtual node, the instance service and a host
// agent on containerd.
package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/eci-dev/eci/internal/agent"
	"github.com/eci-dev/eci/internal/agent/agenttest"
	"github.com/eci-dev/eci/internal/client"
	"github.com/eci-dev/eci/internal/poll"
	"github.com/eci-dev/eci/internal/server"
	"github.com/eci-dev/eci/internal/server/servertest"
	"github.com/eci-dev/eci/internal/testbed"
	"github.com/eci-dev/eci/internal/vnode"
)

const nodeName = "eci-vnode"

// orphanInterval is the e2e vnodes' (30 s by default): tests that a group
// is kept, or collected, wait a few of them.
const orphanInterval = 2 * time.Second

// cluster is the bed, the instance service, one host agent and a virtual
// node joined to the bed's cluster.
type cluster struct {
	bed  *testbed.Bed
	srv  *servertest.Server
	eci  *client.Client // the vnode's tenant
	kube kubernetes.Interface
	// stopVNode stops the running virtual node.
	stopVNode func()
}

// fastClient is a client of the bed's cluster without client-go's default
// throttling (5 requests/s), as the vnode's own (vnode.KubeClient).
func fastClient(t testing.TB, bed *testbed.Bed) kubernetes.Interface {
	t.Helper()
	rc := rest.CopyConfig(bed.Kube.Config)
	rc.QPS, rc.Burst = 200, 400
	kube, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	return kube
}

func start(t *testing.T, agentConfig ...func(*agent.Config)) *cluster {
	t.Helper()
	return startOn(t, testbed.New(t, testbed.Options{Kube: true, Containerd: true}), agentConfig...)
}

// startOn is start on bed.
func startOn(t *testing.T, bed *testbed.Bed, agentConfig ...func(*agent.Config)) *cluster {
	t.Helper()
	return startServing(t, bed, nil, agentConfig...)
}

// startServing is startOn with the server's config tuned by serverConfig.
func startServing(t *testing.T, bed *testbed.Bed, serverConfig func(*server.Config), agentConfig ...func(*agent.Config)) *cluster {
	t.Helper()
	// EIPs from the top of the node network, which the agent's host holds.
	eips := bed.Network.NodeCIDR.Addr().As4()
	eips[3] = 240
	srv := servertest.Start(t, func(c *server.Config) {
		c.Control.EIPRange = netip.PrefixFrom(netip.AddrFrom4(eips), 30)
		if serverConfig != nil {
			serverConfig(c)
		}
	})
	agenttest.Start(t, srv, bed, "host-1", agentConfig...)
	c := &cluster{bed: bed, srv: srv, eci: srv.TenantClient(t, "cluster-a"), kube: fastClient(t, bed)}
	c.stopVNode = c.startVNode(t)
	return c
}

// startVNode runs the virtual node until the test ends; it returns a stop.
func (c *cluster) startVNode(t testing.TB) (stop func()) {
	t.Helper()
	return c.startVNodeAs(t, nodeName, "cluster-a", c.eci)
}

// startVNodeAs runs a virtual node named name for cluster id with eci;
// mutate changes its configuration.
func (c *cluster) startVNodeAs(t testing.TB, name, id string, eci *client.Client, mutate ...func(*vnode.Config)) (stop func()) {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(c.bed.Network.NodeIP.String(), "0"))
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	cfg := vnode.Config{
		NodeName: name, ClusterID: id, Kube: c.kube, ECI: eci, Taint: vnode.Taint(),
		InternalIP: c.bed.Network.NodeIP.String(), ListenAddr: addr, ClientCAFile: c.bed.Kube.CAFile,
		OrphanInterval: orphanInterval,
	}
	for _, m := range mutate {
		m(&cfg)
	}
	v, err := vnode.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- v.Run(ctx) }()
	select {
	case <-v.Ready():
	case err := <-done:
		cancel()
		t.Fatalf("vnode stopped: %v", err)
	case <-time.After(60 * time.Second):
		cancel()
		t.Fatal("vnode not ready after 60s")
	}
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			cancel()
			if err := <-done; err != nil {
				t.Logf("vnode stopped: %v", err)
			}
		}
	}
	t.Cleanup(stop)
	return stop
}

// onVNode sends a pod spec to the virtual node, as eci-profile will.
//
// A pod with no grace period gets 1 s: the tests' commands (sleep, sh) are
// their containers' PID 1 and ignore SIGTERM, as on a kubelet, so a delete
// would wait out the default 30 s.
func onVNode(spec corev1.PodSpec) corev1.PodSpec {
	if spec.TerminationGracePeriodSeconds == nil {
		one := int64(1)
		spec.TerminationGracePeriodSeconds = &one
	}
	spec.NodeSelector = map[string]string{"type": "virtual-kubelet"}
	spec.Tolerations = append(spec.Tolerations, corev1.Toleration{Key: "virtual-kubelet.io/provider", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule})
	return spec
}

func TestVirtualNode(t *testing.T) {
	c := start(t)
	ctx := context.Background()
	ns := "default"
	busybox := c.bed.Registry.Busybox

	t.Run("the node joins with its labels, taint and Ready", func(t *testing.T) {
		poll.Eventually(t, 30*time.Second, "node Ready", func() error {
			n, err := c.kube.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{})
			if err != nil {
				return err
			}
			for _, cond := range n.Status.Conditions {
				if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
					if n.Labels["k8s.aliyun.com/vnode"] != "true" || len(n.Spec.Taints) != 1 {
						return fmt.Errorf("labels %v taints %v", n.Labels, n.Spec.Taints)
					}
					return nil
				}
			}
			return fmt.Errorf("conditions %v", n.Status.Conditions)
		})
	})

	t.Run("a Deployment of 3 runs on the virtual node, each pod with its own IP serving HTTP; scaling to 0 removes the groups", func(t *testing.T) {
		replicas := int32(3)
		labels := map[string]string{"app": "web"}
		d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: appsv1.DeploymentSpec{
			Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: onVNode(corev1.PodSpec{
				Containers: []corev1.Container{{Name: "web", Image: busybox,
					Command: []string{"sh", "-c", "mkdir -p /srv && hostname > /srv/index.html && echo serving && exec httpd -f -p 8080 -h /srv"}}},
			})},
		}}
		if _, err := c.kube.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		var pods []corev1.Pod
		poll.Eventually(t, 60*time.Second, "3 pods Running on the virtual node", func() error {
			list, err := c.kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
			if err != nil {
				return err
			}
			pods = nil
			for _, p := range list.Items {
				if p.Spec.NodeName == nodeName && p.Status.Phase == corev1.PodRunning && p.Status.PodIP != "" {
					pods = append(pods, p)
				}
			}
			if len(pods) != 3 {
				return fmt.Errorf("%d of %d pods running", len(pods), len(list.Items))
			}
			return nil
		})
		ips := map[string]bool{}
		for _, p := range pods {
			ips[p.Status.PodIP] = true
			poll.Eventually(t, 10*time.Second, "the group id and its size written back on pod "+p.Name, func() error {
				cur, err := c.kube.CoreV1().Pods(ns).Get(ctx, p.Name, metav1.GetOptions{})
				if err != nil {
					return err
				}
				if !strings.HasPrefix(cur.Annotations[vnode.AnnInstanceID], "eci-") || cur.Annotations[vnode.AnnInstanceSpec] != "2.0-4.0Gi" {
					return fmt.Errorf("annotations %v", cur.Annotations)
				}
				return nil
			})
			poll.Eventually(t, 20*time.Second, "HTTP from pod "+p.Name, func() error {
				resp, err := (&http.Client{Timeout: 2 * time.Second}).Get("http://" + p.Status.PodIP + ":8080/index.html")
				if err != nil {
					return err
				}
				defer resp.Body.Close()
				body, _ := io.ReadAll(resp.Body)
				if strings.TrimSpace(string(body)) != p.Name {
					return fmt.Errorf("answer %q, want the pod's hostname %s", body, p.Name)
				}
				return nil
			})
		}
		if len(ips) != 3 {
			t.Fatalf("pod IPs %v: want 3 different", ips)
		}
		logs, err := c.kube.CoreV1().Pods(ns).GetLogs(pods[0].Name, &corev1.PodLogOptions{}).Do(ctx).Raw()
		if err != nil || strings.TrimSpace(string(logs)) != "serving" {
			t.Errorf("kubectl logs through the apiserver: %q (%v)", logs, err)
		}

		zero := int32(0)
		scale, err := c.kube.AppsV1().Deployments(ns).GetScale(ctx, "web", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		scale.Spec.Replicas = zero
		if _, err := c.kube.AppsV1().Deployments(ns).UpdateScale(ctx, "web", scale, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		poll.Eventually(t, 60*time.Second, "no pod and no group left", func() error {
			list, err := c.kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
			if err != nil || len(list.Items) != 0 {
				return fmt.Errorf("%d pods (%v)", len(list.Items), err)
			}
			groups, err := c.eci.ListGroups(ctx, client.ListOptions{LabelSelector: vnode.LabelCluster + "=cluster-a"})
			if err != nil || len(groups.Items) != 0 {
				return fmt.Errorf("%d groups (%v)", len(groups.Items), err)
			}
			return nil
		})
	})

	t.Run("a hostPath pod is refused with the alternative named", func(t *testing.T) {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "hostpath"}, Spec: onVNode(corev1.PodSpec{
			Volumes:    []corev1.Volume{{Name: "h", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/etc"}}}},
			Containers: []corev1.Container{{Name: "main", Image: busybox, Command: []string{"sleep", "3600"}, VolumeMounts: []corev1.VolumeMount{{Name: "h", MountPath: "/h"}}}},
		})}
		if _, err := c.kube.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		poll.Eventually(t, 30*time.Second, "the pod Failed with HostPathNotSupported", func() error {
			p, err := c.kube.CoreV1().Pods(ns).Get(ctx, "hostpath", metav1.GetOptions{})
			if err != nil {
				return err
			}
			if p.Status.Phase != corev1.PodFailed || p.Status.Reason != "HostPathNotSupported" || !strings.Contains(p.Status.Message, "emptyDir, a disk, an NFS volume, or a data cache") {
				return fmt.Errorf("phase %s reason %q message %q", p.Status.Phase, p.Status.Reason, p.Status.Message)
			}
			return nil
		})
	})

	testAnnotations(t, c, ns)
	testHardening(t, c, ns)

	t.Run("a vnode that can't serve returns why instead of hanging", func(t *testing.T) {
		taken, err := net.Listen("tcp", net.JoinHostPort(c.bed.Network.NodeIP.String(), "0"))
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = taken.Close() }()
		v, err := vnode.New(vnode.Config{NodeName: "eci-vnode-2", Kube: c.kube, ECI: c.eci, InternalIP: c.bed.Network.NodeIP.String(),
			ListenAddr: taken.Addr().String(), ClientCAFile: c.bed.Kube.CAFile})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- v.Run(context.Background()) }()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), "address already in use") {
				t.Fatalf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("Run did not return within 30s with its port taken")
		}
	})

	t.Run("a vnode restart keeps every pod and its group; a group whose pod went meanwhile is deleted", func(t *testing.T) {
		replicas := int32(2)
		labels := map[string]string{"app": "steady"}
		d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "steady"}, Spec: appsv1.DeploymentSpec{
			Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: onVNode(corev1.PodSpec{
				Containers: []corev1.Container{{Name: "main", Image: busybox, Command: []string{"sleep", "3600"}}}})},
		}}
		if _, err := c.kube.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		lone := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "lone"}, Spec: onVNode(corev1.PodSpec{
			Containers: []corev1.Container{{Name: "main", Image: busybox, Command: []string{"sleep", "3600"}}}})}
		if _, err := c.kube.CoreV1().Pods(ns).Create(ctx, lone, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		groups := func() (map[string]string, error) { // pod name -> group id
			list, err := c.eci.ListGroups(ctx, client.ListOptions{LabelSelector: vnode.LabelCluster + "=cluster-a"})
			if err != nil {
				return nil, err
			}
			out := map[string]string{}
			for _, g := range list.Items {
				if g.Metadata.DeletionRequestedAt == nil && !g.Status.State.Terminal() {
					out[g.Metadata.Labels[vnode.LabelPodName]] = g.Metadata.ID
				}
			}
			return out, nil
		}
		var before map[string]string
		poll.Eventually(t, 60*time.Second, "2 steady pods and the lone pod Running", func() error {
			list, err := c.kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{FieldSelector: "status.phase=Running"})
			if err != nil {
				return err
			}
			n := 0
			for _, p := range list.Items {
				if p.Labels["app"] == "steady" || p.Name == "lone" {
					n++
				}
			}
			if n != 3 {
				return fmt.Errorf("%d running", n)
			}
			before, err = groups()
			return err
		})
		c.stopVNode()
		zero := int64(0)
		if err := c.kube.CoreV1().Pods(ns).Delete(ctx, "lone", metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
			t.Fatal(err)
		}
		c.stopVNode = c.startVNode(t)
		poll.Eventually(t, 60*time.Second, "the same groups for the steady pods, the lone pod's deleted", func() error {
			after, err := groups()
			if err != nil {
				return err
			}
			if _, ok := after["lone"]; ok {
				return fmt.Errorf("the lone pod's group is still there: %v", after)
			}
			for pod, id := range before {
				if pod != "lone" && after[pod] != id {
					return fmt.Errorf("pod %s had group %s, now %q", pod, id, after[pod])
				}
			}
			if len(after) != len(before)-1 {
				return fmt.Errorf("groups before %v, after %v", before, after)
			}
			return nil
		})
		list, err := c.kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=steady"})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range list.Items {
			if p.Status.Phase != corev1.PodRunning || p.Status.PodIP == "" || len(p.Status.ContainerStatuses) != 1 || p.Status.ContainerStatuses[0].RestartCount != 0 {
				t.Errorf("pod %s after the vnode restart: %s %s %+v", p.Name, p.Status.Phase, p.Status.PodIP, p.Status.ContainerStatuses)
			}
		}
	})

	t.Run("two virtual nodes of different clusters on one service never see each other's groups", func(t *testing.T) {
		other := c.srv.TenantClient(t, "cluster-b")
		c.startVNodeAs(t, "eci-vnode-b", "cluster-b", other)
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "on-b"}, Spec: onVNode(corev1.PodSpec{
			Containers: []corev1.Container{{Name: "main", Image: busybox, Command: []string{"sleep", "3600"}}}})}
		pod.Spec.NodeSelector["kubernetes.io/hostname"] = "eci-vnode-b"
		if _, err := c.kube.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		poll.Eventually(t, 60*time.Second, "the pod Running on eci-vnode-b", func() error {
			p, err := c.kube.CoreV1().Pods(ns).Get(ctx, "on-b", metav1.GetOptions{})
			if err != nil {
				return err
			}
			if p.Status.Phase != corev1.PodRunning || p.Spec.NodeName != "eci-vnode-b" {
				return fmt.Errorf("%s on %s", p.Status.Phase, p.Spec.NodeName)
			}
			return nil
		})
		mine, err := c.eci.ListGroups(ctx, client.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range mine.Items {
			if g.Metadata.Labels[vnode.LabelCluster] != "cluster-a" {
				t.Errorf("cluster-a's tenant sees group %s of %s", g.Metadata.ID, g.Metadata.Labels[vnode.LabelCluster])
			}
		}
		theirs, err := other.ListGroups(ctx, client.ListOptions{})
		if err != nil || len(theirs.Items) != 1 || theirs.Items[0].Metadata.Labels[vnode.LabelPodName] != "on-b" {
			t.Fatalf("cluster-b's groups: %+v (%v)", theirs, err)
		}
	})
}
