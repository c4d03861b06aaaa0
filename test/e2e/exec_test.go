package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/remotecommand"
	utilexec "k8s.io/client-go/util/exec"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/client"
	"github.com/eci-dev/eci/internal/vnode"
)

// runExec runs cmd with its stdout and stderr going to out and errOut.
type runExec func(ctx context.Context, cmd []string, out, errOut io.Writer) error

// TestExecOutputIsComplete runs many quick commands that print to stdout
// and stderr and exit (0 or not), through the apiserver (kubectl exec: the
// apiserver, the vnode's kubelet API, the instance service, the agent,
// containerd) and straight through the instance API, and checks that every
// one delivers all of its output and its exit code. The instance API's
// client also takes one buffer for both streams (client-go copies them
// concurrently; a caller of client-go's executor must give two writers, or
// one safe for that). ECI_EXEC_N sets the number of execs per path (default
// 50); ECI_EXEC_LOAD=N adds N busy loops on the machine while they run.
func TestExecOutputIsComplete(t *testing.T) {
	c := start(t)
	ctx := context.Background()
	ns := "default"
	c.createPod(t, ns, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "execs"}, Spec: corev1.PodSpec{
		Containers: []corev1.Container{{Name: "main", Image: c.bed.Registry.Busybox, Command: []string{"sleep", "3600"}}}}})
	pod := c.waitPod(t, ns, "execs", "Running", 60*time.Second, running)
	groups, err := c.eci.ListGroups(ctx, client.ListOptions{LabelSelector: vnode.LabelPodUID + "=" + string(pod.UID)})
	if err != nil || len(groups.Items) != 1 {
		t.Fatalf("the pod's group: %v %v", groups, err)
	}
	id := groups.Items[0].Metadata.ID
	n := 50
	if v, err := strconv.Atoi(os.Getenv("ECI_EXEC_N")); err == nil && v > 0 {
		n = v
	}
	if v, err := strconv.Atoi(os.Getenv("ECI_EXEC_LOAD")); err == nil && v > 0 {
		burn(t, v, 10*time.Minute)
	}
	paths := []struct {
		name   string
		run    runExec
		shared bool // one buffer for stdout and stderr
	}{
		{"kubectl exec", func(ctx context.Context, cmd []string, out, errOut io.Writer) error {
			req := c.kube.CoreV1().RESTClient().Post().Resource("pods").Namespace(ns).Name("execs").SubResource("exec").
				VersionedParams(&corev1.PodExecOptions{Container: "main", Command: cmd, Stdout: true, Stderr: true}, scheme.ParameterCodec)
			ex, err := remotecommand.NewSPDYExecutor(c.bed.Kube.Config, "POST", req.URL())
			if err != nil {
				return err
			}
			return ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: out, Stderr: errOut})
		}, false},
		{"instance API", func(ctx context.Context, cmd []string, out, errOut io.Writer) error {
			return c.eci.Exec(ctx, id, apiv1.ExecOptions{Container: "main", Command: cmd}, remotecommand.StreamOptions{Stdout: out, Stderr: errOut})
		}, false},
		{"instance API, one buffer", func(ctx context.Context, cmd []string, out, _ io.Writer) error {
			return c.eci.Exec(ctx, id, apiv1.ExecOptions{Container: "main", Command: cmd}, remotecommand.StreamOptions{Stdout: out, Stderr: out})
		}, true},
	}
	for _, p := range paths {
		t.Run(p.name, func(t *testing.T) {
			start := time.Now()
			lost := 0
			for i := range n {
				if msg := execOnce(ctx, p.run, i, p.shared); msg != "" {
					lost++
					t.Errorf("exec %d: %s", i, msg)
				}
			}
			t.Logf("%s: %d of %d execs lost output or exit code (%s)", p.name, lost, n, time.Since(start).Round(time.Millisecond))
		})
	}
}

// execOnce runs the i-th command, which prints three lines to stdout and two
// to stderr and exits with i%3, and says what was wrong ("" if nothing).
// With shared, run gets one buffer for both streams.
func execOnce(ctx context.Context, run runExec, i int, shared bool) string {
	code := i % 3
	wantOut := fmt.Sprintf("out-%d-1\nout-%d-2\nout-%d-3\n", i, i, i)
	wantErr := fmt.Sprintf("err-%d-1\nerr-%d-2\n", i, i)
	script := fmt.Sprintf("echo out-%[1]d-1; echo err-%[1]d-1 >&2; echo out-%[1]d-2; echo err-%[1]d-2 >&2; echo out-%[1]d-3; exit %[2]d", i, code)
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	err := run(ctx, []string{"sh", "-c", script}, &out, &errOut)
	got := 0
	var exit utilexec.ExitError
	if errors.As(err, &exit) {
		got = exit.ExitStatus()
	} else if err != nil {
		return fmt.Sprintf("error %v (stdout %q, stderr %q)", err, out.String(), errOut.String())
	}
	gotOut, gotErr := out.String(), errOut.String()
	if shared {
		gotOut, gotErr = linesWith(out.String(), "out-"), linesWith(out.String(), "err-")
	}
	if got != code || gotOut != wantOut || gotErr != wantErr {
		return fmt.Sprintf("exit code %d (%v), stdout %q, stderr %q; want exit code %d, stdout %q, stderr %q",
			got, err, out.String(), errOut.String(), code, wantOut, wantErr)
	}
	return ""
}

// linesWith is the lines of s that start with prefix, in order.
func linesWith(s, prefix string) string {
	var b strings.Builder
	for _, l := range strings.SplitAfter(s, "\n") {
		if strings.HasPrefix(l, prefix) {
			b.WriteString(l)
		}
	}
	return b.String()
}

// burn keeps n busy loops running on the machine until the test ends, or
// for d at most.
func burn(t *testing.T, n int, d time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	var cmds []*exec.Cmd
	for range n {
		cmd := exec.CommandContext(ctx, "sh", "-c", "while :; do :; done")
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			cancel()
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	t.Cleanup(func() {
		cancel()
		for _, cmd := range cmds {
			_ = cmd.Wait()
		}
	})
}
