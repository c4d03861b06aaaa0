package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/eci-dev/eci/internal/poll"
)

// More of what a kubelet does, on the virtual node.
func TestMorePodSemantics(t *testing.T) {
	c := start(t)
	ns := "default"
	busybox := c.bed.Registry.Busybox
	user := int64(1000)

	t.Run("a termination message written by a non-root user at its own path, and one from the log", func(t *testing.T) {
		c.createPod(t, ns, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "ends"}, Spec: corev1.PodSpec{
			RestartPolicy:   corev1.RestartPolicyNever,
			SecurityContext: &corev1.PodSecurityContext{RunAsUser: &user, RunAsGroup: &user},
			Containers: []corev1.Container{
				{Name: "written", Image: busybox, TerminationMessagePath: "/tmp/why",
					Command: []string{"sh", "-c", "echo finished as $(id -u) > /tmp/why; exit 3"}},
				{Name: "logged", Image: busybox, TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
					Command: []string{"sh", "-c", "echo panic: the end >&2; exit 1"}},
			}}})
		c.waitPod(t, ns, "ends", "Failed with both messages", 90*time.Second, func(p *corev1.Pod) error {
			if p.Status.Phase != corev1.PodFailed || len(p.Status.ContainerStatuses) != 2 {
				return fmt.Errorf("phase %s", p.Status.Phase)
			}
			want := map[string]string{"written": "finished as 1000\n", "logged": "panic: the end\n"}
			for _, cs := range p.Status.ContainerStatuses {
				if tm := cs.State.Terminated; tm == nil || tm.Message != want[cs.Name] {
					return fmt.Errorf("%s: %+v, want message %q", cs.Name, cs.State, want[cs.Name])
				}
			}
			return nil
		})
	})

	t.Run("postStart exec and preStop exec hooks as another pod sees them, and a postStart httpGet", func(t *testing.T) {
		c.createPod(t, ns, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "observer"}, Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "main", Image: busybox, Command: []string{"sh", "-c",
				"while true; do printf 'HTTP/1.0 200 OK\\r\\n\\r\\nok' | nc -l -p 8080; done"}}}}})
		obs := c.waitPod(t, ns, "observer", "Running", 90*time.Second, running)
		url := "http://" + obs.Status.PodIP + ":8080/"
		grace := int64(30)
		c.createPod(t, ns, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "hooked"}, Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: &grace,
			Containers: []corev1.Container{
				// A server on the pod's own address, answering before the
				// next container starts (its postStart waits for it, and
				// containers start one after another, as on a kubelet).
				{Name: "server", Image: busybox, Command: []string{"sh", "-c",
					"mkdir -p /tmp/www && echo ok > /tmp/www/poststart-http && echo ok > /tmp/www/ready && exec httpd -f -vv -p 8081 -h /tmp/www"},
					Lifecycle: &corev1.Lifecycle{PostStart: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"sh", "-c",
						"for i in $(seq 100); do wget -q -O- http://127.0.0.1:8081/ready && exit 0; sleep 0.1; done; exit 1"}}}}},
				{Name: "exec", Image: busybox, Command: []string{"sleep", "3600"}, Lifecycle: &corev1.Lifecycle{
					PostStart: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"wget", "-q", "-O-", url + "poststart-exec"}}},
					PreStop:   &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"wget", "-q", "-O-", url + "prestop-exec"}}},
				}},
				// An httpGet hook reaches the pod's own address (its host,
				// if named, would be refused): the server above.
				{Name: "http", Image: busybox, Command: []string{"sleep", "3600"}, Lifecycle: &corev1.Lifecycle{
					PostStart: &corev1.LifecycleHandler{HTTPGet: &corev1.HTTPGetAction{Port: intstr.FromInt32(8081), Path: "/poststart-http"}},
				}},
			}}})
		c.waitPod(t, ns, "hooked", "Running", 90*time.Second, running)
		c.logsUntil(t, ns, "observer", []string{"GET /poststart-exec"})
		poll.Eventually(t, 60*time.Second, "the httpGet hook in the server's log", func() error {
			out, err := c.kubectlIn(nil, "logs", "-n", ns, "hooked", "-c", "server")
			if err != nil || !strings.Contains(string(out), "url:/poststart-http") {
				return fmt.Errorf("%v: %s", err, out)
			}
			return nil
		})
		if err := c.kube.CoreV1().Pods(ns).Delete(context.Background(), "hooked", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		c.logsUntil(t, ns, "observer", []string{"GET /prestop-exec"})
	})

	t.Run("the kubelet's safe sysctls are set in the instance", func(t *testing.T) {
		c.createPod(t, ns, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "tuned"}, Spec: corev1.PodSpec{
			SecurityContext: &corev1.PodSecurityContext{Sysctls: []corev1.Sysctl{
				{Name: "net.ipv4.ip_local_port_range", Value: "20000 30000"},
				{Name: "net.ipv4.tcp_keepalive_time", Value: "600"},
				{Name: "net.ipv4.ip_unprivileged_port_start", Value: "80"},
			}},
			Containers: []corev1.Container{{Name: "main", Image: busybox, Command: []string{"sh", "-c",
				"cat /proc/sys/net/ipv4/ip_local_port_range /proc/sys/net/ipv4/tcp_keepalive_time /proc/sys/net/ipv4/ip_unprivileged_port_start; sleep 3600"}}}}})
		c.waitPod(t, ns, "tuned", "Running", 90*time.Second, running)
		logs := c.logsUntil(t, ns, "tuned", []string{"600", "80"})
		if f := strings.Fields(logs); len(f) != 4 || f[0] != "20000" || f[1] != "30000" {
			t.Errorf("the instance's sysctls: %q", logs)
		}
	})

	t.Run("each container has its own process namespace, unless shareProcessNamespace", func(t *testing.T) {
		share, zero := true, int64(0)
		for _, p := range []struct {
			name  string
			share *bool
		}{{"own-pids", nil}, {"shared-pids", &share}} {
			c.createPod(t, ns, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: p.name}, Spec: corev1.PodSpec{
				ShareProcessNamespace: p.share, TerminationGracePeriodSeconds: &zero,
				Containers: []corev1.Container{
					{Name: "a", Image: busybox, Command: []string{"sleep", "3602"}},
					{Name: "b", Image: busybox, Command: []string{"sleep", "3603"}},
				}}})
		}
		for _, name := range []string{"own-pids", "shared-pids"} {
			c.waitPod(t, ns, name, "Running", 90*time.Second, running)
			out, err := c.kubectlIn(nil, "exec", "-n", ns, name, "-c", "b", "--", "ps", "-o", "pid,args")
			if err != nil {
				t.Fatalf("ps in %s: %v: %s", name, err, out)
			}
			var procs []string
			for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n")[1:] {
				if f := strings.Fields(l); len(f) > 1 && f[1] != "ps" {
					procs = append(procs, strings.Join(f, " "))
				}
			}
			switch {
			// PID 1 is the container's own process; a's is not there.
			case name == "own-pids" && !slices.Equal(procs, []string{"1 sleep 3603"}):
				t.Errorf("%s: container b sees %q, want only itself as PID 1", name, procs)
			// PID 1 is the sandbox's pause (the bed's is a shell script);
			// a's sleep is seen.
			case name == "shared-pids" && (len(procs) == 0 || !strings.HasPrefix(procs[0], "1 /bin/sh -c trap") ||
				!slices.ContainsFunc(procs, func(p string) bool { return strings.HasSuffix(p, " sleep 3602") })):
				t.Errorf("%s: container b sees %q, want the pause as PID 1 and a's sleep 3602", name, procs)
			}
		}
	})
}
