package e2e

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/agent"
	"github.com/eci-dev/eci/internal/client"
	"github.com/eci-dev/eci/internal/poll"
	"github.com/eci-dev/eci/internal/runtime"
	"github.com/eci-dev/eci/internal/testbed"
	"github.com/eci-dev/eci/internal/vnode"
)

// restartable is a component run as its own process, killed -9 and started
// again with the same arguments.
type restartable struct {
	t      *testing.T
	name   string
	bin    string
	args   []string
	logDir string
	p      *proc
	n      int
}

func (r *restartable) start() {
	r.t.Helper()
	r.n++
	r.p = startProc(r.t, fmt.Sprintf("%s-%d", r.name, r.n), r.logDir, r.bin, r.args...)
}

// churnPods is how many pods the churn creates in all (ECI_CHURN_PODS).
func churnPods() int {
	if n, err := strconv.Atoi(os.Getenv("ECI_CHURN_PODS")); err == nil && n > 0 {
		return n
	}
	return 300
}

// kill -9 of the server, of the agent and of the virtual node, each a
// separate process, at random moments of a churn of pods (created and
// deleted in a loop). Afterwards every pod that exists is Running with
// exactly one instance, no instance is without its pod, no pod stays
// Terminating, no address is leaked, and no two sandboxes ever held one
// address.
func TestChurnUnderKills(t *testing.T) {
	bed := testbed.New(t, testbed.Options{Kube: true, Containerd: true})
	kube := fastClient(t, bed)
	ctx := context.Background()
	eciBin := buildEci(t)
	dir := t.TempDir()
	logs := filepath.Join(dir, "logs")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		t.Fatal(err)
	}
	copyFile(t, filepath.Join(filepath.Dir(eciBin), "eci-cni"), filepath.Join(bed.Containerd.CNIBinDir, "eci-cni"))
	port := loopbackPorts(t, 1)[0]
	serverURL := fmt.Sprintf("https://127.0.0.1:%d", port)
	const lease = 10 * time.Second
	server := &restartable{t: t, name: "server", bin: eciBin, logDir: logs,
		args: []string{"server", "--data-dir", filepath.Join(dir, "server"), "--listen", fmt.Sprintf("127.0.0.1:%d", port), "--host-lease-ttl", lease.String()}}
	server.start()
	var conf client.ConfigFile
	poll.Eventually(t, 60*time.Second, "the server's admin config", func() (err error) {
		conf, err = client.LoadConfigFile(filepath.Join(dir, "server", "admin.conf"))
		return err
	})
	admin, err := client.New(client.Config{Server: serverURL, Token: conf.Token, CAFile: conf.CAFile})
	if err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, 30*time.Second, "the server ready", func() error { return admin.Ready(ctx) })
	if _, err := admin.CreateVSwitch(ctx, &apiv1.VSwitch{Metadata: apiv1.ObjectMeta{Name: "vsw-churn"}, Spec: apiv1.VSwitchSpec{Zone: "zone-a", CIDR: bed.Network.VSwitchCIDR.String()}}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.PutTenant(ctx, &apiv1.Tenant{Metadata: apiv1.ObjectMeta{Name: "churn"}}); err != nil {
		t.Fatal(err)
	}
	tokenFile := func(name string, spec apiv1.TokenSpec) string {
		tok, err := admin.CreateToken(ctx, &apiv1.Token{Spec: spec})
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(tok.Status.Token), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	agent := &restartable{t: t, name: "agent", bin: eciBin, logDir: logs, args: []string{"agent", "--server", serverURL, "--ca-file", conf.CAFile,
		"--token-file", tokenFile("host.token", apiv1.TokenSpec{Kind: apiv1.TokenHost, Host: "churn-host"}), "--host-name", "churn-host", "--zone", "zone-a",
		"--cpu", "64", "--memory", "256", "--max-groups", "200", "--cri-endpoint", bed.Containerd.Endpoint,
		"--cgroup-parent", bed.CgroupParent + "/eci", "--log-dir", filepath.Join(dir, "group-logs"), "--state-dir", filepath.Join(dir, "agent"),
		"--cni-conf-dir", bed.Containerd.CNIConfDir, "--network-name", bed.Network.AgentNetwork, "--cni-socket", filepath.Join(dir, "cni.sock"), "--resolv-conf", "",
		"--stream-address", "127.0.0.1:0", "--registry-config-dir", bed.Containerd.CertsDir, "--allowed-local-registry", bed.Registry.Host}}
	agent.start()
	vn := &restartable{t: t, name: "vnode", bin: eciBin, logDir: logs, args: []string{"vnode", "--kubeconfig", bed.Kube.Kubeconfig,
		"--server", serverURL, "--ca-file", conf.CAFile, "--token-file", tokenFile("tenant.token", apiv1.TokenSpec{Kind: apiv1.TokenTenant, Tenant: "churn"}),
		"--internal-ip", bed.Network.NodeIP.String(), "--listen", bed.Network.NodeIP.String() + ":10250", "--client-ca-file", bed.Kube.CAFile}}
	vn.start()
	poll.Eventually(t, 60*time.Second, "the virtual node Ready", func() error { return nodeReady(ctx, kube) })

	rt, err := runtime.NewCRI(bed.Containerd.Endpoint, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	// Every 250 ms: no two ready sandboxes at one address.
	var mu sync.Mutex
	var clashes []string
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	go func() {
		for watchCtx.Err() == nil {
			if clash := sharedAddress(watchCtx, rt); clash != "" {
				mu.Lock()
				clashes = append(clashes, clash)
				mu.Unlock()
			}
			time.Sleep(250 * time.Millisecond)
		}
	}()

	// The churn: five pods every second, the five oldest deleted once 30 run.
	total := churnPods()
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, seed>>1))
	rounds := total / 5
	killAt := map[int]*restartable{}
	for _, c := range []*restartable{server, agent, vn, server, agent, vn} {
		for {
			r := rounds/10 + rng.IntN(rounds*8/10)
			if killAt[r] == nil {
				killAt[r] = c
				break
			}
		}
	}
	var kills []string
	small := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")}
	zero := int64(0)
	var live []string
	created, deleted := 0, 0
	began := time.Now()
	for round := 0; round < rounds; round++ {
		if c := killAt[round]; c != nil {
			c.p.kill()
			kills = append(kills, fmt.Sprintf("%s at %s", c.name, time.Since(began).Round(100*time.Millisecond)))
			time.Sleep(time.Duration(1+rng.IntN(3)) * time.Second) // down for 1-3 s on purpose
			c.start()
		}
		for i := range 5 {
			name := fmt.Sprintf("churn-%d-%d", round, i)
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "churn"}}, Spec: onVNode(corev1.PodSpec{
				TerminationGracePeriodSeconds: &zero, RestartPolicy: corev1.RestartPolicyAlways,
				Containers: []corev1.Container{{Name: "main", Image: bed.Registry.Busybox, Command: []string{"sleep", "3600"},
					Resources: corev1.ResourceRequirements{Limits: small}}}})}
			if _, err := kube.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			created++
			live = append(live, name)
		}
		for len(live) > 30 {
			if err := kube.CoreV1().Pods("default").Delete(ctx, live[0], metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
			deleted++
			live = live[1:]
		}
		time.Sleep(time.Second)
	}
	churned := time.Since(began)

	// Every pod that exists Running on exactly one instance; no instance
	// without its pod.
	settled := time.Now()
	poll.Eventually(t, 180*time.Second, "every pod Running with exactly one instance, every instance with its pod", func() error {
		return oneInstanceEach(ctx, kube, admin)
	})
	settleTook := time.Since(settled)
	// Then every pod deleted: none stays Terminating, no instance and no
	// address is left once the quarantine of unconfirmed ends has passed.
	for _, name := range live {
		if err := kube.CoreV1().Pods("default").Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	poll.Eventually(t, 120*time.Second, "no pod, no instance, no address left", func() error {
		pods, err := kube.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=churn"})
		if err != nil {
			return err
		}
		if len(pods.Items) != 0 {
			return fmt.Errorf("%d pods left (first %s, deleting since %v)", len(pods.Items), pods.Items[0].Name, pods.Items[0].DeletionTimestamp)
		}
		groups, err := admin.ListGroups(ctx, client.ListOptions{})
		if err != nil {
			return err
		}
		if len(groups.Items) != 0 {
			return fmt.Errorf("%d groups left (first %s %s)", len(groups.Items), groups.Items[0].Metadata.ID, groups.Items[0].Status.State)
		}
		v, err := admin.GetVSwitch(ctx, "vsw-churn")
		if err != nil {
			return err
		}
		if v.Status.Allocated != 0 {
			return fmt.Errorf("%d addresses still allocated", v.Status.Allocated)
		}
		return nil
	})
	stopWatch()
	mu.Lock()
	defer mu.Unlock()
	sort.Strings(kills)
	t.Logf("churn (seed %d): %d pods created, %d deleted in %s; kill -9: %s; settled in %s; addresses shared by two sandboxes: %d",
		seed, created, deleted, churned.Round(time.Second), strings.Join(kills, ", "), settleTook.Round(time.Second), len(clashes))
	if len(clashes) > 0 {
		t.Fatalf("two sandboxes at one address: %v", clashes[:min(5, len(clashes))])
	}
}

