package client

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/client-go/transport/spdy"

	apiv1 "github.com/eci-dev/eci/api/v1"
)

// Logs reads a container's log (streamed with o.Follow until the container
// stops or ctx ends). The caller closes the reader.
func (c *Client) Logs(ctx context.Context, id string, o apiv1.LogOptions) (io.ReadCloser, error) {
	resp, err := c.send(ctx, http.MethodGet, "/v1/containergroups/"+url.PathEscape(id)+"/log", o.Query(), nil)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 400 {
		defer resp.Body.Close()
		return nil, apiError(resp)
	}
	return resp.Body, nil
}

// GroupStats samples a group's usage.
func (c *Client) GroupStats(ctx context.Context, id string) (*apiv1.GroupStats, error) {
	var out apiv1.GroupStats
	_, err := c.do(ctx, http.MethodGet, "/v1/containergroups/"+url.PathEscape(id)+"/stats", nil, nil, &out)
	return &out, err
}

// restConfig is the client as client-go's streaming tools need it.
func (c *Client) restConfig() *rest.Config {
	return &rest.Config{Host: c.base, BearerToken: c.token, TLSClientConfig: rest.TLSClientConfig{CAData: c.caData}}
}

func (c *Client) streamURL(id, kind string, q url.Values) (*url.URL, error) {
	u, err := url.Parse(c.base + "/v1/containergroups/" + url.PathEscape(id) + "/" + kind)
	if err != nil {
		return nil, err
	}
	u.RawQuery = q.Encode()
	return u, nil
}

// Exec runs o.Command in a container of group id with the kubelet's
// remotecommand protocol (stdin, tty and resize included). A non-zero exit
// comes back as a k8s.io/client-go/util/exec.ExitError. Stdout and stderr
// are copied concurrently: one writer given for both is written under a
// lock (see oneWriter); two different writers must not share state.
func (c *Client) Exec(ctx context.Context, id string, o apiv1.ExecOptions, s remotecommand.StreamOptions) error {
	return c.session(ctx, id, "exec", o, s)
}

// Attach attaches to the main process of a container of group id.
func (c *Client) Attach(ctx context.Context, id string, o apiv1.ExecOptions, s remotecommand.StreamOptions) error {
	o.Command = nil
	return c.session(ctx, id, "attach", o, s)
}

func (c *Client) session(ctx context.Context, id, kind string, o apiv1.ExecOptions, s remotecommand.StreamOptions) error {
	o.Stdin, o.Stdout, o.Stderr = s.Stdin != nil, s.Stdout != nil, s.Stderr != nil
	o.TTY = s.Tty
	s = oneWriter(s)
	u, err := c.streamURL(id, kind, o.Query())
	if err != nil {
		return err
	}
	ex, err := remotecommand.NewSPDYExecutor(c.restConfig(), http.MethodPost, u)
	if err != nil {
		return err
	}
	return ex.StreamWithContext(ctx, s)
}

// oneWriter serializes the writes of s's stdout and stderr when they are
// the same writer. client-go copies the two streams in two goroutines with
// io.Copy, and a bytes.Buffer given for both loses output: io.Copy uses its
// ReadFrom, which notes the buffer's length before each Read and sets it to
// that plus what it read after, so a stream that ends (reads nothing) after
// the other stream wrote sets the length back and erases that output. In
// the e2e test bed, 58 of 100 quick execs through kubectl exec with one
// buffer came back empty, exit code intact.
func oneWriter(s remotecommand.StreamOptions) remotecommand.StreamOptions {
	if s.Stdout == nil || s.Stderr == nil {
		return s
	}
	t := reflect.TypeOf(s.Stdout)
	if t != reflect.TypeOf(s.Stderr) || !t.Comparable() || s.Stdout != s.Stderr {
		return s
	}
	w := &lockedWriter{w: s.Stdout}
	s.Stdout, s.Stderr = w, w
	return s
}

