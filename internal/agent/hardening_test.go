package agent

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/client"
	"github.com/eci-dev/eci/internal/errdefs"
	"github.com/eci-dev/eci/internal/poll"
	"github.com/eci-dev/eci/internal/server/servertest"
	"github.com/eci-dev/eci/internal/testbed"
)

// testPidsLimit is the agent's --pids-limit in these tests: low, so that a
// fork bomb reaches it at once.
const testPidsLimit = 512

// What a tenant's instance can try against its host, on containerd: each
// subtest fails without its fix.
func testHardening(t *testing.T, bed *testbed.Bed, srv *servertest.Server, rt Runtime) {
	ctx := context.Background()
	busybox := bed.Registry.Busybox
	remove := func(t *testing.T, id string) {
		t.Helper()
		if _, err := srv.Admin.DeleteGroup(ctx, id, client.DeleteOptions{Force: true}); err != nil && !errdefs.IsNotFound(err) {
			t.Error(err)
		}
		poll.Eventually(t, 30*time.Second, "group "+id+" gone", func() error {
			if _, err := srv.Admin.GetGroup(ctx, id); !errdefs.IsNotFound(err) {
				return fmt.Errorf("still there (%v)", err)
			}
			return nil
		})
	}
	logOf := func(id, container string) func() (string, error) {
		return func() (string, error) {
			data, err := os.ReadFile(filepath.Join(bed.Containerd.LogDir, id, container, "0.log"))
			return string(data), err
		}
	}
	waitLog := func(t *testing.T, read func() (string, error), want string) {
		t.Helper()
		poll.Eventually(t, 30*time.Second, "log shows "+want, func() error {
			got, err := read()
			if err != nil || !strings.Contains(got, want) {
				return fmt.Errorf("log %q (%v)", got, err)
			}
			return nil
		})
	}

	t.Run("subPath: a symlink in the volume can't take a mount out of it; symlinks inside it and missing paths work", func(t *testing.T) {
		data := func(sub, at string) []apiv1.VolumeMount {
			return []apiv1.VolumeMount{{Name: "data", MountPath: at, SubPath: sub}}
		}
		g := &apiv1.ContainerGroup{Metadata: apiv1.ObjectMeta{Name: "subpaths"}, Spec: apiv1.ContainerGroupSpec{
			Volumes: []apiv1.Volume{
				{Name: "data", EmptyDir: &apiv1.EmptyDirVolume{}},
				{Name: "conf", Files: &apiv1.FilesVolume{Files: []apiv1.File{{Path: "app.conf", Content: []byte("version=1")}}}},
			},
			InitContainers: []apiv1.Container{{Name: "plant", Image: busybox, VolumeMounts: data("", "/data"), Command: []string{"sh", "-c",
				"ln -s / /data/x && ln -s ../../../../../../../../.. /data/up && ln -s /proc/self/root /data/magic && " +
					"mkdir /data/ok && echo inside > /data/ok/f && ln -s ok /data/rel"}}},
			Containers: []apiv1.Container{
				{Name: "escape", Image: busybox, VolumeMounts: data("x", "/host"), Command: []string{"sh", "-c", "ls /host/etc; sleep 3600"}},
				{Name: "up", Image: busybox, VolumeMounts: data("up", "/host"), Command: []string{"sh", "-c", "ls /host/etc; sleep 3600"}},
				{Name: "magic", Image: busybox, VolumeMounts: data("magic", "/host"), Command: []string{"sh", "-c", "ls /host/etc; sleep 3600"}},
				{Name: "rel", Image: busybox, Command: []string{"sh", "-c", "cat /mnt/f /etc/app.conf; echo; sleep 3600"},
					VolumeMounts: []apiv1.VolumeMount{{Name: "data", MountPath: "/mnt", SubPath: "rel"}, {Name: "conf", MountPath: "/etc/app.conf", SubPath: "app.conf"}}},
				{Name: "made", Image: busybox, VolumeMounts: data("new/dir", "/new"), Command: []string{"sh", "-c", "echo made > /new/f; sleep 3600"}},
			},
		}}
		id := createGroup(t, srv, g)
		defer remove(t, id)
		waiting := srv.WaitGroup(t, id, "Running with the three escapes waiting", func(g *apiv1.ContainerGroup) bool {
			if g.Status.State != apiv1.StateRunning || len(g.Status.Containers) != 5 {
				return false
			}
			for _, c := range g.Status.Containers[:3] {
				if w := c.State.Waiting; w == nil || w.Reason != "CreateContainerConfigError" {
					return false
				}
			}
			return true
		})
		for _, c := range waiting.Status.Containers[:3] {
			if msg := c.State.Waiting.Message; !strings.Contains(msg, "leads outside the volume") || !strings.Contains(msg, `volume "data"`) {
				t.Errorf("container %s waits with %q: want the subPath and why", c.Name, msg)
			}
		}
		for _, c := range containersOf(t, rt, id) {
			if n := c.Labels[LabelContainer]; n == "escape" || n == "up" || n == "magic" {
				t.Errorf("container %s was created with the host's / in it", n)
			}
		}
		waitLog(t, logOf(id, "rel"), "stdout F inside")
		waitLog(t, logOf(id, "rel"), "stdout F version=1")
		// Another local user of the host reads no tenant's files.
		secretFile := filepath.Join(bed.Dir, "agent", "state", "groups", id, "volumes", "conf", "app.conf")
		if _, err := os.Stat(secretFile); err != nil {
			t.Fatalf("the files volume: %v", err)
		}
		peek := exec.Command("cat", secretFile)
		peek.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		if out, err := peek.CombinedOutput(); err == nil || !strings.Contains(string(out), "Permission denied") {
			t.Fatalf("user nobody read a group's files volume: %q (%v)", out, err)
		}
		poll.Eventually(t, 30*time.Second, "the missing subPath was made inside the volume and written through", func() error {
			got, err := os.ReadFile(filepath.Join(bed.Dir, "agent", "state", "groups", id, "volumes", "data", "new", "dir", "f"))
			if err != nil || strings.TrimSpace(string(got)) != "made" {
				return fmt.Errorf("%q (%v)", got, err)
			}
			return nil
		})
	})

	t.Run("a fork bomb stays inside its instance: the host and other instances keep working", func(t *testing.T) {
		small := func(name string, c apiv1.Container) *apiv1.ContainerGroup {
			return &apiv1.ContainerGroup{Metadata: apiv1.ObjectMeta{Name: name}, Spec: apiv1.ContainerGroupSpec{CPU: 0.5, Memory: 1, Containers: []apiv1.Container{c}}}
		}
		web := apiv1.Container{Name: "web", Image: busybox, Command: []string{"sh", "-c", "mkdir -p /srv && echo up > /srv/index.html && exec httpd -f -p 8080 -h /srv"}}
		bystander := srv.WaitGroup(t, createGroup(t, srv, small("bystander", web)), "Running", inState(apiv1.StateRunning))
		defer remove(t, bystander.Metadata.ID)
		get := func(ip string) error {
			resp, err := (&http.Client{Timeout: 2 * time.Second}).Get("http://" + ip + ":8080/index.html")
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if strings.TrimSpace(string(body)) != "up" {
				return fmt.Errorf("answer %q", body)
			}
			return nil
		}
		poll.Eventually(t, 30*time.Second, "the bystander serves", func() error { return get(bystander.Status.IP) })

		bomb := srv.WaitGroup(t, createGroup(t, srv, small("bomb", apiv1.Container{Name: "bomb", Image: busybox,
			Command: []string{"sh", "-c", "while [ ! -f /tmp/go ]; do sleep 0.1; done; exec 2>/dev/null; b(){ b|b& }; b; sleep 3600"}})), "Running", inState(apiv1.StateRunning))
		defer remove(t, bomb.Metadata.ID)
		pids := filepath.Join("/sys/fs/cgroup/pids", bed.CgroupParent, bomb.Metadata.ID)
		limit, err := os.ReadFile(filepath.Join(pids, "pids.max"))
		if err != nil || strings.TrimSpace(string(limit)) != strconv.Itoa(testPidsLimit) {
			t.Fatalf("the group's pids.max is %q (%v), want %d: not starting the bomb, it would reach the host", limit, err, testPidsLimit)
		}
		if _, _, err := rt.ExecSync(ctx, bomb.Status.Containers[0].ContainerID, []string{"touch", "/tmp/go"}, 10*time.Second); err != nil {
			t.Fatal(err)
		}
		poll.Eventually(t, 30*time.Second, "the bomb reached its limit (forks refused)", func() error {
			// cgroup v1 counts refused forks in the cgroup that forked (the
			// container's, under the group's); v2 in every one up to the limit.
			refused := 0
			_ = filepath.WalkDir(pids, func(p string, d fs.DirEntry, err error) error {
				if err == nil && d.Name() == "pids.events" {
					ev, _ := os.ReadFile(p)
					var n int
					if _, err := fmt.Sscanf(string(ev), "max %d", &n); err == nil {
						refused += n
					}
				}
				return nil
			})
			cur, _ := os.ReadFile(filepath.Join(pids, "pids.current"))
			if refused == 0 {
				return fmt.Errorf("no fork refused yet; pids.current %s", strings.TrimSpace(string(cur)))
			}
			return nil
		})
		newcomer := createGroup(t, srv, small("newcomer", web))
		defer remove(t, newcomer)
		poll.Consistently(t, 2*time.Second, "the bomb contained", func() error {
			cur, err := os.ReadFile(filepath.Join(pids, "pids.current"))
			n, _ := strconv.Atoi(strings.TrimSpace(string(cur)))
			if err != nil || n > testPidsLimit {
				return fmt.Errorf("pids.current %q (%v), over the limit %d", cur, err, testPidsLimit)
			}
			if err := get(bystander.Status.IP); err != nil {
				return fmt.Errorf("the bystander stopped serving during the bomb: %v", err)
			}
			if err := exec.Command("true").Run(); err != nil {
				return fmt.Errorf("the host can't fork during the bomb: %v", err)
			}
			return nil
		})
		started := srv.WaitGroup(t, newcomer, "a new instance starts during the bomb", inState(apiv1.StateRunning))
		poll.Eventually(t, 30*time.Second, "the new instance serves", func() error { return get(started.Status.IP) })
		if _, _, err := rt.ExecSync(ctx, bystander.Status.Containers[0].ContainerID, []string{"true"}, 10*time.Second); err != nil {
			t.Fatalf("exec in the bystander during the bomb: %v", err)
		}
	})

	t.Run("httpGet probes and hooks don't follow a redirect to another host", func(t *testing.T) {
		var stolen atomic.Int32
		steal := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { stolen.Add(1) }))
		defer steal.Close()
		_, port, _ := net.SplitHostPort(steal.Listener.Addr().String())
		script := "#!/bin/sh\nprintf 'HTTP/1.0 302 Found\\r\\nLocation: http://127.0.0.1:" + port + "/steal\\r\\nContent-Length: 0\\r\\n\\r\\n'\n"
		mode := int32(0o755)
		redirect := &apiv1.HTTPGetAction{Path: "/cgi-bin/r", Port: 8080}
		grace := int64(5)
		g := &apiv1.ContainerGroup{Metadata: apiv1.ObjectMeta{Name: "redirects"}, Spec: apiv1.ContainerGroupSpec{
			TerminationGracePeriodSeconds: &grace,
			Volumes:                       []apiv1.Volume{{Name: "cgi", Files: &apiv1.FilesVolume{Files: []apiv1.File{{Path: "r", Content: []byte(script), Mode: &mode}}}}},
			Containers: []apiv1.Container{{Name: "web", Image: busybox, Command: []string{"httpd", "-f", "-p", "8080", "-h", "/srv"},
				VolumeMounts:   []apiv1.VolumeMount{{Name: "cgi", MountPath: "/srv/cgi-bin"}},
				ReadinessProbe: &apiv1.Probe{HTTPGet: redirect, PeriodSeconds: 1},
				LivenessProbe:  &apiv1.Probe{HTTPGet: redirect, PeriodSeconds: 1},
				Lifecycle:      &apiv1.Lifecycle{PreStop: &apiv1.Handler{HTTPGet: redirect}},
			}},
		}}
		id := createGroup(t, srv, g)
		ready := srv.WaitGroup(t, id, "ready: the redirect itself is a success, as for the kubelet", func(g *apiv1.ContainerGroup) bool {
			return len(g.Status.Containers) == 1 && g.Status.Containers[0].Ready
		})
		poll.Consistently(t, 3*time.Second, "probes succeed on a redirect (a few more of each kind)", func() error {
			cur, err := srv.Admin.GetGroup(ctx, id)
			if err != nil {
				return err
			}
			if c := cur.Status.Containers[0]; c.RestartCount != 0 || !c.Ready {
				return fmt.Errorf("a redirect failed a probe: %+v (ready at first: %v)", c, ready.Status.Containers[0].Ready)
			}
			return nil
		})
		srv.DeleteGroup(t, id, 30*time.Second, "group gone after its preStop hook")
		if n := stolen.Load(); n != 0 {
			t.Fatalf("the agent followed the instance's redirect to a host address %d times", n)
		}
	})
}