// oneInstanceEach: every pod not being deleted is Running with its one live
// instance; every live instance has its pod.
func oneInstanceEach(ctx context.Context, kube kubernetes.Interface, admin *client.Client) error {
	pods, err := kube.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=churn"})
	if err != nil {
		return err
	}
	groups, err := admin.ListGroups(ctx, client.ListOptions{})
	if err != nil {
		return err
	}
	byUID := map[string][]apiv1.ContainerGroup{}
	for _, g := range groups.Items {
		if !g.Status.State.Terminal() && g.Metadata.DeletionRequestedAt == nil {
			byUID[g.Metadata.Labels[vnode.LabelPodUID]] = append(byUID[g.Metadata.Labels[vnode.LabelPodUID]], g)
		}
	}
	existing := map[string]bool{}
	for _, p := range pods.Items {
		existing[string(p.UID)] = true
		if p.DeletionTimestamp != nil {
			return fmt.Errorf("pod %s is being deleted since %s", p.Name, p.DeletionTimestamp)
		}
		if p.Status.Phase != corev1.PodRunning {
			return fmt.Errorf("pod %s is %s", p.Name, p.Status.Phase)
		}
		if n := len(byUID[string(p.UID)]); n != 1 {
			return fmt.Errorf("pod %s has %d live instances", p.Name, n)
		}
		if id := p.Annotations[vnode.AnnInstanceID]; id != byUID[string(p.UID)][0].Metadata.ID {
			return fmt.Errorf("pod %s names instance %q, its instance is %s", p.Name, id, byUID[string(p.UID)][0].Metadata.ID)
		}
	}
	for uid, gs := range byUID {
		if !existing[uid] {
			return fmt.Errorf("instance %s has no pod (uid %s)", gs[0].Metadata.ID, uid)
		}
	}
	return nil
}

// nodeReady: the virtual node's Ready condition is True.
func nodeReady(ctx context.Context, kube kubernetes.Interface) error {
	n, err := kube.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{})
	if err != nil {
		return err
	}
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
			return nil
		}
	}
	return fmt.Errorf("node %s not Ready: %v", nodeName, n.Status.Conditions)
}

// sharedAddress names an address two ready sandboxes hold, or "".
func sharedAddress(ctx context.Context, rt agent.Runtime) string {
	sbs, err := rt.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{State: &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_READY}})
	if err != nil {
		return ""
	}
	owner := map[netip.Addr]string{}
	for _, sb := range sbs {
		st, err := rt.PodSandboxStatus(ctx, sb.Id, false)
		if err != nil {
			continue
		}
		ip, err := netip.ParseAddr(st.GetStatus().GetNetwork().GetIp())
		if err != nil {
			continue
		}
		if other, ok := owner[ip]; ok {
			return fmt.Sprintf("%s held by %s and %s", ip, other, sb.Metadata.Name)
		}
		owner[ip] = sb.Metadata.Name
	}
	return ""
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func copyFile(t testing.TB, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	tmp := to + ".tmp"
	if err := os.WriteFile(tmp, data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, to); err != nil {
		t.Fatal(err)
	}
}
