package agent

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/tools/remotecommand"
	utilexec "k8s.io/client-go/util/exec"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/cli"
	"github.com/eci-dev/eci/internal/client"
	"github.com/eci-dev/eci/internal/errdefs"
	"github.com/eci-dev/eci/internal/poll"
	"github.com/eci-dev/eci/internal/server/servertest"
	"github.com/eci-dev/eci/internal/testbed"
)

// Streams through the server to the agent and containerd's streaming server:
// logs, exec, attach, port-forward, stats; the auth of each hop; eviction
// and log rotation (the agent of TestAgentOnContainerd runs with a 32 MiB
// ephemeral bound and 128 KiB log files).
func testStreams(t *testing.T, bed *testbed.Bed, srv *servertest.Server, rt Runtime) {
	ctx := context.Background()
	busybox := bed.Registry.Busybox
	logs := func(t *testing.T, c *client.Client, id string, o apiv1.LogOptions) (string, error) {
		t.Helper()
		rc, err := c.Logs(ctx, id, o)
		if err != nil {
			return "", err
		}
		defer rc.Close()
		data, err := io.ReadAll(rc)
		return string(data), err
	}
	i64 := func(n int64) *int64 { return &n }

	// One group serves every stream test: a web server, a counter that logs
	// a line every 100 ms, and a container that crashes after its output.
	g := &apiv1.ContainerGroup{Metadata: apiv1.ObjectMeta{Name: "streams"}, Spec: apiv1.ContainerGroupSpec{Containers: []apiv1.Container{
		{Name: "web", Image: busybox, Command: []string{"sh", "-c", "mkdir -p /srv && echo forwarded > /srv/index.html && exec httpd -f -p 8080 -h /srv"}},
		{Name: "counter", Image: busybox, Command: []string{"sh", "-c", "for i in 1 2 3 4 5; do echo line-$i; done; echo to-stderr >&2; i=0; while :; do i=$((i+1)); echo tick-$i; sleep 0.1; done"}},
		{Name: "crasher", Image: busybox, Command: []string{"sh", "-c", "echo attempt-output; sleep 0.5; exit 3"}},
	}}}
	id := createGroup(t, srv, g)
	srv.WaitGroup(t, id, "Running with a restarted crasher", func(g *apiv1.ContainerGroup) bool {
		return g.Status.State == apiv1.StateRunning && len(g.Status.Containers) == 3 && g.Status.Containers[2].RestartCount >= 1
	})

	t.Run("logs: whole, tail, timestamps, limitBytes, since, previous, follow", func(t *testing.T) {
		all, err := logs(t, srv.Admin, id, apiv1.LogOptions{Container: "counter"})
		// stdout and stderr are separate pipes: their relative order is not kept.
		if err != nil || !strings.HasPrefix(strings.Replace(all, "to-stderr\n", "", 1), "line-1\nline-2\nline-3\nline-4\nline-5\n") || !strings.Contains(all, "to-stderr\n") {
			t.Fatalf("whole log: %q (%v)", all, err)
		}
		tail, err := logs(t, srv.Admin, id, apiv1.LogOptions{Container: "counter", TailLines: i64(2)})
		if lines := strings.Split(strings.TrimSuffix(tail, "\n"), "\n"); err != nil || len(lines) != 2 || !strings.HasPrefix(lines[0], "tick-") {
			t.Fatalf("tailLines=2: %q (%v)", tail, err)
		}
		ts, err := logs(t, srv.Admin, id, apiv1.LogOptions{Container: "counter", Timestamps: true, LimitBytes: i64(200)})
		first, _, _ := strings.Cut(ts, "\n")
		stamp, text, _ := strings.Cut(first, " ")
		if _, perr := time.Parse(time.RFC3339Nano, stamp); err != nil || perr != nil || (text != "line-1" && text != "to-stderr") || len(ts) != 200 {
			t.Fatalf("timestamps with limitBytes=200: %d bytes, first line %q (%v, %v)", len(ts), first, err, perr)
		}
		future := time.Now().Add(time.Hour)
		if none, err := logs(t, srv.Admin, id, apiv1.LogOptions{Container: "counter", SinceTime: &future}); err != nil || none != "" {
			t.Fatalf("sinceTime in an hour: %q (%v)", none, err)
		}
		// sinceTime: from the time stamp of tick-3 on.
		stamped, _ := logs(t, srv.Admin, id, apiv1.LogOptions{Container: "counter", Timestamps: true})
		var tick3 time.Time
		for _, l := range strings.Split(stamped, "\n") {
			if stamp, text, _ := strings.Cut(l, " "); text == "tick-3" {
				tick3, _ = time.Parse(time.RFC3339Nano, stamp)
			}
		}
		since, err := logs(t, srv.Admin, id, apiv1.LogOptions{Container: "counter", SinceTime: &tick3})
		if tick3.IsZero() || err != nil || !strings.HasPrefix(since, "tick-3\ntick-4\n") {
			t.Fatalf("sinceTime at tick-3 (%s): %q (%v)", tick3, since, err)
		}
		poll.Eventually(t, 30*time.Second, "sinceSeconds=1 holds only the last second's ticks", func() error {
			recent, err := logs(t, srv.Admin, id, apiv1.LogOptions{Container: "counter", SinceSeconds: i64(1)})
			if err != nil || strings.Contains(recent, "line-1") || !strings.Contains(recent, "tick-") {
				return fmt.Errorf("%q (%v)", recent, err)
			}
			return nil
		})
		prev, err := logs(t, srv.Admin, id, apiv1.LogOptions{Container: "crasher", Previous: true})
		if err != nil || prev != "attempt-output\n" {
			t.Fatalf("previous attempt of the crasher: %q (%v)", prev, err)
		}

		// follow: new lines arrive while the container runs.
		fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		rc, err := srv.Admin.Logs(fctx, id, apiv1.LogOptions{Container: "counter", Follow: true, TailLines: i64(0)})
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		buf := make([]byte, 4096)
		var got bytes.Buffer
		for strings.Count(got.String(), "tick-") < 5 {
			n, err := rc.Read(buf)
			got.Write(buf[:n])
			if err != nil {
				t.Fatalf("followed log ended after %q: %v", got.String(), err)
			}
		}
	})

	t.Run("logs: bad parameters are named, the container must exist", func(t *testing.T) {
		_, err := logs(t, srv.Admin, id, apiv1.LogOptions{})
		if !errdefs.IsInvalid(err) || !strings.Contains(err.Error(), "container") || !strings.Contains(err.Error(), "web, counter, crasher") {
			t.Errorf("no container in a group of three: %v", err)
		}
		if _, err := logs(t, srv.Admin, id, apiv1.LogOptions{Container: "nope"}); !errdefs.IsNotFound(err) {
			t.Errorf("unknown container: %v", err)
		}
		resp, err := srv.AdminRequest(t, "GET", "/v1/containergroups/"+id+"/log?container=counter&tailLines=-1&follow=maybe", nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(string(body), "tailLines") || !strings.Contains(string(body), "follow") {
			t.Errorf("tailLines=-1&follow=maybe: %d %s", resp.StatusCode, body)
		}
	})

	t.Run("exec: stdout, stderr, stdin, exit code, tty with resize", func(t *testing.T) {
		var out, errOut bytes.Buffer
		err := srv.Admin.Exec(ctx, id, apiv1.ExecOptions{Container: "counter", Command: []string{"sh", "-c", "echo out; echo err >&2; cat; exit 7"}},
			remotecommand.StreamOptions{Stdin: strings.NewReader("from-stdin"), Stdout: &out, Stderr: &errOut})
		var exit utilexec.ExitError
		if !errors.As(err, &exit) || exit.ExitStatus() != 7 {
			t.Fatalf("exit: %v, want exit code 7", err)
		}
		if out.String() != "out\nfrom-stdin" || errOut.String() != "err\n" {
			t.Fatalf("stdout %q stderr %q", out.String(), errOut.String())
		}
		out.Reset()
		err = srv.Admin.Exec(ctx, id, apiv1.ExecOptions{Container: "counter", Command: []string{"sh", "-c", "sleep 0.3; stty size"}},
			remotecommand.StreamOptions{Stdout: &out, Tty: true, TerminalSizeQueue: &oneSize{size: &remotecommand.TerminalSize{Width: 77, Height: 33}}})
		if err != nil || strings.TrimSpace(out.String()) != "33 77" {
			t.Fatalf("stty size in a tty of 77x33: %q (%v)", out.String(), err)
		}
	})

	t.Run("attach: the main process's output", func(t *testing.T) {
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		var out syncBuffer
		_ = srv.Admin.Attach(actx, id, apiv1.ExecOptions{Container: "counter"}, remotecommand.StreamOptions{Stdout: &out, Stderr: io.Discard})
		if n := strings.Count(out.String(), "tick-"); n < 3 {
			t.Fatalf("attached for 2 s to a process printing every 100 ms, got %d ticks: %q", n, out.String())
		}
	})

	t.Run("port-forward reaches the group's port", func(t *testing.T) {
		fctx, cancel := context.WithCancel(ctx)
		defer cancel()
		fw, err := srv.Admin.PortForward(fctx, id, nil, []string{":8080"}, io.Discard, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		ports, err := fw.Ports()
		if err != nil || len(ports) != 1 || ports[0].Remote != 8080 {
			t.Fatalf("forwarded ports %v (%v)", ports, err)
		}
		for i := 0; i < 3; i++ { // several connections over one forward
			resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(fmt.Sprintf("http://127.0.0.1:%d/index.html", ports[0].Local))
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.TrimSpace(string(body)) != "forwarded" {
				t.Fatalf("through the forward: %q", body)
			}
		}
		cancel()
		if err := fw.Wait(); err != nil {
			t.Errorf("forwarding ended with %v", err)
		}
	})

	t.Run("stats: CPU, memory, network and ephemeral storage of the group", func(t *testing.T) {
		// The instance's link is its own (no bridge brings it others'
		// broadcasts): the host fetches its page, so that it receives.
		g, err := srv.Admin.GetGroup(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + net.JoinHostPort(g.Status.IP, "8080") + "/"); err != nil {
			t.Fatalf("the host fetches the group's page: %v", err)
		} else {
			resp.Body.Close()
		}
		st, err := srv.Admin.GroupStats(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if st.CPU.UsageCoreNanoSeconds == 0 || st.Memory.WorkingSetBytes == 0 || st.Network.RxBytes == 0 || st.Network.Interface == "" {
			t.Errorf("group stats: %+v", st)
		}
		if st.EphemeralStorage.CapacityBytes != 32<<20 || st.EphemeralStorage.UsedBytes == 0 {
			t.Errorf("ephemeral storage: %+v, want capacity 32 MiB and the logs counted", st.EphemeralStorage)
		}
		names := map[string]bool{}
		for _, c := range st.Containers {
			names[c.Name] = c.Memory.WorkingSetBytes > 0
		}
		if !names["web"] || !names["counter"] {
			t.Errorf("per-container stats: %+v", st.Containers)
		}
	})

	t.Run("the CLI verbs: logs, exec (exit code), top", func(t *testing.T) {
		conf := filepath.Join(t.TempDir(), "admin.conf")
		if err := client.WriteConfigFile(conf, client.ConfigFile{Server: srv.URL(), Token: srv.AdminToken(), CAFile: srv.CAFile()}); err != nil {
			t.Fatal(err)
		}
		eci := func(args ...string) (string, error) {
			root := &cobra.Command{Use: "eci", SilenceUsage: true, SilenceErrors: true}
			root.AddCommand(cli.Commands()...)
			var out bytes.Buffer // stdout only: exec copies stdout and stderr concurrently
			root.SetOut(&out)
			root.SetErr(io.Discard)
			root.SetArgs(append([]string{args[0], "--config", conf}, args[1:]...))
			err := root.ExecuteContext(ctx)
			return out.String(), err
		}
		if out, err := eci("logs", id, "-c", "counter", "--tail", "1"); err != nil || !strings.HasPrefix(out, "tick-") || strings.Count(out, "\n") != 1 {
			t.Errorf("eci logs --tail 1: %q (%v)", out, err)
		}
		out, err := eci("exec", id, "-c", "web", "--", "sh", "-c", "cat /srv/index.html; exit 4")
		var exit utilexec.ExitError
		if out != "forwarded\n" || !errors.As(err, &exit) || exit.ExitStatus() != 4 {
			t.Errorf("eci exec: %q (%v), want the file and exit code 4", out, err)
		}
		if out, err := eci("top", id); err != nil || !strings.Contains(out, "(group)") || !strings.Contains(out, "counter") || !strings.Contains(out, "of 32.0 MiB") {
			t.Errorf("eci top: %q (%v)", out, err)
		}
	})

	t.Run("each hop checks who calls", func(t *testing.T) {
		other := srv.TenantClient(t, "someone-else")
		if _, err := other.Logs(ctx, id, apiv1.LogOptions{Container: "counter"}); !errdefs.IsNotFound(err) {
			t.Errorf("another tenant reads the logs: %v", err)
		}
		h, err := srv.Admin.GetHost(ctx, "h1")
		if err != nil {
			t.Fatal(err)
		}
		if h.Spec.Address == "" || h.Spec.StreamCA == "" || h.Spec.StreamToken != "" {
			t.Fatalf("host as the API shows it: address %q, CA set %v, token shown %q", h.Spec.Address, h.Spec.StreamCA != "", h.Spec.StreamToken)
		}
		// The agent's stream server refuses the admin's own token: only the
		// secret the agent registered opens it.
		for _, token := range []string{"", srv.AdminToken()} {
			if code := agentStatus(t, h, "/v1/groups/"+id+"/stats", token); code != http.StatusUnauthorized {
				t.Errorf("stream server with token %q answered %d", token, code)
			}
		}
	})

	t.Run("a group writing past its ephemeral bound is evicted", func(t *testing.T) {
		hog := &apiv1.ContainerGroup{Metadata: apiv1.ObjectMeta{Name: "disk-hog"}, Spec: apiv1.ContainerGroupSpec{RestartPolicy: apiv1.RestartNever, Containers: []apiv1.Container{
			{Name: "hog", Image: busybox, Command: []string{"sh", "-c", "dd if=/dev/zero of=/fill bs=1M count=40 && sleep 3600"}},
		}}}
		hid := createGroup(t, srv, hog)
		failed := srv.WaitGroup(t, hid, "Failed (Evicted)", inState(apiv1.StateFailed))
		if failed.Status.Reason != "Evicted" || !strings.Contains(failed.Status.Message, "exceeds the group's bound of 32.0 MiB") {
			t.Fatalf("evicted group: %s %q", failed.Status.Reason, failed.Status.Message)
		}
		poll.Eventually(t, 30*time.Second, "the evicted group's sandbox is removed", func() error {
			if _, err := sandboxOf(ctx, rt, hid); err == nil {
				return errors.New("sandbox still there")
			}
			return nil
		})
	})

	t.Run("a log file past its size is rotated; the API reads the live one", func(t *testing.T) {
		chatty := &apiv1.ContainerGroup{Metadata: apiv1.ObjectMeta{Name: "chatty"}, Spec: apiv1.ContainerGroupSpec{Containers: []apiv1.Container{
			{Name: "chatty", Image: busybox, Command: []string{"sh", "-c", "while :; do seq 1 3000; sleep 0.2; done"}},
		}}}
		cid := createGroup(t, srv, chatty)
		srv.WaitGroup(t, cid, "Running", inState(apiv1.StateRunning))
		dir := filepath.Join(bed.Containerd.LogDir, cid, "chatty")
		poll.Eventually(t, 30*time.Second, "rotated log files, at most 2 besides the live one", func() error {
			rotated, _ := filepath.Glob(filepath.Join(dir, "0.log.*"))
			if len(rotated) < 2 {
				return fmt.Errorf("%d rotated files", len(rotated))
			}
			if len(rotated) > 2 {
				return fmt.Errorf("%d rotated files kept, want at most 2", len(rotated))
			}
			return nil
		})
		// Between the rename and the runtime's reopen there is no live file
		// for a moment.
		poll.Eventually(t, 30*time.Second, "a live log file smaller than 1 MiB", func() error {
			st, err := os.Stat(filepath.Join(dir, "0.log"))
			if err != nil || st.Size() > 1<<20 {
				return fmt.Errorf("live log file: %v (%v)", st, err)
			}
			return nil
		})
		poll.Eventually(t, 30*time.Second, "the last line of the live file, a number from seq", func() error {
			tail, err := logs(t, srv.Admin, cid, apiv1.LogOptions{TailLines: i64(1)})
			if _, perr := strconv.Atoi(strings.TrimSpace(tail)); err != nil || perr != nil {
				return fmt.Errorf("tail %q (%v)", tail, err)
			}
			return nil
		})
		if _, err := srv.Admin.DeleteGroup(ctx, cid, client.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	})

	if _, err := srv.Admin.DeleteGroup(ctx, id, client.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
}

// oneSize is a terminal that has one size.
type oneSize struct{ size *remotecommand.TerminalSize }

func (q *oneSize) Next() *remotecommand.TerminalSize {
	s := q.size
	q.size = nil
	return s
}

// agentStatus calls the agent's stream server directly with token.
func agentStatus(t *testing.T, h *apiv1.Host, path, token string) int {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(h.Spec.StreamCA))
	req, err := http.NewRequest("GET", "https://"+h.Spec.Address+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// sandboxOf is group id's sandbox, if it has one.
func sandboxOf(ctx context.Context, rt Runtime, id string) (string, error) {
	sbs, err := rt.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{LabelGroup: id}})
	if err != nil {
		return "", err
	}
	if len(sbs) == 0 {
		return "", errdefs.ErrNotFound
	}
	return sbs[0].Id, nil
}

// syncBuffer is a buffer written by one goroutine and read by another.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
