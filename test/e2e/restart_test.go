package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/eci-dev/eci/internal/client"
	"github.com/eci-dev/eci/internal/poll"
	"github.com/eci-dev/eci/internal/testbed"
	"github.com/eci-dev/eci/internal/up"
	"github.com/eci-dev/eci/internal/vnode"
)

// buildEci builds the eci binary and its CNI plugin from this checkout.
func buildEci(t testing.TB) (eci string) {
	t.Helper()
	dir := t.TempDir()
	for _, b := range []struct{ out, pkg string }{{"eci", "./cmd/eci"}, {"eci-cni", "./cmd/eci-cni"}} {
		root, err := testbed.RepoRoot()
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(dir, b.out), b.pkg)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", b.pkg, err, out)
		}
	}
	return filepath.Join(dir, "eci")
}

// upProcess is `eci up` run as make up runs it, on the bed.
type upProcess struct {
	t       *testing.T
	bin     string
	bed     *testbed.Bed
	dataDir string
	cmd     *exec.Cmd
}

func (u *upProcess) start() {
	u.t.Helper()
	// A killed eci up leaves its ready file: only the new one's counts (as
	// in hack/up.sh).
	_ = os.Remove(up.ReadyFile(u.dataDir))
	b := u.bed
	u.cmd = exec.Command(u.bin, "up", "--data-dir", u.dataDir, "--listen", "127.0.0.1:0",
		"--cri-endpoint", b.Containerd.Endpoint, "--cni-conf-dir", b.Containerd.CNIConfDir, "--cni-bin-dir", b.Containerd.CNIBinDir, "--resolv-conf", "",
		"--registry-config-dir", b.Containerd.CertsDir, "--allowed-local-registry", b.Registry.Host,
		"--cgroup-parent", b.CgroupParent+"/eci", "--log-dir", filepath.Join(u.dataDir, "logs"),
		"--pod-cidr", b.Network.VSwitchCIDR.String(), "--network-name", b.Network.AgentNetwork,
		"--kubeconfig", b.Kube.Kubeconfig, "--node-ip", b.Network.NodeIP.String(), "--client-ca-file", b.Kube.CAFile)
	logFile, err := os.OpenFile(filepath.Join(u.dataDir+"-logs"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		u.t.Fatal(err)
	}
	u.cmd.Stdout, u.cmd.Stderr = logFile, logFile
	u.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := u.cmd.Start(); err != nil {
		u.t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- u.cmd.Wait(); _ = logFile.Close() }()
	deadline := time.After(120 * time.Second)
	for {
		if _, err := os.Stat(up.ReadyFile(u.dataDir)); err == nil {
			return
		}
		select {
		case err := <-exited:
			u.t.Fatalf("eci up stopped: %v\n%s", err, u.logTail())
		case <-deadline:
			u.t.Fatalf("eci up not ready after 120 s\n%s", u.logTail())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// kill -9s the whole process group.
func (u *upProcess) kill() {
	if u.cmd != nil && u.cmd.Process != nil {
		_ = syscall.Kill(-u.cmd.Process.Pid, syscall.SIGKILL)
		_ = poll.Until(context.Background(), 5*time.Second, gone(u.cmd.Process.Pid))
	}
}

func (u *upProcess) logTail() string {
	data, _ := os.ReadFile(u.dataDir + "-logs")
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	return strings.Join(lines[max(0, len(lines)-30):], "\n")
}

// eci up restarts into the truth: with a Deployment of 20 running, kill -9
// of eci up turns the node NotReady (its lease ends), and eci up started
// again on the same data dir comes up (it used to refuse its own vSwitch)
// and keeps every pod Running on its first instance.
func TestEciUpRestartsIntoTheTruth(t *testing.T) {
	bed := testbed.New(t, testbed.Options{Kube: true, Containerd: true})
	kube := fastClient(t, bed)
	ctx := context.Background()
	u := &upProcess{t: t, bin: buildEci(t), bed: bed, dataDir: filepath.Join(t.TempDir(), "eci")}
	u.start()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("eci up's log, last lines:\n%s", u.logTail())
		}
		u.kill()
	})

	replicas := int32(20)
	labels := map[string]string{"app": "steady"}
	small := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")}
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "steady"}, Spec: appsv1.DeploymentSpec{
		Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: labels},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: onVNode(corev1.PodSpec{
			TerminationGracePeriodSeconds: new(int64),
			Containers: []corev1.Container{{Name: "main", Image: bed.Registry.Busybox, Command: []string{"sleep", "3600"},
				Resources: corev1.ResourceRequirements{Limits: small}}}})},
	}}
	if _, err := kube.AppsV1().Deployments("default").Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	instances := func() (map[string]string, error) { // pod name -> instance id, of Running pods
		list, err := kube.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=steady"})
		if err != nil {
			return nil, err
		}
		out := map[string]string{}
		for _, p := range list.Items {
			if p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil && p.Annotations[vnode.AnnInstanceID] != "" {
				out[p.Name] = p.Annotations[vnode.AnnInstanceID]
			}
		}
		if len(out) != int(replicas) || len(list.Items) != int(replicas) {
			return out, fmt.Errorf("%d of %d pods Running with an instance (%d pods)", len(out), replicas, len(list.Items))
		}
		return out, nil
	}
	var before map[string]string
	poll.Eventually(t, 180*time.Second, "20 pods Running", func() (err error) { before, err = instances(); return err })

	u.kill()
	poll.Eventually(t, 150*time.Second, "the node NotReady once its lease ends", func() error {
		n, err := kube.CoreV1().Nodes().Get(ctx, "eci-vnode", metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
				return fmt.Errorf("still Ready (%s)", c.LastHeartbeatTime)
			}
		}
		return nil
	})

	u.start() // fails the test if eci up does not come up
	conf, err := client.LoadConfigFile(filepath.Join(u.dataDir, "server", "admin.conf"))
	if err != nil {
		t.Fatal(err)
	}
	eci, err := client.New(client.Config{Server: conf.Server, Token: conf.Token, CAFile: conf.CAFile})
	if err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, 120*time.Second, "every pod Running on its first instance, exactly one each, the node Ready", func() error {
		after, err := instances()
		if err != nil {
			return err
		}
		for pod, id := range before {
			if after[pod] != id {
				return fmt.Errorf("pod %s: instance %s before, %q after", pod, id, after[pod])
			}
		}
		groups, err := eci.ListGroups(ctx, client.ListOptions{})
		if err != nil {
			return err
		}
		perPod := map[string]int{}
		for _, g := range groups.Items {
			if !g.Status.State.Terminal() && g.Metadata.DeletionRequestedAt == nil {
				perPod[g.Metadata.Labels[vnode.LabelPodName]]++
			}
		}
		for pod := range before {
			if perPod[pod] != 1 {
				return fmt.Errorf("pod %s has %d live instances", pod, perPod[pod])
			}
		}
		if len(perPod) != len(before) {
			return fmt.Errorf("%d pods with instances, want %d: %v", len(perPod), len(before), perPod)
		}
		n, err := kube.CoreV1().Nodes().Get(ctx, "eci-vnode", metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status != corev1.ConditionTrue {
				return fmt.Errorf("node %s", c.Status)
			}
		}
		return nil
	})
	_ = kube.AppsV1().Deployments("default").Delete(ctx, "steady", metav1.DeleteOptions{})
}
