package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/client"
	"github.com/eci-dev/eci/internal/errdefs"
	"github.com/eci-dev/eci/internal/poll"
	"github.com/eci-dev/eci/internal/server/servertest"
	"github.com/eci-dev/eci/internal/testbed"
)

// Lifecycle hooks and activeDeadlineSeconds on containerd.
func testLifecycle(t *testing.T, bed *testbed.Bed, srv *servertest.Server) {
	ctx := context.Background()
	busybox := bed.Registry.Busybox
	sh := func(script string) *apiv1.Handler {
		return &apiv1.Handler{Exec: &apiv1.ExecAction{Command: []string{"sh", "-c", script}}}
	}
	hasEvent := func(id, reason string) error {
		evs, err := srv.Admin.GroupEvents(ctx, id)
		if err != nil {
			return err
		}
		for _, ev := range evs {
			if ev.Reason == reason {
				return nil
			}
		}
		return fmt.Errorf("no %s event among %d", reason, len(evs))
	}

	t.Run("postStart runs in the container before it counts as started; a failing one kills it", func(t *testing.T) {
		g := &apiv1.ContainerGroup{Metadata: apiv1.ObjectMeta{Name: "hooks"}, Spec: apiv1.ContainerGroupSpec{Containers: []apiv1.Container{
			{Name: "main", Image: busybox, Command: []string{"sh", "-c", "while [ ! -f /tmp/post ]; do sleep 0.05; done; echo saw-$(cat /tmp/post); sleep 3600"},
				Lifecycle: &apiv1.Lifecycle{PostStart: sh("echo post-start > /tmp/post")}},
			{Name: "bad", Image: busybox, Command: []string{"sleep", "3600"}, Lifecycle: &apiv1.Lifecycle{PostStart: sh("exit 1")}},
		}}}
		id := createGroup(t, srv, g)
		poll.Eventually(t, 30*time.Second, "the main container saw the file its postStart hook wrote", func() error {
			data, err := os.ReadFile(filepath.Join(bed.Containerd.LogDir, id, "main", "0.log"))
			if err != nil || !strings.Contains(string(data), "saw-post-start") {
				return fmt.Errorf("log %q (%v)", data, err)
			}
			return nil
		})
		srv.WaitGroup(t, id, "the container with a failing postStart restarted", func(g *apiv1.ContainerGroup) bool {
			return len(g.Status.Containers) == 2 && g.Status.Containers[1].RestartCount >= 1
		})
		poll.Eventually(t, 30*time.Second, "a FailedPostStartHook event", func() error { return hasEvent(id, "FailedPostStartHook") })
		if _, err := srv.Admin.DeleteGroup(ctx, id, client.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("preStop runs before the container is stopped on delete, inside the grace period", func(t *testing.T) {
		g := &apiv1.ContainerGroup{Metadata: apiv1.ObjectMeta{Name: "prestop"}, Spec: apiv1.ContainerGroupSpec{Containers: []apiv1.Container{
			{Name: "main", Image: busybox, Command: []string{"sh", "-c", "trap 'echo got-term' TERM; while :; do if [ -f /tmp/prestop ]; then echo prestop-ran; rm /tmp/prestop; fi; sleep 0.05; done"},
				Lifecycle: &apiv1.Lifecycle{PreStop: sh("touch /tmp/prestop; sleep 0.5")}},
		}}}
		id := createGroup(t, srv, g)
		srv.WaitGroup(t, id, "Running", inState(apiv1.StateRunning))
		grace := int64(3)
		start := time.Now()
		if _, err := srv.Admin.DeleteGroup(ctx, id, client.DeleteOptions{GracePeriodSeconds: &grace}); err != nil {
			t.Fatal(err)
		}
		// The container survives SIGTERM (it traps it): it lives on for the
		// 2 s left of the grace period, its log holding the hook's line, then
		// the signal's.
		logFile := filepath.Join(bed.Containerd.LogDir, id, "main", "0.log")
		var seen string
		poll.Eventually(t, 30*time.Second, "the preStop hook ran, then the stop signal came", func() error {
			data, err := os.ReadFile(logFile)
			if err == nil {
				seen = string(data)
			}
			hook, term := strings.Index(seen, "stdout F prestop-ran"), strings.Index(seen, "stdout F got-term")
			if hook < 0 || term < hook {
				return fmt.Errorf("log %q (last read: %v)", seen, err)
			}
			return nil
		})
		poll.Eventually(t, 30*time.Second, "the group is gone", func() error {
			if _, err := srv.Admin.GetGroup(ctx, id); !errdefs.IsNotFound(err) {
				return fmt.Errorf("still there (%v)", err)
			}
			return nil
		})
		if took := time.Since(start); took < 2*time.Second {
			t.Errorf("the group was gone %s after a delete with 3 s grace of a container ignoring SIGTERM", took)
		}
	})

	t.Run("a memory emptyDir is a tmpfs of its sizeLimit, unmounted with the group", func(t *testing.T) {
		g := &apiv1.ContainerGroup{Metadata: apiv1.ObjectMeta{Name: "memvol"}, Spec: apiv1.ContainerGroupSpec{
			Volumes: []apiv1.Volume{{Name: "mem", EmptyDir: &apiv1.EmptyDirVolume{Medium: "Memory", SizeLimitMiB: 16}}},
			Containers: []apiv1.Container{{Name: "main", Image: busybox, VolumeMounts: []apiv1.VolumeMount{{Name: "mem", MountPath: "/mem"}},
				Command: []string{"sh", "-c", "grep ' /mem ' /proc/mounts; dd if=/dev/zero of=/mem/f bs=1M count=20 2>/dev/null; echo dd-exit=$?; sleep 3600"}}},
		}}
		id := createGroup(t, srv, g)
		poll.Eventually(t, 30*time.Second, "the container sees a 16 MiB tmpfs at /mem and can't write 20 MiB to it", func() error {
			data, err := os.ReadFile(filepath.Join(bed.Containerd.LogDir, id, "main", "0.log"))
			if err != nil || !strings.Contains(string(data), "tmpfs /mem tmpfs") || !strings.Contains(string(data), "size=16384k") || !strings.Contains(string(data), "dd-exit=1") {
				return fmt.Errorf("log %q (%v)", data, err)
			}
			return nil
		})
		if _, err := srv.Admin.DeleteGroup(ctx, id, client.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		poll.Eventually(t, 30*time.Second, "no mount of the group is left", func() error {
			if _, err := srv.Admin.GetGroup(ctx, id); !errdefs.IsNotFound(err) {
				return fmt.Errorf("group still there (%v)", err)
			}
			data, err := os.ReadFile("/proc/self/mountinfo")
			if err != nil || strings.Contains(string(data), id) {
				return fmt.Errorf("a mount of %s is left (%v)", id, err)
			}
			return nil
		})
	})

	t.Run("hostAliases and the group's own name in /etc/hosts; sysctls", func(t *testing.T) {
		g := &apiv1.ContainerGroup{Metadata: apiv1.ObjectMeta{Name: "hosts"}, Spec: apiv1.ContainerGroupSpec{
			Hostname:    "web-0",
			HostAliases: []apiv1.HostAlias{{IP: "198.18.0.9", Hostnames: []string{"db.internal", "db"}}},
			Sysctls:     []apiv1.Sysctl{{Name: "net.ipv4.tcp_keepalive_time", Value: "600"}},
			Containers: []apiv1.Container{{Name: "main", Image: busybox,
				Command: []string{"sh", "-c", "cat /etc/hosts; echo keepalive=$(cat /proc/sys/net/ipv4/tcp_keepalive_time); sleep 3600"}}},
		}}
		id := createGroup(t, srv, g)
		running := srv.WaitGroup(t, id, "Running", inState(apiv1.StateRunning))
		poll.Eventually(t, 30*time.Second, "/etc/hosts and the sysctl as the container sees them", func() error {
			data, err := os.ReadFile(filepath.Join(bed.Containerd.LogDir, id, "main", "0.log"))
			log := string(data)
			for _, want := range []string{"F 198.18.0.9\tdb.internal\tdb", "F " + running.Status.IP + "\tweb-0", "F 127.0.0.1\tlocalhost", "F keepalive=600"} {
				if !strings.Contains(log, want) {
					return fmt.Errorf("no %q in %q (%v)", want, log, err)
				}
			}
			return nil
		})
		if _, err := srv.Admin.DeleteGroup(ctx, id, client.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	})

	// This machine's kernel has no NFS client (no nfs in /proc/filesystems, no
	// modules to load), so only the failure is tested here: it must be told.
	t.Run("an NFS volume that can't be mounted keeps the group Pending with FailedMount", func(t *testing.T) {
		if nfsKernel() {
			t.Log("this kernel has an NFS client; the failure checked here is a refused server instead")
		}
		g := &apiv1.ContainerGroup{Metadata: apiv1.ObjectMeta{Name: "nfs"}, Spec: apiv1.ContainerGroupSpec{
			Volumes: []apiv1.Volume{{Name: "share", NFS: &apiv1.NFSVolume{Server: "127.0.0.1", Path: "/exports/none"}}},
			Containers: []apiv1.Container{{Name: "main", Image: busybox, Command: []string{"sleep", "3600"},
				VolumeMounts: []apiv1.VolumeMount{{Name: "share", MountPath: "/share"}}}},
		}}
		id := createGroup(t, srv, g)
		pending := srv.WaitGroup(t, id, "Pending with FailedMount", func(g *apiv1.ContainerGroup) bool { return g.Status.Reason == "FailedMount" })
		if pending.Status.State != apiv1.StatePending || !strings.Contains(pending.Status.Message, "mount NFS 127.0.0.1:/exports/none") {
			t.Fatalf("%s %s %q", pending.Status.State, pending.Status.Reason, pending.Status.Message)
		}
		poll.Eventually(t, 30*time.Second, "a FailedMount event", func() error { return hasEvent(id, "FailedMount") })
		if _, err := srv.Admin.DeleteGroup(ctx, id, client.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("activeDeadlineSeconds fails the group with DeadlineExceeded", func(t *testing.T) {
		deadline := int64(2)
		g := &apiv1.ContainerGroup{Metadata: apiv1.ObjectMeta{Name: "deadline"}, Spec: apiv1.ContainerGroupSpec{ActiveDeadlineSeconds: &deadline,
			Containers: []apiv1.Container{{Name: "main", Image: busybox, Command: []string{"sleep", "3600"}}}}}
		id := createGroup(t, srv, g)
		failed := srv.WaitGroup(t, id, "Failed", inState(apiv1.StateFailed))
		if failed.Status.Reason != "DeadlineExceeded" || failed.Status.RunningAt == nil {
			t.Fatalf("ended %s %q after running from %v", failed.Status.Reason, failed.Status.Message, failed.Status.RunningAt)
		}
		if took := failed.Status.FinishedAt.Sub(*failed.Status.PendingAt); took < 2*time.Second || took > 5*time.Second {
			t.Errorf("failed %s after it became Pending, want about 2 s", took)
		}
		poll.Eventually(t, 30*time.Second, "a DeadlineExceeded event", func() error { return hasEvent(id, "DeadlineExceeded") })
	})
}

func nfsKernel() bool {
	data, _ := os.ReadFile("/proc/filesystems")
	return strings.Contains(string(data), "nfs")
}
