package agent

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/client"
	"github.com/eci-dev/eci/internal/cni"
	"github.com/eci-dev/eci/internal/errdefs"
	"github.com/eci-dev/eci/internal/poll"
	"github.com/eci-dev/eci/internal/runtime"
	"github.com/eci-dev/eci/internal/server/servertest"
	"github.com/eci-dev/eci/internal/testbed"
)

// The agent on the real test bed: containerd through CRI, images pulled from
// the bed's registry, CNI networking.
func TestAgentOnContainerd(t *testing.T) {
	bed, srv, rt := containerdBed(t)
	stopAgent := startAgentOn(t, srv, rt, bed, "")
	ctx := context.Background()
	busybox := bed.Registry.Busybox

	t.Run("two containers share localhost and the host reaches the group at the server's IP", func(t *testing.T) {
		g := &apiv1.ContainerGroup{Metadata: apiv1.ObjectMeta{Name: "web"}, Spec: apiv1.ContainerGroupSpec{Containers: []apiv1.Container{
			{Name: "web", Image: busybox, Command: []string{"sh", "-c", "mkdir -p /srv && echo served > /srv/index.html && exec httpd -f -p 8080 -h /srv"}},
			{Name: "client", Image: busybox, Command: []string{"sh", "-c", "while :; do wget -q -O- http://127.0.0.1:8080/index.html && echo shared-localhost-ok; sleep 0.2; done"}},
		}}}
		id := createGroup(t, srv, g)
		running := srv.WaitGroup(t, id, "Running", inState(apiv1.StateRunning))
		ip := sandboxIP(t, rt, id)
		if ip != running.Status.IP || !bed.Network.VSwitchCIDR.Contains(netip.MustParseAddr(ip)) {
			t.Fatalf("the sandbox has IP %s; the server gave the group %s in %s", ip, running.Status.IP, bed.Network.VSwitchCIDR)
		}
		poll.Eventually(t, 30*time.Second, "GET http://"+ip+":8080", func() error {
			resp, err := (&http.Client{Timeout: time.Second}).Get("http://" + ip + ":8080/index.html")
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if strings.TrimSpace(string(body)) != "served" {
				return fmt.Errorf("answer %q", body)
			}
			return nil
		})
		logFile := filepath.Join(bed.Containerd.LogDir, id, "client", "0.log")
		poll.Eventually(t, 30*time.Second, "the client container's log shows it reached the web container over localhost", func() error {
			data, err := os.ReadFile(logFile)
			if err != nil {
				return err
			}
			if !strings.Contains(string(data), "stdout F shared-localhost-ok") {
				return fmt.Errorf("log: %q", data)
			}
			return nil
		})
		if _, err := srv.Admin.DeleteGroup(ctx, id, client.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		poll.Eventually(t, 30*time.Second, "the deleted group's sandbox is gone from containerd", func() error {
			if _, err := srv.Admin.GetGroup(ctx, id); !errdefs.IsNotFound(err) {
				return fmt.Errorf("group still there: %v", err)
			}
			sbs, err := rt.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{LabelGroup: id}})
			if err != nil || len(sbs) != 0 {
				return fmt.Errorf("%d sandboxes (%v)", len(sbs), err)
			}
			return nil
		})
	})

	t.Run("groups of two vSwitches share the host: each has its vSwitch's address, the host and the other reach it", func(t *testing.T) {
		if !bed.Network.LargeVSwitchCIDR.IsValid() {
			t.Fatalf("slot %d has no second vSwitch range", bed.Slot)
		}
		srv.VSwitch(t, "vsw-b", "zone-a", bed.Network.LargeVSwitchCIDR.String())
		web := func(name, vsw, extra string) *apiv1.ContainerGroup {
			return &apiv1.ContainerGroup{Metadata: apiv1.ObjectMeta{Name: name}, Spec: apiv1.ContainerGroupSpec{VSwitchIDs: []string{vsw}, Containers: []apiv1.Container{
				{Name: "web", Image: busybox, Command: []string{"sh", "-c", "mkdir -p /srv; echo " + name + " > /srv/index.html; " + extra + "exec httpd -f -p 8080 -h /srv"}},
			}}}
		}
		// Both groups go, and are waited out, however the test ends: the
		// next test counts the addresses left.
		var made []string
		defer func() {
			for _, id := range made {
				if _, err := srv.Admin.DeleteGroup(ctx, id, client.DeleteOptions{}); err != nil && !errdefs.IsNotFound(err) {
					t.Error(err)
				}
			}
			for _, id := range made {
				poll.Eventually(t, 30*time.Second, "group "+id+" gone", func() error {
					if _, err := srv.Admin.GetGroup(ctx, id); !errdefs.IsNotFound(err) {
						return fmt.Errorf("still there (%v)", err)
					}
					return nil
				})
			}
		}()
		create := func(g *apiv1.ContainerGroup) string {
			id := createGroup(t, srv, g)
			made = append(made, id)
			return id
		}
		a := srv.WaitGroup(t, create(web("in-a", "vsw-a", "")), "Running", inState(apiv1.StateRunning))
		b := srv.WaitGroup(t, create(web("in-b", "vsw-b",
			"(while :; do wget -q -O- http://"+a.Status.IP+":8080/index.html && echo reached-a; sleep 0.2; done) & ")), "Running", inState(apiv1.StateRunning))
		for _, g := range []*apiv1.ContainerGroup{a, b} {
			cidr := bed.Network.VSwitchCIDR
			if g == b {
				cidr = bed.Network.LargeVSwitchCIDR
			}
			if ip := sandboxIP(t, rt, g.Metadata.ID); ip != g.Status.IP || !cidr.Contains(netip.MustParseAddr(ip)) {
				t.Fatalf("group %s: sandbox IP %s, server IP %s, want one in %s", g.Metadata.Name, ip, g.Status.IP, cidr)
			}
			poll.Eventually(t, 30*time.Second, "the host reaches "+g.Metadata.Name, func() error {
				resp, err := (&http.Client{Timeout: time.Second}).Get("http://" + g.Status.IP + ":8080/index.html")
				if err != nil {
					return err
				}
				defer resp.Body.Close()
				body, _ := io.ReadAll(resp.Body)
				if strings.TrimSpace(string(body)) != g.Metadata.Name {
					return fmt.Errorf("answer %q", body)
				}
				return nil
			})
		}
		poll.Eventually(t, 30*time.Second, "the group of vsw-b reaches the group of vsw-a", func() error {
			data, err := os.ReadFile(filepath.Join(bed.Containerd.LogDir, b.Metadata.ID, "web", "0.log"))
			if err != nil || !strings.Contains(string(data), "reached-a") {
				return fmt.Errorf("log %q (%v)", data, err)
			}
			return nil
		})
	})

	t.Run("volumes: emptyDir shared, files payload updated in place, nothing left after delete", func(t *testing.T) {
		g := &apiv1.ContainerGroup{Metadata: apiv1.ObjectMeta{Name: "vols"}, Spec: apiv1.ContainerGroupSpec{
			Volumes: []apiv1.Volume{
				{Name: "scratch", EmptyDir: &apiv1.EmptyDirVolume{}},
				{Name: "config", Files: &apiv1.FilesVolume{Files: []apiv1.File{{Path: "app.conf", Content: []byte("version=1")}}}},
			},
			Containers: []apiv1.Container{
				{Name: "writer", Image: busybox, Command: []string{"sh", "-c", "echo from-writer > /scratch/note; sleep 3600"},
					VolumeMounts: []apiv1.VolumeMount{{Name: "scratch", MountPath: "/scratch"}}},
				{Name: "reader", Image: busybox, Command: []string{"sh", "-c", "while :; do cat /scratch/note /etc/app/app.conf; echo; sleep 0.2; done"},
					VolumeMounts: []apiv1.VolumeMount{{Name: "scratch", MountPath: "/scratch"}, {Name: "config", MountPath: "/etc/app"}}},
			},
		}}
		id := createGroup(t, srv, g)
		srv.WaitGroup(t, id, "Running", inState(apiv1.StateRunning))
		logFile := filepath.Join(bed.Containerd.LogDir, id, "reader", "0.log")
		waitLog := func(want string) {
			poll.Eventually(t, 30*time.Second, "the reader's log shows "+want, func() error {
				data, err := os.ReadFile(logFile)
				if err != nil {
					return err
				}
				if !strings.Contains(string(data), want) {
					return fmt.Errorf("log: %q", data)
				}
				return nil
			})
		}
		waitLog("stdout F from-writer")
		waitLog("stdout F version=1")
		if _, err := srv.Admin.UpdateGroup(ctx, id, apiv1.GroupUpdate{Files: map[string]apiv1.FilesVolume{
			"config": {Files: []apiv1.File{{Path: "app.conf", Content: []byte("version=2")}}}}}); err != nil {
			t.Fatal(err)
		}
		waitLog("stdout F version=2")

		cgroups := groupCgroups(t, bed, id)
		if len(cgroups) == 0 {
			t.Fatal("found no cgroup of the running group: the leftover check would prove nothing")
		}
		// The group's cgroup holds its size (2 vCPU / 4 GiB by default).
		for file, want := range map[string]string{"memory/memory.limit_in_bytes": "4294967296", "cpu/cpu.cfs_quota_us": "200000"} {
			hier, name := filepath.Split(file)
			data, err := os.ReadFile(filepath.Join("/sys/fs/cgroup", hier, bed.CgroupParent, id, name))
			if err != nil || strings.TrimSpace(string(data)) != want {
				t.Errorf("%s of the group's cgroup is %q (%v), want %s", file, data, err, want)
			}
		}
		if _, err := srv.Admin.DeleteGroup(ctx, id, client.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		poll.Eventually(t, 30*time.Second, "nothing of the deleted group is left on the host", func() error {
			if _, err := srv.Admin.GetGroup(ctx, id); !errdefs.IsNotFound(err) {
				return fmt.Errorf("group still there: %v", err)
			}
			for _, p := range []string{filepath.Join(bed.Dir, "agent", "state", "groups", id), filepath.Join(bed.Containerd.LogDir, id)} {
				if _, err := os.Stat(p); err == nil {
					return fmt.Errorf("%s is left", p)
				}
			}
			if left := groupCgroups(t, bed, id); len(left) > 0 {
				return fmt.Errorf("cgroups left: %v", left)
			}
			return nil
		})
		ip, err := srv.Admin.ListVSwitches(ctx)
		if err != nil || ip[0].Status.Allocated != 0 {
			t.Fatalf("addresses still allocated after every group was deleted: %+v (%v)", ip, err)
		}
	})

	// Not a subtest: the new agent must outlive it (t.Cleanup stops it).
	{
		g := &apiv1.ContainerGroup{Metadata: apiv1.ObjectMeta{Name: "steady"}, Spec: apiv1.ContainerGroupSpec{
			Containers: []apiv1.Container{{Name: "main", Image: busybox, Command: []string{"sleep", "3600"}}}}}
		id := createGroup(t, srv, g)
		before := srv.WaitGroup(t, id, "Running", inState(apiv1.StateRunning))
		sandbox := sandboxIP(t, rt, id)
		stopAgent()
		startAgentOn(t, srv, rt, bed, "")
		poll.Consistently(t, 2*time.Second, "the group unchanged by an agent restart", func() error {
			after, err := srv.Admin.GetGroup(ctx, id)
			if err != nil {
				return err
			}
			if after.Status.State != apiv1.StateRunning || after.Status.Containers[0].ContainerID != before.Status.Containers[0].ContainerID ||
				after.Status.Containers[0].RestartCount != 0 || sandboxIP(t, rt, id) != sandbox {
				evs, _ := srv.Admin.GroupEvents(ctx, id)
				for _, ev := range evs {
					t.Logf("event %s %s %s %s", ev.LastTime.Format("15:04:05.000"), ev.Source, ev.Reason, ev.Message)
				}
				return fmt.Errorf("an agent restart changed the group: before %+v, after %+v", before.Status.Containers, after.Status.Containers)
			}
			if n := len(containersOf(t, rt, id)); n != 1 {
				return fmt.Errorf("%d containers after the agent restart, want 1", n)
			}
			return nil
		})
	}

	t.Run("a failing liveness probe restarts the container; readiness flips the ready flag", func(t *testing.T) {
		g := &apiv1.ContainerGroup{Metadata: apiv1.ObjectMeta{Name: "probed"}, Spec: apiv1.ContainerGroupSpec{Containers: []apiv1.Container{
			{Name: "live", Image: busybox,
				Command:       []string{"sh", "-c", "mkdir -p /srv && echo ok > /srv/healthz && httpd -p 8080 -h /srv && sleep 2 && rm /srv/healthz && sleep 3600"},
				LivenessProbe: &apiv1.Probe{HTTPGet: &apiv1.HTTPGetAction{Path: "/healthz", Port: 8080}, PeriodSeconds: 1, FailureThreshold: 2}},
			{Name: "ready", Image: busybox,
				Command:        []string{"sh", "-c", "sleep 2; touch /tmp/ready; sleep 3; rm /tmp/ready; sleep 3600"},
				ReadinessProbe: &apiv1.Probe{Exec: &apiv1.ExecAction{Command: []string{"test", "-f", "/tmp/ready"}}, PeriodSeconds: 1}},
		}}}
		id := createGroup(t, srv, g)
		running := srv.WaitGroup(t, id, "Running", inState(apiv1.StateRunning))
		if running.Status.Containers[1].Ready {
			t.Fatal("the readiness-probed container was ready before its first success")
		}
		ready := func(want bool) func(*apiv1.ContainerGroup) bool {
			return func(g *apiv1.ContainerGroup) bool {
				return len(g.Status.Containers) == 2 && g.Status.Containers[1].Ready == want
			}
		}
		srv.WaitGroup(t, id, "the ready container becomes ready", ready(true))
		srv.WaitGroup(t, id, "and unready again", ready(false))
		restarted := srv.WaitGroup(t, id, "the live container restarted by its liveness probe", func(g *apiv1.ContainerGroup) bool {
			c := g.Status.Containers[0]
			return c.RestartCount >= 1 && c.LastState.Terminated != nil
		})
		if restarted.Status.Containers[1].RestartCount != 0 {
			t.Fatalf("the readiness probe restarted its container: %+v", restarted.Status.Containers[1])
		}
		evs, err := srv.Admin.GroupEvents(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		unhealthy := 0
		for _, ev := range evs {
			if ev.Reason == "Unhealthy" {
				unhealthy++
			}
		}
		if unhealthy == 0 {
			t.Fatalf("no Unhealthy event among %d", len(evs))
		}
	})

	t.Run("security context: user, read-only root, capabilities, runAsNonRoot", func(t *testing.T) {
		uid, no, yes := int64(1000), false, true
		g := &apiv1.ContainerGroup{Metadata: apiv1.ObjectMeta{Name: "secure"}, Spec: apiv1.ContainerGroupSpec{Containers: []apiv1.Container{
			{Name: "user", Image: busybox, Command: []string{"sh", "-c", "echo uid=$(id -u) gid=$(id -g); sleep 3600"},
				SecurityContext: &apiv1.SecurityContext{RunAsUser: &uid, RunAsGroup: &uid, AllowPrivilegeEscalation: &no}},
			{Name: "ro", Image: busybox, Command: []string{"sh", "-c", "touch /probe 2>/dev/null && echo writable || echo read-only; sleep 3600"},
				SecurityContext: &apiv1.SecurityContext{ReadOnlyRootFilesystem: true}},
			{Name: "caps", Image: busybox, Command: []string{"sh", "-c", "grep CapEff /proc/self/status; sleep 3600"},
				SecurityContext: &apiv1.SecurityContext{Capabilities: &apiv1.Capabilities{Drop: []string{"ALL"}}}},
			{Name: "nonroot", Image: busybox, Command: []string{"sleep", "3600"},
				SecurityContext: &apiv1.SecurityContext{RunAsNonRoot: &yes}},
		}}}
		id := createGroup(t, srv, g)
		running := srv.WaitGroup(t, id, "Running with the refused container waiting", func(g *apiv1.ContainerGroup) bool {
			return g.Status.State == apiv1.StateRunning && len(g.Status.Containers) == 4 && g.Status.Containers[3].State.Waiting != nil &&
				g.Status.Containers[3].State.Waiting.Reason == "CreateContainerConfigError"
		})
		if !strings.Contains(running.Status.Containers[3].State.Waiting.Message, "runs as root") {
			t.Fatalf("waiting message %q", running.Status.Containers[3].State.Waiting.Message)
		}
		for name, want := range map[string]string{"user": "stdout F uid=1000 gid=1000", "ro": "stdout F read-only", "caps": "CapEff:\t0000000000000000"} {
			logFile := filepath.Join(bed.Containerd.LogDir, id, name, "0.log")
			poll.Eventually(t, 30*time.Second, name+"'s log", func() error {
				data, err := os.ReadFile(logFile)
				if err != nil {
					return err
				}
				if !strings.Contains(string(data), want) {
					return fmt.Errorf("log %q lacks %q", data, want)
				}
				return nil
			})
		}
		poll.Eventually(t, 30*time.Second, "the runAsNonRoot container is refused with a reason", func() error {
			evs, err := srv.Admin.GroupEvents(ctx, id)
			if err != nil {
				return err
			}
			for _, ev := range evs {
				if ev.Reason == "Failed" && strings.Contains(ev.Message, "runAsNonRoot") {
					return nil
				}
			}
			return fmt.Errorf("no event about runAsNonRoot among %d", len(evs))
		})
		if n := 0; true {
			for _, c := range containersOf(t, rt, id) {
				if c.Labels[LabelContainer] == "nonroot" {
					n++
				}
			}
			if n != 0 {
				t.Fatalf("the runAsNonRoot container was created as root (%d)", n)
			}
		}
		if _, err := srv.Admin.DeleteGroup(ctx, id, client.DeleteOptions{Force: true}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("init containers run in order and a failing one blocks the app", func(t *testing.T) {
		g := &apiv1.ContainerGroup{Metadata: apiv1.ObjectMeta{Name: "init"}, Spec: apiv1.ContainerGroupSpec{
			RestartPolicy: apiv1.RestartNever,
			InitContainers: []apiv1.Container{
				{Name: "first", Image: busybox, Command: []string{"sh", "-c", "sleep 0.3"}},
				{Name: "second", Image: busybox, Command: []string{"sh", "-c", "sleep 0.3"}},
			},
			Containers: []apiv1.Container{{Name: "app", Image: busybox, Command: []string{"true"}}},
		}}
		id := createGroup(t, srv, g)
		done := srv.WaitGroup(t, id, "Succeeded", inState(apiv1.StateSucceeded))
		first, second := done.Status.InitContainers[0].State.Terminated, done.Status.InitContainers[1].State.Terminated
		if first == nil || second == nil || second.StartedAt.Before(first.FinishedAt) {
			t.Fatalf("init containers not in order: %+v %+v", first, second)
		}

		g.Metadata.Name = "init-fails"
		g.Spec.InitContainers[1].Command = []string{"sh", "-c", "exit 7"}
		id = createGroup(t, srv, g)
		failed := srv.WaitGroup(t, id, "Failed", inState(apiv1.StateFailed))
		if failed.Status.Reason != "InitContainerFailed" || failed.Status.InitContainers[1].State.Terminated.ExitCode != 7 {
			t.Fatalf("failed group status %+v", failed.Status)
		}
		if app := failed.Status.Containers; len(app) != 0 && app[0].ContainerID != "" {
			t.Fatalf("the app container ran after a failed init container: %+v", app)
		}
	})

	t.Run("a memory hog is OOMKilled and reported so", func(t *testing.T) {
		g := &apiv1.ContainerGroup{Metadata: apiv1.ObjectMeta{Name: "hog"}, Spec: apiv1.ContainerGroupSpec{
			RestartPolicy: apiv1.RestartNever,
			Containers: []apiv1.Container{{Name: "hog", Image: busybox, Memory: 0.0625,
				Command: []string{"sh", "-c", "x=aaaaaaaaaaaaaaaa; while :; do x=$x$x; done"}}},
		}}
		id := createGroup(t, srv, g)
		failed := srv.WaitGroup(t, id, "Failed", inState(apiv1.StateFailed))
		term := failed.Status.Containers[0].State.Terminated
		if term == nil || term.Reason != "OOMKilled" {
			t.Fatalf("hog ended with %+v, want reason OOMKilled", term)
		}
	})

	t.Run("streams", func(t *testing.T) { testStreams(t, bed, srv, rt) })
	t.Run("lifecycle", func(t *testing.T) { testLifecycle(t, bed, srv) })
	t.Run("registries", func(t *testing.T) { testRegistries(t, bed, srv) })
	t.Run("hardening", func(t *testing.T) { testHardening(t, bed, srv, rt) })
	t.Run("dns", func(t *testing.T) { testDNS(t, bed, srv, rt) })
	t.Run("services", func(t *testing.T) { testServices(t, bed, srv, rt) })
}

// containerdBed is a test bed with containerd, a server with the bed's
// vSwitch, and a CRI client of the bed's containerd.
func containerdBed(t testing.TB) (*testbed.Bed, *servertest.Server, *runtime.CRI) {
	t.Helper()
	bed := testbed.New(t, testbed.Options{Containerd: true})
	srv := servertest.Start(t)
	srv.VSwitch(t, "vsw-a", "zone-a", bed.Network.VSwitchCIDR.String())
	rt, err := runtime.NewCRI(bed.Containerd.Endpoint, quiet())
	if err != nil {
		t.Fatal(err)
	}
	return bed, srv, rt
}

// startAgentOn runs an agent on the bed's containerd, with plugin (this test
// binary when "") as the eci-cni CNI plugin.
func startAgentOn(t testing.TB, srv *servertest.Server, rt Runtime, bed *testbed.Bed, plugin string) (stop func()) {
	t.Helper()
	return startAgentWith(t, srv, rt, bed, plugin, nil)
}

// startAgentWith is startAgentOn with the config changed by edit.
func startAgentWith(t testing.TB, srv *servertest.Server, rt Runtime, bed *testbed.Bed, plugin string, edit func(*Config)) (stop func()) {
	t.Helper()
	installPlugin(t, bed, plugin)
	res := apiv1.Resources{MilliCPU: 32000, MemoryMiB: 65536, Pods: 200}
	resolvConf := filepath.Join(bed.Dir, "agent-resolv.conf")
	if err := os.WriteFile(resolvConf, []byte(testResolvConf), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		ResolvConf: resolvConf,
		Client:     srv.HostClient(t, "h1"), Runtime: rt, CgroupParent: bed.CgroupParent, LogDir: bed.Containerd.LogDir, StateDir: filepath.Join(bed.Dir, "agent", "state"),
		Host:       apiv1.Host{Metadata: apiv1.ObjectMeta{Name: "h1"}, Spec: apiv1.HostSpec{Zone: "zone-a", Capacity: res, Allocatable: res}},
		CNIConfDir: bed.Containerd.CNIConfDir, NetworkName: bed.Network.AgentNetwork, CNISocket: filepath.Join(bed.Dir, "agent", "cni.sock"),
		VirtualServices:   true,
		RegistryConfigDir: bed.Containerd.CertsDir, RegistryMirrors: map[string][]string{"docker.io": {"http://" + bed.Registry.Host}},
		// The bed's registry is on loopback; registries_test's private one on
		// another address of the host.
		AllowInsecureRegistries: true, AllowedLocalRegistries: []string{bed.Registry.Host, bed.Network.LocalAddr.String()},
		StreamAddress: "127.0.0.1:0", EvictionInterval: time.Second, PidsLimit: testPidsLimit, EphemeralStorageBase: 32 << 20, LogMaxSize: 128 << 10, LogMaxFiles: 3,
	}
	if edit != nil {
		edit(&cfg)
	}
	return runAgent(t, cfg)
}

// installPlugin makes plugin (this test binary when "") the bed's eci-cni.
func installPlugin(t testing.TB, bed *testbed.Bed, plugin string) {
	t.Helper()
	if plugin == "" {
		self, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		plugin = self
	}
	link := filepath.Join(bed.Containerd.CNIBinDir, cni.PluginName)
	_ = os.Remove(link)
	if err := os.Symlink(plugin, link); err != nil {
		t.Fatal(err)
	}
}

func sandboxIP(t *testing.T, rt Runtime, group string) string {
	t.Helper()
	ctx := context.Background()
	sbs, err := rt.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{LabelGroup: group}})
	if err != nil || len(sbs) != 1 {
		t.Fatalf("sandboxes of %s: %d (%v)", group, len(sbs), err)
	}
	st, err := rt.PodSandboxStatus(ctx, sbs[0].Id, false)
	if err != nil {
		t.Fatal(err)
	}
	return st.Status.Network.Ip
}

// groupCgroups lists the cgroup directories of a group in the memory and cpu
// hierarchies (under the bed's cgroup parent).
func groupCgroups(t *testing.T, bed *testbed.Bed, id string) []string {
	t.Helper()
	var out []string
	for _, h := range []string{"memory", "cpu"} {
		p := filepath.Join("/sys/fs/cgroup", h, bed.CgroupParent, id)
		if _, err := os.Stat(p); err == nil {
			out = append(out, p)
		}
	}
	return out
}
