package vnode

import (
	"context"
	"io"

	vkerrdefs "github.com/virtual-kubelet/virtual-kubelet/errdefs"
	"github.com/virtual-kubelet/virtual-kubelet/node/api"
	"k8s.io/client-go/tools/remotecommand"

	apiv1 "github.com/eci-dev/eci/api/v1"
)

// The kubelet API of the virtual node: kubectl logs, exec, attach and top
// reach the pod's group through the instance service (which checks every
// hop); nothing runs on this node.

func (p *Provider) groupOf(namespace, name string) (*apiv1.ContainerGroup, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pod, ok := p.pods[podKey(namespace, name)]
	if !ok {
		return nil, vkerrdefs.NotFoundf("pod %s/%s is not on this virtual node", namespace, name)
	}
	g := p.groups[string(pod.UID)]
	if g == nil {
		return nil, vkerrdefs.NotFoundf("pod %s/%s has no instance (yet)", namespace, name)
	}
	return g, nil
}

// GetContainerLogs reads a container's log.
func (p *Provider) GetContainerLogs(ctx context.Context, namespace, podName, containerName string, opts api.ContainerLogOpts) (io.ReadCloser, error) {
	g, err := p.groupOf(namespace, podName)
	if err != nil {
		return nil, err
	}
	o := apiv1.LogOptions{Container: containerName, Follow: opts.Follow, Previous: opts.Previous, Timestamps: opts.Timestamps}
	if opts.Tail > 0 {
		n := int64(opts.Tail)
		o.TailLines = &n
	}
	if opts.LimitBytes > 0 {
		n := int64(opts.LimitBytes)
		o.LimitBytes = &n
	}
	if opts.SinceSeconds > 0 {
		n := int64(opts.SinceSeconds)
		o.SinceSeconds = &n
	} else if !opts.SinceTime.IsZero() {
		t := opts.SinceTime
		o.SinceTime = &t
	}
	return p.cfg.ECI.Logs(ctx, g.Metadata.ID, o)
}

// RunInContainer runs a command in a container (kubectl exec).
func (p *Provider) RunInContainer(ctx context.Context, namespace, podName, containerName string, cmd []string, attach api.AttachIO) error {
	g, err := p.groupOf(namespace, podName)
	if err != nil {
		return err
	}
	return p.cfg.ECI.Exec(ctx, g.Metadata.ID, apiv1.ExecOptions{Container: containerName, Command: cmd}, streams(attach))
}

// AttachToContainer attaches to a container's main process.
func (p *Provider) AttachToContainer(ctx context.Context, namespace, podName, containerName string, attach api.AttachIO) error {
	g, err := p.groupOf(namespace, podName)
	if err != nil {
		return err
	}
	return p.cfg.ECI.Attach(ctx, g.Metadata.ID, apiv1.ExecOptions{Container: containerName}, streams(attach))
}

// streams adapts virtual-kubelet's AttachIO to client-go's stream options.
func streams(a api.AttachIO) remotecommand.StreamOptions {
	s := remotecommand.StreamOptions{Tty: a.TTY()}
	if in := a.Stdin(); in != nil {
		s.Stdin = in
	}
	if out := a.Stdout(); out != nil {
		s.Stdout = out
	}
	if e := a.Stderr(); e != nil && !a.TTY() {
		s.Stderr = e
	}
	if a.TTY() && a.Resize() != nil {
		s.TerminalSizeQueue = termSizes(a.Resize())
	}
	return s
}

type termSizes <-chan api.TermSize

func (q termSizes) Next() *remotecommand.TerminalSize {
	s, ok := <-q
	if !ok {
		return nil
	}
	return &remotecommand.TerminalSize{Width: s.Width, Height: s.Height}
}

// PortForward joins one forwarded connection to the pod's port.
func (p *Provider) PortForward(ctx context.Context, namespace, pod string, port int32, stream io.ReadWriteCloser) error {
	g, err := p.groupOf(namespace, pod)
	if err != nil {
		_ = stream.Close()
		return err
	}
	return p.cfg.ECI.ForwardPort(ctx, g.Metadata.ID, port, stream)
}
