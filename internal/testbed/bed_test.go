package testbed

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/eci-dev/eci/internal/pki"
	"github.com/eci-dev/eci/internal/poll"
)

// The controller-manager and scheduler of the bed are real: a Deployment gets a
// ReplicaSet and pods, the scheduler marks them Unschedulable (no nodes), and
// every namespace gets the cluster CA in kube-root-ca.crt.
func TestControlPlaneRunsDeployment(t *testing.T) {
	b := New(t, Options{Kube: true})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cs := b.Kube.Client

	replicas := int32(3)
	sel := map[string]string{"app": "web"}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: sel},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: sel},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "web", Image: b.Network.NodeIP.String() + ":5000/busybox:1.35", Command: []string{"httpd", "-f"},
				}}},
			},
		},
	}
	if _, err := cs.AppsV1().Deployments("default").Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create deployment: %v", err)
	}
	poll.Eventually(t, time.Minute, "the controller-manager creates 3 pods, all marked Unschedulable by the scheduler", func() error {
		pods, err := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: labels.SelectorFromSet(sel).String()})
		if err != nil {
			return err
		}
		if len(pods.Items) != 3 {
			return fmt.Errorf("%d pods", len(pods.Items))
		}
		for _, p := range pods.Items {
			if len(p.OwnerReferences) != 1 || p.OwnerReferences[0].Kind != "ReplicaSet" {
				return fmt.Errorf("pod %s owned by %v, want a ReplicaSet", p.Name, p.OwnerReferences)
			}
			if !unschedulable(p) {
				return fmt.Errorf("pod %s: no PodScheduled=False/Unschedulable condition yet: %v", p.Name, p.Status.Conditions)
			}
		}
		return nil
	})
	poll.Eventually(t, 30*time.Second, "kube-root-ca.crt holds the bed's CA", func() error {
		cm, err := cs.CoreV1().ConfigMaps("default").Get(ctx, "kube-root-ca.crt", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if got, want := cm.Data["ca.crt"], string(pki.CertPEM(b.Kube.CA.Cert)); got != want {
			return fmt.Errorf("ca.crt is %q, want the bed's CA", got)
		}
		return nil
	})
	poll.Eventually(t, 30*time.Second, "the default service account exists", func() error {
		_, err := cs.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		return err
	})
}

func unschedulable(p corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
			return true
		}
	}
	return false
}

// containerd really pulls busybox from the in-process registry, runs it in a
// sandbox with its own IP on the bed's CNI bridge, the container serves HTTP on
// that IP, its log file holds what it printed, and its cgroup is accounted
// (memory stats read non-zero, which needs every cgroup hierarchy mounted).
func TestContainerdRunsPodFromLocalRegistry(t *testing.T) {
	b := New(t, Options{Containerd: true})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	pod := runBusyboxPod(ctx, t, b, "web",
		`echo "hello from eci"; mkdir -p /srv && echo served-by-busybox > /srv/index.html && exec httpd -f -p 8080 -h /srv`)
	if !b.Network.PodCIDR.Contains(mustAddr(t, pod.IP)) {
		t.Fatalf("pod IP %q is not in the bed's pod network %s", pod.IP, b.Network.PodCIDR)
	}

	client := &http.Client{Timeout: 2 * time.Second}
	poll.Eventually(t, 30*time.Second, "the container serves HTTP on its pod IP", func() error {
		resp, err := client.Get("http://" + pod.IP + ":8080/index.html")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != "served-by-busybox" {
			return fmt.Errorf("GET answered %s %q", resp.Status, body)
		}
		return nil
	})

	data, err := os.ReadFile(pod.LogPath)
	if err != nil {
		t.Fatalf("read container log: %v", err)
	}
	// CRI log format: <RFC3339Nano> stdout F <line>
	if !strings.Contains(string(data), " stdout F hello from eci\n") {
		t.Fatalf("log file %s does not hold the container's output; it has:\n%s", pod.LogPath, data)
	}

	st, err := b.Containerd.Runtime.ContainerStatus(ctx, pod.ContainerID, false)
	if err != nil {
		t.Fatal(err)
	}
	if st.GetStatus().GetState() != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Fatalf("container state %v, want running", st.GetStatus().GetState())
	}
	poll.Eventually(t, 20*time.Second, "the container's memory is accounted in its cgroup", func() error {
		stats, err := b.Containerd.Runtime.ContainerStats(ctx, pod.ContainerID)
		if err != nil {
			return err
		}
		if ws := stats.GetMemory().GetWorkingSetBytes().GetValue(); ws == 0 {
			return fmt.Errorf("memory working set is 0")
		}
		return nil
	})
}