// lockedWriter writes to w one Write at a time.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// Forwarder forwards local ports to a group's ports until its context ends.
type Forwarder struct {
	pf   *portforward.PortForwarder
	errc chan error
}

// PortForward listens on addresses (127.0.0.1 when empty) for ports given
// as kubectl takes them ("8080", "9090:80", ":80" for any local port) and
// forwards each connection to the group, until ctx ends.
func (c *Client) PortForward(ctx context.Context, id string, addresses, ports []string, out, errOut io.Writer) (*Forwarder, error) {
	u, err := c.streamURL(id, "portforward", nil)
	if err != nil {
		return nil, err
	}
	tr, upgrader, err := spdy.RoundTripperFor(c.restConfig())
	if err != nil {
		return nil, err
	}
	dialer := spdy.NewDialer(upgrader, &http.Client{Transport: tr}, http.MethodPost, u)
	if len(addresses) == 0 {
		addresses = []string{"127.0.0.1"}
	}
	ready := make(chan struct{})
	pf, err := portforward.NewOnAddresses(dialer, addresses, ports, ctx.Done(), ready, out, errOut)
	if err != nil {
		return nil, fmt.Errorf("port-forward: %w", err)
	}
	f := &Forwarder{pf: pf, errc: make(chan error, 1)}
	go func() { f.errc <- pf.ForwardPorts() }()
	select {
	case <-ready:
		return f, nil
	case err := <-f.errc:
		return nil, fmt.Errorf("port-forward: %w", err)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Ports are the forwarded ports, local and remote.
func (f *Forwarder) Ports() ([]portforward.ForwardedPort, error) { return f.pf.GetPorts() }

// Wait blocks until forwarding ends (its context ended, or it failed).
func (f *Forwarder) Wait() error { return <-f.errc }

// ForwardPort joins stream to port of group id (one connection of the
// kubelet's portforward protocol, as kubectl makes it) until either side
// ends: what a virtual node does for each port-forward stream it serves.
func (c *Client) ForwardPort(ctx context.Context, id string, port int32, stream io.ReadWriteCloser) error {
	defer func() { _ = stream.Close() }()
	u, err := c.streamURL(id, "portforward", nil)
	if err != nil {
		return err
	}
	tr, upgrader, err := spdy.RoundTripperFor(c.restConfig())
	if err != nil {
		return err
	}
	conn, _, err := spdy.NewDialer(upgrader, &http.Client{Transport: tr}, http.MethodPost, u).Dial(portforward.PortForwardProtocolV1Name)
	if err != nil {
		return fmt.Errorf("port-forward to group %s: %w", id, err)
	}
	defer func() { _ = conn.Close() }()
	headers := http.Header{}
	headers.Set(corev1.StreamType, corev1.StreamTypeError)
	headers.Set(corev1.PortHeader, strconv.Itoa(int(port)))
	headers.Set(corev1.PortForwardRequestIDHeader, "0")
	errStream, err := conn.CreateStream(headers)
	if err != nil {
		return err
	}
	_ = errStream.Close() // nothing is written to it
	errc := make(chan error, 1)
	go func() {
		msg, err := io.ReadAll(errStream)
		switch {
		case err != nil:
			errc <- err
		case len(msg) > 0:
			errc <- fmt.Errorf("port-forward to group %s port %d: %s", id, port, msg)
		default:
			errc <- nil
		}
	}()
	headers.Set(corev1.StreamType, corev1.StreamTypeData)
	data, err := conn.CreateStream(headers)
	if err != nil {
		return err
	}
	remoteDone := make(chan struct{})
	go func() {
		_, _ = io.Copy(stream, data)
		close(remoteDone)
	}()
	go func() {
		_, _ = io.Copy(data, stream)
		_ = data.Close()
	}()
	select {
	case <-remoteDone:
	case <-ctx.Done():
	}
	_ = data.Reset()
	select {
	case err := <-errc:
		return err
	case <-time.After(time.Second):
		return nil
	}
}
